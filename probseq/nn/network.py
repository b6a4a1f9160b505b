"""`tf.Module`s owning the `tf.Variable`s of params structures: `LSTMNetwork`, `Seq2SeqNetwork`."""

from __future__ import annotations

import tensorflow as tf

from probseq.checks import check_positive_int
from probseq.composite import AutoComposite
from probseq.nn.cells import (
    INPUT_TABLE_SCALE,
    Cell,
    cell_param_shapes,
    get_cell,
    init_cell_params,
    init_seed,
    register_cell,
)
from probseq.nn.params import ParamsSpec
from probseq.seeds import split

__all__ = ["LSTMNetwork", "RealValuedNetwork", "Seq2SeqNetwork", "init_lstm_params"]


def init_lstm_params(
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    seed=None,
    dtype=tf.float32,
) -> dict:
    """A freshly initialized LSTM params structure (plain tensors).

    Input and output kernels are Glorot-uniform (layer 0's token table with 4x the limit),
    recurrent kernels orthogonal with orthonormal rows across the gates,
    biases zero (the forget gate's +1 lives in the cell equation). An int seed `s` means
    the pair `(s, 0)`: the same seed gives the same weights.
    """
    return init_cell_params(
        vocab_size, hidden_size, num_layers, cell="lstm", seed=seed, dtype=dtype
    )


def _named_cell(cell: str | Cell) -> Cell:
    """The network's `Cell`, registered under its name.

    A network is rebuilt from its cell's *name* when it passes through `tf.function` (it
    is a composite tensor), so the name must denote this cell: an unregistered `Cell` is
    registered here, and a `Cell` whose name is taken by a different cell is refused.
    """
    cell_type = get_cell(cell)
    try:
        registered = get_cell(cell_type.name)
    except ValueError:
        return register_cell(cell_type)
    if registered is not cell_type:
        raise ValueError(
            f"a different cell is registered as {cell_type.name!r}; give this cell its own "
            "name (or register it with register_cell(cell, replace=True))."
        )
    return cell_type


