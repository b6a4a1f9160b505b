"""`LSTMAutoregressive`: a distribution over token sequences whose conditionals are an LSTM."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

# is_ref / convert_nonref_to_tensor have no public names in TFP 0.25.
from tensorflow_probability.python.internal import tensor_util

# The sentinel has no public name in TFP 0.25.
from tensorflow_probability.python.internal.parameter_properties import BIJECTOR_NOT_IMPLEMENTED

from probseq.distributions._sequence import (
    _TokenSequenceDistribution,
    broadcast_state,
    check_num_steps,
    check_params,
    convert_tokens,
    lift_to_batch,
    range_assertions,
    sample_tokens,
)
from probseq.nn import (
    cell_logits,
    cell_start,
    cell_step,
    network_cell,
    param_batch_ndims,
    precision_dtype,
    reduced_precision_params,
)
from probseq.seeds import stateless_seed

tfd = tfp.distributions

__all__ = ["LSTMAutoregressive"]


class LSTMAutoregressive(_TokenSequenceDistribution):
    """Autoregressive distribution over `num_steps` tokens with recurrent conditionals.

    The name says LSTM, the default and the reference model; a network built with
    `cell="gru"` or `cell="rnn"` gives the same distribution with those cells (one class,
    one contract, rather than a second cell-agnostic name).

    `p(x_1..x_T | prefix) = prod_t Categorical(x_t | logits_t / temperature)` where
    `logits_t` is the network's output after reading the prefix and `x_1..x_{t-1}`.

    #### Mathematical details

    The LSTM starts from a zero state. Its first step reads *no* token (a zero input
    term, so the first distribution depends only on the weights), then the `P` prefix
    tokens, then `x_1, ..., x_{T-1}`. The logits after each read parameterize the
    categorical distribution of the next token:

    ```none
    log p(x | prefix) = sum_{t=1}^{T} log softmax(logits_t / temperature)[x_t]
    ```

    The prefix is conditioned on, not scored. `temperature` rescales the logits of the
    generated tokens (`< 1` sharpens, `> 1` flattens) and may be a `tf.Variable` or a
    latent variable upstream in a joint distribution; gradients reach it.

    Shapes: event shape `[num_steps]`; batch shape is the broadcast of the leading
    (batch) dims of `params`, of `prefix[..., :-1]`, of `temperature` and of `lengths`.
    `sample(s)` has shape `s + batch_shape + [num_steps]`; `log_prob(x)` has shape
    `x.shape[:-1]` broadcast against `batch_shape`.

    Sampling runs one `tf.while_loop` over time that carries the LSTM state (O(T)
    network steps, unlike `tfd.Autoregressive` which re-runs the prefix, O(T^2)), with
    stateless seeds: the same seed gives the same sequences in eager mode and in
    `tf.function`.

    Args:
      network: an `LSTMNetwork` (provides sizes and, when `params` is None, the
        variables).
      num_steps: Python int `T >= 1`, the sequence length.
      prefix: optional int tokens `[..., P]` to condition on (priming text); its
        leading dims are batch dims.
      temperature: optional positive float, scalar or batched; Tensor or Variable.
      params: optional structure like `network.params` with optional leading batch
        dims (e.g. S posterior draws), used instead of the network's variables.
      eos: optional end token id. The distribution is then over sequences that end
        with their first EOS (scored) or reach `num_steps`; later positions are EOS
        padding, not scored (a value with other tokens there has probability 0);
        sampling pads with EOS after it and skips the network once all have ended.
      lengths: optional ints `[...]` in `[0, num_steps]` (leading dims are batch dims):
        only the first `lengths` positions are data. Without `eos` they are scored
        (`p(x_1..x_L)`, the unpadded sequence's log-probability) and the padding is
        never read; with `eos` the sequence is `x_1..x_L` then EOS. `log_prob` also
        takes a `tf.RaggedTensor` or a list of sequences of different lengths, whose
        row lengths act as `lengths`; with `eos` or `lengths` a value may be narrower
        than `num_steps` (a bucketed batch).
      precision: `"fp32"` (default), `"bf16"` (the matmuls of `log_prob` and `sample` in
        bfloat16, gates, states and softmax in fp32; gradients reach fp32 weights) or
        `"auto"` (`probseq.machine.choose_precision`: bf16 where the CPU has bf16
        instructions and a quick, cached probe measures it faster).
      validate_args: check tokens (range, integer values, event length), prefix and
        temperature at run time.
      allow_nan_stats: TFP convention; unused by the methods implemented here.
      name: name scope.

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=3, hidden_size=8, seed=1)
    dist = probseq.LSTMAutoregressive(net, num_steps=4)
    x = dist.sample(2, seed=(1, 2))  # ==> int32 [2, 4]
    dist.log_prob(x)                 # ==> float32 [2]
    ```
    """

    _RANK_ERROR_NAME = "LSTMAutoregressive"

    def __init__(
        self,
        network,
        num_steps: int,
        *,
        prefix=None,
        temperature=None,
        params=None,
        eos: int | None = None,
        lengths=None,
        precision: str = "fp32",
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "LSTMAutoregressive",
    ):
        if precision == "auto":
            from probseq.machine import choose_precision

            precision = choose_precision("auto")[0]
        parameters = dict(locals())
        num_steps = check_num_steps(num_steps, "num_steps")
        self._compute = precision_dtype(precision)  # None: fp32
        self._precision = precision
        with tf.name_scope(name) as name:
            self._network = network
            self._cell = network_cell(network)
            self._num_steps = num_steps
            float_dtype = network.dtype
            self._params = (
                None if params is None else check_params(network, params, name_leaves=True)
            )
            self._prefix = (
                None
                if prefix is None
                else convert_tokens(prefix, "prefix", "P", "; pass prefix=None for none.")
            )
            self._temperature = tensor_util.convert_nonref_to_tensor(
                temperature, dtype=float_dtype, name="temperature"
            )
            self._init_lengths(eos, lengths)
            self._init_distribution(parameters, validate_args, allow_nan_stats, name)

    # ----------------------------------------------------------------- properties
    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            prefix=tfp.util.ParameterProperties(
                event_ndims=1,
                default_constraining_bijector_fn=BIJECTOR_NOT_IMPLEMENTED,
            ),
            **cls._shared_parameter_properties(dtype),
        )

    @property
    def num_steps(self) -> int:
        """Sequence length `T` (the event size)."""
        return self._num_steps

    @property
    def precision(self) -> str:
        """`"fp32"` or `"bf16"` (an `"auto"` request resolved at construction)."""
        return self._precision

    @property
    def vocab_size(self) -> int:
        """Number of symbols `V`."""
        return self._network.vocab_size

    @property
    def prefix(self):
        """Conditioning tokens `[..., P]` or None."""
        return self._prefix

    # ------------------------------------------------------------------- internals
    def _context(self):
        return self._prefix

    def _context_assertions(self) -> list:
        if self._prefix is None:
            return []
        return range_assertions(self._prefix, self.vocab_size, f"{self.name}: prefix")

    def _start(self, params, batch_shape):
        """Logits for the first generated token and the state before reading it.

        Returns logits `batch + [V]` and per-layer state `batch + [H]`.
        """
        logits, state = cell_start(params, cell=self._cell, compute_dtype=self._compute)
        # prefix params (`pb` the first dims of the batch): pb + [1]*r + [F]
        k, rank = param_batch_ndims(params), self._batch_rank()
        logits = lift_to_batch(logits, k, rank)
        state = tf.nest.map_structure(lambda s: lift_to_batch(s, k, rank), state)
        if self._prefix is None:
            logits = tf.broadcast_to(logits, tf.concat([batch_shape, tf.shape(logits)[-1:]], 0))
            state = broadcast_state(state, batch_shape)
            return logits, state
        prefix = tf.broadcast_to(
            self._prefix, tf.concat([batch_shape, tf.shape(self._prefix)[-1:]], 0)
        )
        state = broadcast_state(state, batch_shape)
        logits_tm, state = cell_logits(
            params, prefix, state, cell=self._cell, time_major=True, compute_dtype=self._compute
        )
        return logits_tm[-1], state

    # -------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        return self._sample_tokens(n, self._num_steps, seed)

    def sample_with_length(self, length, sample_shape=(), seed=None) -> tf.Tensor:
        """Draw sequences of `length` tokens from the same conditionals.

        `length` may be a scalar int32 tensor (unknown when a function is traced, as in
        a SavedModel's `sample(length=...)`). For a Python int it equals
        `LSTMAutoregressive(network, length, ...).sample(sample_shape, seed=seed)`
        token for token (same seed rule).

        Returns:
          int32 `sample_shape + batch_shape + [length]`.
        """
        sample_shape = tf.TensorShape(sample_shape)
        n = sample_shape.num_elements()
        if n is None:
            raise ValueError(f"sample_shape must be static, got {sample_shape}.")
        tokens = self._sample_tokens(n, length, seed)  # :: [n] + batch + [length]
        shape = tf.concat([sample_shape.as_list(), tf.shape(tokens)[1:]], 0)
        return tf.reshape(tokens, shape)

    def _sample_tokens(self, n, num_steps, seed):
        seed = stateless_seed(seed)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        # No gradients in sampling: bf16 kernels are cast once, not at every step.
        params = reduced_precision_params(self._broadcast_params(batch_shape), self._compute)
        logits, state = self._start(params, batch_shape)
        compute = self._compute
        return sample_tokens(
            logits,
            state,
            lambda token, state: cell_step(
                params, token, state, cell=self._cell, compute_dtype=compute
            ),
            n=n,
            num_steps=num_steps,
            seed=seed,
            batch_shape=batch_shape,
            batch_rank=batch_rank,
            temperature=self._temperature_for(batch_shape, trailing=2),
            eos=self._eos,
            lengths=self._lengths_for(batch_shape, trailing=1),
        )
