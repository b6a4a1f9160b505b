"""`tf.Module`s owning the `tf.Variable`s of params structures: `LSTMNetwork`, `Seq2SeqNetwork`."""

from __future__ import annotations

import tensorflow as tf

from probseq.nn.cells import INPUT_TABLE_SCALE, get_cell, init_cell_params, init_seed
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


def _frozen_copy(network: tf.Module, sizes: tuple[str, ...]):
    """`network.frozen()`: a network of the same class whose params are constants."""
    if not tf.executing_eagerly():
        raise RuntimeError("frozen() copies the current weights; call it outside tf.function.")
    copy = type(network).__new__(type(network))
    tf.Module.__init__(copy, name=f"{network.name}_frozen")
    for attribute in (*sizes, "cell", "cell_type", "dtype"):
        setattr(copy, attribute, getattr(network, attribute))
    copy.params = tf.nest.map_structure(lambda v: tf.constant(v.numpy()), network.params)
    copy.is_frozen = True
    return copy


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


class LSTMNetwork(tf.Module):
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
        registered cell's name or a `Cell`; the class keeps its name for every cell.
        `network.cell_type` is the `Cell`, `network.cell` its name.

    `.params` is the nested dict of `tf.Variable`s that the functional core in
    `probseq.nn` consumes (layout in `probseq.nn.cells`).

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=27, hidden_size=64, seed=1)
    net.params["layer_0"]["recurrent_kernel"].shape  # ==> [64, 256]
    ```
    """

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
    ):
        super().__init__(name=name or "LSTMNetwork")
        self.vocab_size = _check_positive_int("vocab_size", vocab_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.dtype = tf.as_dtype(dtype)
        self.cell_type = get_cell(cell)
        self.cell = self.cell_type.name
        with self.name_scope:
            init = init_cell_params(
                vocab_size,
                hidden_size,
                num_layers,
                cell=self.cell_type,
                seed=seed,
                dtype=self.dtype,
            )
            self.params = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=True), init)
        self.is_frozen = False

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
        return _frozen_copy(self, ("vocab_size", "hidden_size", "num_layers"))

    def __repr__(self) -> str:
        frozen = ", frozen" if self.is_frozen else ""
        return (
            f"LSTMNetwork(vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, cell={self.cell!r}{frozen})"
        )


class Seq2SeqNetwork(tf.Module):
    """Encoder and decoder recurrent stacks (same cell, sizes and depth) as variables.

    Args:
      source_vocab_size: symbols of the source (encoder input) vocabulary.
      target_vocab_size: symbols of the target (decoder input and output) vocabulary.
      hidden_size: `H`, units per layer of both stacks.
      num_layers: stacked layers of both stacks; decoder layer `l` starts from the
        encoder's final state of layer `l`.
      cell: `"lstm"`, `"gru"` or `"rnn"`.
      seed: initialization seed (int, pair or shape-[2] tensor; an int `s` means
        `(s, 0)`); None draws a fresh one.
      dtype: float dtype of the variables.

    `.params` is `{"encoder": <layers, no output head>, "decoder": <layers + "output">}`
    in the layout of `probseq.nn.cells`; the encoder's `layer_0/input_kernel` is its own
    source embedding `[V_src, G*H]`, the decoder's is `[V_tgt, G*H]`.

    #### Examples

    ```python
    net = probseq.nn.Seq2SeqNetwork(100, 100, hidden_size=64, cell="gru", seed=1)
    net.params["decoder"]["output"]["kernel"].shape  # ==> [64, 100]
    ```
    """

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
    ):
        super().__init__(name=name or "Seq2SeqNetwork")
        self.source_vocab_size = _check_positive_int("source_vocab_size", source_vocab_size)
        self.target_vocab_size = _check_positive_int("target_vocab_size", target_vocab_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.cell_type = get_cell(cell)
        self.cell = self.cell_type.name
        self.dtype = tf.as_dtype(dtype)
        encoder_seed, decoder_seed = tf.unstack(split(init_seed(seed), 2))
        common = dict(cell=self.cell_type, dtype=self.dtype)
        init = {
            "encoder": init_cell_params(
                source_vocab_size,
                hidden_size,
                num_layers,
                output=False,
                seed=encoder_seed,
                **common,
            ),
            "decoder": init_cell_params(
                target_vocab_size, hidden_size, num_layers, seed=decoder_seed, **common
            ),
        }
        with self.name_scope:
            self.params = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=True), init)
        self.is_frozen = False

    def frozen(self) -> Seq2SeqNetwork:
        """A copy with the current weights as constants (see `LSTMNetwork.frozen`)."""
        return _frozen_copy(
            self, ("source_vocab_size", "target_vocab_size", "hidden_size", "num_layers")
        )

    @property
    def vocab_size(self) -> int:
        """The target vocabulary size (what the decoder's distributions range over)."""
        return self.target_vocab_size

    def __repr__(self) -> str:
        return (
            f"Seq2SeqNetwork(source_vocab_size={self.source_vocab_size}, "
            f"target_vocab_size={self.target_vocab_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, cell={self.cell!r})"
        )


class RealValuedNetwork(tf.Module):
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

    Init: Glorot-uniform input and output kernels, orthogonal recurrent kernels, zero
    biases (as for tokens, without the token table's 4x scale).
    """

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
    ):
        super().__init__(name=name or "RealValuedNetwork")
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.output_size = _check_positive_int("output_size", output_size)
        self.dtype = tf.as_dtype(dtype)
        self.cell_type = get_cell(cell)
        self.cell = self.cell_type.name
        init = init_cell_params(
            input_size,
            hidden_size,
            num_layers,
            cell=self.cell_type,
            output_size=output_size,
            seed=seed,
            dtype=self.dtype,
        )
        init["layer_0"]["input_kernel"] = init["layer_0"]["input_kernel"] / INPUT_TABLE_SCALE
        with self.name_scope:
            self.params = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=True), init)
        self.is_frozen = False

    def frozen(self) -> RealValuedNetwork:
        """A copy with the current weights as constants (see `LSTMNetwork.frozen`)."""
        return _frozen_copy(self, ("input_size", "hidden_size", "num_layers", "output_size"))

    def __repr__(self) -> str:
        frozen = ", frozen" if self.is_frozen else ""
        return (
            f"RealValuedNetwork(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers}, output_size={self.output_size}, "
            f"cell={self.cell!r}{frozen})"
        )