class _Network(tf.Module, AutoComposite):
    """What the three networks share: a params structure of variables (or, for a frozen
    network or one rebuilt inside `tf.function`, tensors), the cell, `frozen()`.

    A network is a composite tensor: its params are the components, its sizes, cell name
    and dtype the metadata, so a distribution holding it is a valid `tf.function`
    argument that retraces only when those change.
    """

    _composite_omit_kwargs = ("seed",)
    _SIZES: tuple[str, ...] = ()  # the constructor's size arguments, for frozen() and errors

    def _set_params(self, shapes: dict, init, params) -> None:
        """`params` (tensors or variables, checked against `shapes`) or fresh variables
        from `init()`."""
        if params is None:
            spec = ParamsSpec(shapes)
            with self.name_scope:
                variables = [
                    tf.Variable(value, trainable=True, name=name)
                    for value, name in zip(spec.flatten(init()), spec.names, strict=True)
                ]
            self.params = spec.pack(variables)
            return
        self.params, _ = ParamsSpec(shapes).check(
            params,
            dtype=self.dtype,
            max_batch_ndims=0,
            reference=f"{type(self).__name__}'s params",
        )

    @property
    def is_frozen(self) -> bool:
        """True when the params are constants (no variables to train)."""
        return not any(isinstance(p, tf.Variable) for p in tf.nest.flatten(self.params))

    def frozen(self):
        """A copy with the current weights as constants (see `LSTMNetwork.frozen`)."""
        if not tf.executing_eagerly():
            raise RuntimeError("frozen() copies the current weights; call it outside tf.function.")
        return type(self)(
            **{size: getattr(self, size) for size in self._SIZES},
            cell=self.cell_type,
            dtype=self.dtype,
            name=f"{self.name}_frozen",
            params=tf.nest.map_structure(lambda v: tf.constant(v.numpy()), self.params),
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{size}={getattr(self, size)}" for size in self._SIZES)
        frozen = ", frozen" if self.is_frozen else ""
        return f"{type(self).__name__}({sizes}, cell={self.cell!r}{frozen})"


class LSTMNetwork(_Network):
    """Stacked LSTM with token inputs and a logits head, as trainable variables.

    Args:
      vocab_size: number of symbols `V`.
      hidden_size: LSTM units per layer `H`.
      num_layers: number of stacked LSTM layers.
      seed: initialization seed (int, pair of ints or shape-[2] tensor); the same seed
        gives the same weights. `None` draws a fresh one.
      dtype: float dtype of the variables.
      name: module name.
      cell: `"lstm"` (default), `"gru"`, `"rnn"` (equations in `probseq.nn.cells`), a
        registered cell's name or a `Cell` (registered under its name here); the class
        keeps its name for every cell. `network.cell_type` is the `Cell`, `network.cell`
        its name.
      params: optional existing weights (tensors or variables in the layout below, no
        batch dims) to hold instead of fresh variables; `seed` is then unused. This is
        how `frozen()` and `tf.function` (a network is a composite tensor) rebuild it.

    `.params` is the nested dict of `tf.Variable`s that the functional core in
    `probseq.nn` consumes (layout in `probseq.nn.cells`).

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=27, hidden_size=64, seed=1)
    net.params["layer_0"]["recurrent_kernel"].shape  # ==> [64, 256]
    ```
    """

    _SIZES = ("vocab_size", "hidden_size", "num_layers")

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed=None,
        dtype=tf.float32,
        name: str | None = None,
        *,
        cell: str = "lstm",
        params: dict | None = None,
    ):
        super().__init__(name=name or "LSTMNetwork")
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.dtype = tf.as_dtype(dtype)
        self.cell_type = _named_cell(cell)
        self.cell = self.cell_type.name
        self._set_params(
            cell_param_shapes(vocab_size, hidden_size, num_layers, cell=self.cell_type),
            lambda: init_cell_params(
                vocab_size,
                hidden_size,
                num_layers,
                cell=self.cell_type,
                seed=seed,
                dtype=self.dtype,
            ),
            params,
        )

    def frozen(self) -> LSTMNetwork:
        """A copy with the current weights as constants: no trainable variables.

        For inference over *other* latents with the network held fixed. TFP's fitting
        routines (`tfp.vi.fit_surrogate_posterior`, `tfp.math.minimize`) train every
        trainable variable the loss reads, so a model built on the network itself would
        silently train the LSTM too:

        ```python
        net = trained.frozen()   # the one word
        @tfd.JointDistributionCoroutineAutoBatched
        def model():
            temperature = yield tfd.LogNormal(0.0, 0.5, name="temperature")
            yield probseq.LSTMAutoregressive(net, 50, temperature=temperature, name="text")
        ```

        The copy does not follow later changes of this network's variables.
        """
        return super().frozen()


class Seq2SeqNetwork(_Network):
    """Encoder and decoder recurrent stacks (same cell, sizes and depth) as variables.

    Args:
      source_vocab_size: symbols of the source (encoder input) vocabulary.
      target_vocab_size: symbols of the target (decoder input and output) vocabulary.
      hidden_size: `H`, units per layer of both stacks.
      num_layers: stacked layers of both stacks; decoder layer `l` starts from the
        encoder's final state of layer `l`.
      cell: `"lstm"`, `"gru"`, `"rnn"`, a registered name or a `Cell`.
      seed: initialization seed (int, pair or shape-[2] tensor; an int `s` means
        `(s, 0)`); None draws a fresh one.
      dtype: float dtype of the variables.
      params: optional existing weights to hold instead of fresh variables (as for
        `LSTMNetwork`).

    `.params` is `{"encoder": <layers, no output head>, "decoder": <layers + "output">}`
    in the layout of `probseq.nn.cells`; the encoder's `layer_0/input_kernel` is its own
    source embedding `[V_src, G*H]`, the decoder's is `[V_tgt, G*H]`.

    #### Examples

    ```python
    net = probseq.nn.Seq2SeqNetwork(100, 100, hidden_size=64, cell="gru", seed=1)
    net.params["decoder"]["output"]["kernel"].shape  # ==> [64, 100]
    ```
    """

    _SIZES = ("source_vocab_size", "target_vocab_size", "hidden_size", "num_layers")

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        seed=None,
        dtype=tf.float32,
        name: str | None = None,
        params: dict | None = None,
    ):
        super().__init__(name=name or "Seq2SeqNetwork")
        self.source_vocab_size = check_positive_int("source_vocab_size", source_vocab_size)
        self.target_vocab_size = check_positive_int("target_vocab_size", target_vocab_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.cell_type = _named_cell(cell)
        self.cell = self.cell_type.name
        self.dtype = tf.as_dtype(dtype)
        common = dict(cell=self.cell_type)
        shapes = {
            "encoder": cell_param_shapes(
                source_vocab_size, hidden_size, num_layers, output=False, **common
            ),
            "decoder": cell_param_shapes(target_vocab_size, hidden_size, num_layers, **common),
        }

        def init():
            encoder_seed, decoder_seed = tf.unstack(split(init_seed(seed), 2))
            return {
                "encoder": init_cell_params(
                    source_vocab_size,
                    hidden_size,
                    num_layers,
                    output=False,
                    seed=encoder_seed,
                    dtype=self.dtype,
                    **common,
                ),
                "decoder": init_cell_params(
                    target_vocab_size,
                    hidden_size,
                    num_layers,
                    seed=decoder_seed,
                    dtype=self.dtype,
                    **common,
                ),
            }

        self._set_params(shapes, init, params)

    @property
    def vocab_size(self) -> int:
        """The target vocabulary size (what the decoder's distributions range over)."""
        return self.target_vocab_size


class RealValuedNetwork(_Network):
    """Recurrent stack over real-valued inputs with a head of `output_size` parameters.

    The input encoder is a dense projection (`x W_in + b`, one GEMM over all steps) of
    `input_size` features per step, then `num_layers` recurrent layers of `cell`, then
    a projection to `output_size` numbers: the parameters of an emission head
    (`probseq.distributions.heads`). Params layout: `probseq.nn.dense`.

    Args:
      input_size: features read per step `D` (1 for a scalar series).
      hidden_size: units per layer `H`.
      num_layers: stacked layers.
      output_size: numbers per step for the head (`head.num_params`).
      cell: `"lstm"`, `"gru"`, `"rnn"`, a registered name or a `Cell`.
      seed: initialization seed (an int `s` means `(s, 0)`).
      dtype: float dtype of the variables.
      params: optional existing weights to hold instead of fresh variables (as for
        `LSTMNetwork`).

    Init: Glorot-uniform input and output kernels, orthogonal recurrent kernels, zero
    biases (as for tokens, without the token table's 4x scale).
    """

    _SIZES = ("input_size", "hidden_size", "num_layers", "output_size")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        output_size: int = 2,
        *,
        cell: str = "lstm",
        seed=None,
        dtype=tf.float32,
        name: str | None = None,
        params: dict | None = None,
    ):
        super().__init__(name=name or "RealValuedNetwork")
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.output_size = check_positive_int("output_size", output_size)
        self.dtype = tf.as_dtype(dtype)
        self.cell_type = _named_cell(cell)
        self.cell = self.cell_type.name
        sizes = (input_size, hidden_size, num_layers)

        def init():
            init = init_cell_params(
                *sizes,
                cell=self.cell_type,
                output_size=output_size,
                seed=seed,
                dtype=self.dtype,
            )
            init["layer_0"]["input_kernel"] = init["layer_0"]["input_kernel"] / INPUT_TABLE_SCALE
            return init

        shapes = cell_param_shapes(*sizes, cell=self.cell_type, output_size=output_size)
        self._set_params(shapes, init, params)
