"""`EncoderDecoder`: a distribution over target sequences conditioned on a source sequence."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import (
    dtype_util,
    parameter_properties,
    reparameterization,
    samplers,
    tensor_util,
)

from probseq.nn.cells import cell_encode, cell_initial_state, cell_logits, cell_step

tfd = tfp.distributions

__all__ = ["DecoderStart", "EncoderDecoder"]


class DecoderStart(NamedTuple):
    """The decoder after reading the source, for decoding algorithms (greedy, beam search).

    Attributes:
      logits: `batch + [V]`, temperature-scaled logits of the first target token.
      state: decoder state after its first step, per layer, tensors `batch + [H]`.
      step: `(token :: batch + rest, state) -> (logits :: batch + rest + [V], state)`,
        one decoder step (temperature applied), state tensors `batch + rest + [H]`.
    """

    logits: tf.Tensor
    state: tuple
    step: Callable


class EncoderDecoder(tfd.Distribution):
    """Distribution over `target_steps` tokens given a source sequence (encoder-decoder).

    `p(y_1..y_T | x) = prod_t Categorical(y_t | logits_t / temperature)`, where an encoder
    reads the source `x` and a decoder, started from the encoder's final state, reads
    `y_1..y_{t-1}`.

    #### Mathematical details

    The encoder (its own embedding and weights) starts from the zero state and reads the
    `S` source tokens; its final state (layer by layer) is the decoder's initial state.
    The decoder's first step reads *no* token (a zero input term, as in
    `LSTMAutoregressive`), then `y_1, ..., y_{T-1}`; the logits after each step give the
    next target token:

    ```none
    h_0 = encoder(x_1..x_S)
    log p(y | x) = sum_{t=1}^{T} log softmax(logits_t(h_0, y_<t) / temperature)[y_t]
    ```

    Shapes: event shape `[target_steps]`; batch shape is the broadcast of the source's
    leading dims `source.shape[:-1]`, of the leading dims of `params` and of
    `temperature`. `sample(s)` has shape `s + batch_shape + [T]`; `log_prob(y)` has
    shape `y.shape[:-1]` broadcast against `batch_shape`. `log_prob` is one teacher-forced
    pass; `sample` is one `tf.while_loop` over target steps with stateless seeds (Gumbel-
    max), so the same seed gives the same samples in eager mode and in `tf.function`.

    Args:
      network: a `probseq.nn.Seq2SeqNetwork` (sizes, cell and, when `params` is None, the
        variables).
      source: int tokens `[..., S]`, `S >= 1`, in `[0, source_vocab_size)`; its leading
        dims are batch dims.
      target_steps: Python int `T >= 1`, the target length.
      temperature: optional positive float (scalar or batched; Tensor or Variable).
      params: optional structure like `network.params` with optional leading batch dims
        (e.g. posterior draws), used instead of the network's variables.
      validate_args: check target and source tokens (range, integer values, length) and
        the temperature at run time.
      allow_nan_stats: TFP convention; unused by the methods implemented here.
      name: name scope.

    #### Examples

    ```python
    net = probseq.nn.Seq2SeqNetwork(10, 10, hidden_size=16, seed=1)
    dist = probseq.distributions.EncoderDecoder(net, source=[[1, 2, 3], [4, 5, 6]],
                                                target_steps=2)
    dist.batch_shape                 # ==> [2]
    y = dist.sample(5, seed=(1, 2))  # ==> int32 [5, 2, 2]
    dist.log_prob(y)                 # ==> float32 [5, 2]
    ```

    #### References

    [1] Sutskever, Vinyals, Le. Sequence to Sequence Learning with Neural Networks.
        NeurIPS 2014. https://arxiv.org/abs/1409.3215
    """

    def __init__(
        self,
        network,
        source,
        target_steps: int,
        *,
        temperature=None,
        params=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "EncoderDecoder",
    ):
        parameters = dict(locals())
        if isinstance(target_steps, bool) or not isinstance(target_steps, (int, np.integer)):
            raise TypeError(
                f"target_steps must be a Python int, got {type(target_steps).__name__}."
            )
        if target_steps < 1:
            raise ValueError(f"target_steps must be >= 1, got {target_steps}.")
        with tf.name_scope(name) as name:
            self._network = network
            self._target_steps = int(target_steps)
            self._params = None if params is None else _check_params(network, params)
            self._source = _convert_source(source)
            self._temperature = tensor_util.convert_nonref_to_tensor(
                temperature, dtype=network.dtype, name="temperature"
            )
            super().__init__(
                dtype=tf.int32,
                reparameterization_type=reparameterization.NOT_REPARAMETERIZED,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    # ----------------------------------------------------------------- properties
    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            source=parameter_properties.ParameterProperties(
                event_ndims=1,
                default_constraining_bijector_fn=parameter_properties.BIJECTOR_NOT_IMPLEMENTED,
            ),
            temperature=parameter_properties.ParameterProperties(
                default_constraining_bijector_fn=(
                    lambda: tfp.bijectors.Softplus(low=dtype_util.eps(dtype))
                )
            ),
            params=parameter_properties.ParameterProperties(
                event_ndims=lambda self: tf.nest.map_structure(
                    lambda p: p.shape.rank, self._network.params
                ),
                default_constraining_bijector_fn=parameter_properties.BIJECTOR_NOT_IMPLEMENTED,
            ),
        )

    @property
    def network(self):
        """The `Seq2SeqNetwork` giving sizes, cell and (by default) the variables."""
        return self._network

    @property
    def source(self) -> tf.Tensor:
        """Source tokens `[..., S]` (int32)."""
        return self._source

    @property
    def target_steps(self) -> int:
        """Target length `T` (the event size)."""
        return self._target_steps

    @property
    def num_steps(self) -> int:
        """Alias of `target_steps` (the name `LSTMAutoregressive` uses)."""
        return self._target_steps

    @property
    def vocab_size(self) -> int:
        """Number of target symbols `V`."""
        return self._network.target_vocab_size

    @property
    def temperature(self):
        """Sampling temperature or None (meaning 1)."""
        return self._temperature

    @property
    def params(self) -> dict:
        """The params in use: the explicit `params`, else the network's variables."""
        return self._network.params if self._params is None else self._params

    # --------------------------------------------------------------------- shapes
    def _event_shape(self):
        return tf.TensorShape([self._target_steps])

    def _event_shape_tensor(self):
        return tf.constant([self._target_steps], dtype=tf.int32)

    def _batch_shape(self):
        shape = tf.TensorShape([])
        for part in (
            self.params["decoder"]["output"]["bias"].shape[:-1],
            self._source.shape[:-1],
            None if self._temperature is None else self._temperature.shape,
        ):
            if part is not None:
                shape = tf.broadcast_static_shape(shape, part)
        return shape

    def _batch_shape_tensor(self):
        shape = tf.shape(self.params["decoder"]["output"]["bias"])[:-1]
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._source)[:-1])
        if self._temperature is not None:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._temperature))
        return shape

    def _batch_rank(self) -> int:
        rank = self.batch_shape.rank
        if rank is None:
            raise ValueError(f"{self.name} needs a batch shape of known rank.")
        return rank

    # ------------------------------------------------------------------ internals
    def _broadcast_params(self, batch_shape) -> dict:
        """Params with their batch dims broadcast to `batch_shape` (no-op if unbatched)."""
        params = tf.nest.map_structure(tf.convert_to_tensor, self.params)
        k = params["decoder"]["output"]["bias"].shape.rank - 1
        if k == 0 or params["decoder"]["output"]["bias"].shape[:-1] == self.batch_shape:
            return params
        return tf.nest.map_structure(
            lambda p: tf.broadcast_to(p, tf.concat([batch_shape, tf.shape(p)[k:]], 0)), params
        )

    def _temperature_for(self, batch_shape, trailing: int, leading: int = 0):
        """Temperature broadcast to `batch_shape`, as `[1]*leading + batch + [1]*trailing`."""
        if self._temperature is None:
            return None
        temperature = tf.broadcast_to(tf.convert_to_tensor(self._temperature), batch_shape)
        shape = tf.concat(
            [tf.ones([leading], tf.int32), batch_shape, tf.ones([trailing], tf.int32)], 0
        )
        return tf.reshape(temperature, shape)

    def _encode_and_start(self, params: dict, batch_shape):
        """Encode the source, take the decoder's first step (no token).

        Returns logits `batch + [V]` (temperature *not* applied) and the decoder state
        after the first step, tensors `batch + [H]`.
        """
        cell = self._network.cell
        source = tf.broadcast_to(
            self._source, tf.concat([batch_shape, tf.shape(self._source)[-1:]], 0)
        )
        zero = cell_initial_state(params["encoder"], batch_shape, cell=cell)
        state = cell_encode(params["encoder"], source, zero, cell=cell)  # batch + [H]
        return cell_step(params["decoder"], None, state, cell=cell)

    def decoder_start(self) -> DecoderStart:
        """The decoder after encoding the source: first-token logits and a step function.

        For decoding algorithms (`probseq.distributions.greedy_decode`, `beam_search`):
        everything is broadcast to the batch shape, and the temperature is applied to the
        logits, so that sums of `log_softmax(logits)[token]` along a path equal
        `log_prob` of the path.
        """
        batch_shape = self.batch_shape_tensor()
        params = self._broadcast_params(batch_shape)
        logits, state = self._encode_and_start(params, batch_shape)
        cell = self._network.cell
        temperature0 = self._temperature_for(batch_shape, trailing=1)
        if temperature0 is not None:
            logits = logits / temperature0

        def step(token, state):
            logits, state = cell_step(params["decoder"], token, state, cell=cell)
            rest = token.shape.rank - self._batch_rank()
            temperature = self._temperature_for(batch_shape, trailing=rest + 1)
            if temperature is not None:
                logits = logits / temperature
            return logits, state

        return DecoderStart(logits, state, step)

    # -------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        seed = _sanitize_seed(seed, salt="EncoderDecoder")
        batch_rank = self._batch_rank()
        start = self.decoder_start()
        batch_shape = tf.shape(start.logits)[:-1]
        # Layout `batch + [n]` inside the loop so batched params line up with their dims.
        full = tf.concat([batch_shape, [n]], 0)
        logits = tf.broadcast_to(
            start.logits[..., None, :], tf.concat([full, tf.shape(start.logits)[-1:]], 0)
        )
        state = tf.nest.map_structure(
            lambda s: tf.broadcast_to(s[..., None, :], tf.concat([full, tf.shape(s)[-1:]], 0)),
            start.state,
        )
        seeds = samplers.split_seed(seed, n=tf.constant(self._target_steps))

        def draw(logits, step_seed):
            # Gumbel-max: argmax(logits + G) ~ Categorical(logits), for any rank.
            u = samplers.uniform(
                tf.shape(logits),
                minval=np.finfo(np.float32).tiny,
                maxval=1.0,
                dtype=logits.dtype,
                seed=step_seed,
            )
            return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)

        first = draw(logits, seeds[0])
        tokens = tf.TensorArray(tf.int32, size=self._target_steps, element_shape=first.shape)
        tokens = tokens.write(0, first)

        def body(t, token, state, tokens):
            logits, state = start.step(token, state)
            token = draw(logits, seeds[t])
            return t + 1, token, state, tokens.write(t, token)

        if self._target_steps > 1:
            _, _, _, tokens = tf.while_loop(
                lambda t, *_: t < self._target_steps,
                body,
                (tf.constant(1), first, state, tokens),
                maximum_iterations=self._target_steps - 1,
            )
        samples = tokens.stack()  # :: [T] + batch + [n]
        perm = [batch_rank + 1] + list(range(1, batch_rank + 1)) + [0]
        return tf.transpose(samples, perm)  # :: [n] + batch + [T]

    # -------------------------------------------------------------------- log_prob
    def _log_prob(self, y):
        y = self._cast_tokens(y)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        # Broadcast y against the batch shape and put its sample dims *after* the batch
        # dims, so that batched params line up with their batch dims.
        value_batch = tf.broadcast_dynamic_shape(tf.shape(y)[:-1], batch_shape)
        y = tf.broadcast_to(y, tf.concat([value_batch, [self._target_steps]], 0))
        rank = y.shape.rank
        sample_rank = rank - 1 - batch_rank
        y = tf.transpose(
            y,
            list(range(sample_rank, sample_rank + batch_rank))
            + list(range(sample_rank))
            + [rank - 1],
        )  # :: batch + sample + [T]
        params = self._broadcast_params(batch_shape)
        logits0, state = self._encode_and_start(params, batch_shape)
        lead = tf.shape(y)[:-1]
        for _ in range(sample_rank):
            logits0 = logits0[..., None, :]
            state = tf.nest.map_structure(lambda s: s[..., None, :], state)
        logits0 = tf.broadcast_to(logits0, tf.concat([lead, tf.shape(logits0)[-1:]], 0))[None]
        if self._target_steps > 1:
            state = tf.nest.map_structure(
                lambda s: tf.broadcast_to(s, tf.concat([lead, tf.shape(s)[-1:]], 0)), state
            )
            rest, _ = cell_logits(
                params["decoder"], y[..., :-1], state, cell=self._network.cell, time_major=True
            )
            logits = tf.concat([logits0, rest], axis=0)  # :: [T] + batch + sample + [V]
        else:
            logits = logits0
        temperature = self._temperature_for(batch_shape, trailing=sample_rank + 1, leading=1)
        if temperature is not None:
            logits = logits / temperature
        targets = tf.transpose(y, [rank - 1, *range(rank - 1)])  # :: [T] + batch + sample
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        log_prob = -tf.reduce_sum(nll, axis=0)  # :: batch + sample
        back = list(range(batch_rank, batch_rank + sample_rank)) + list(range(batch_rank))
        return tf.transpose(log_prob, back)  # :: sample + batch

    def _cast_tokens(self, y):
        y = tf.convert_to_tensor(y)
        if y.dtype.is_bool or not (y.dtype.is_integer or y.dtype.is_floating):
            raise TypeError(f"{self.name}: tokens must be integers, got dtype {y.dtype.name}.")
        if y.shape.rank is not None and y.shape.rank == 0:
            raise ValueError(f"{self.name}: tokens must have shape [..., {self._target_steps}].")
        length = y.shape[-1] if y.shape.rank is not None else None
        if length is not None and length != self._target_steps:
            raise ValueError(
                f"{self.name}: expected target sequences of length target_steps="
                f"{self._target_steps} in the last axis, got shape {y.shape.as_list()}."
            )
        return tf.cast(y, tf.int32)

    # ----------------------------------------------------------------- validation
    def _sample_control_dependencies(self, y):
        if not self.validate_args:
            return []
        y = tf.convert_to_tensor(y)
        self._cast_tokens(y)  # static errors (dtype, length) first, as without validate_args
        assertions = [
            tf.debugging.assert_equal(
                tf.shape(y)[-1],
                self._target_steps,
                message=f"{self.name}: last axis of the target tokens must have length "
                f"target_steps={self._target_steps}.",
            )
        ]
        if y.dtype.is_floating:
            assertions.append(
                tf.debugging.assert_equal(
                    y, tf.round(y), message=f"{self.name}: target tokens must be integer-valued."
                )
            )
        assertions.extend(_range_assertions(y, self.vocab_size, f"{self.name}: target tokens"))
        return assertions

    def _parameter_control_dependencies(self, is_init):
        if not self.validate_args:
            return []
        assertions = []
        temperature = self._temperature
        if temperature is not None and is_init != tensor_util.is_ref(temperature):
            assertions.append(
                tf.debugging.assert_positive(
                    temperature, message=f"{self.name}: temperature must be positive."
                )
            )
        if is_init:
            assertions.extend(
                _range_assertions(
                    self._source, self._network.source_vocab_size, f"{self.name}: source tokens"
                )
            )
        return assertions


# ---------------------------------------------------------------------- helpers
def _sanitize_seed(seed, salt: str):
    """`samplers.sanitize_seed`, also for int64 pairs (e.g. `np.array([1, 2])`).

    With a salt, TFP folds the salt into the seed and then requires int32; a stateless
    pair of int64 is cast to the int32 pair it denotes.
    """
    if seed is not None and not isinstance(seed, int):
        seed = tf.convert_to_tensor(seed)
        if seed.dtype != tf.int32:
            seed = tf.cast(seed, tf.int32)
    return samplers.sanitize_seed(seed, salt=salt)


def _convert_source(source) -> tf.Tensor:
    source = tf.convert_to_tensor(source, dtype_hint=tf.int32, name="source")
    if source.dtype.is_bool or not source.dtype.is_integer:
        raise TypeError(f"source must be integer tokens, got dtype {source.dtype.name}.")
    if source.shape.rank == 0:
        raise ValueError("source must have shape [..., S] with S >= 1, got a scalar.")
    if source.shape.rank is not None and source.shape[-1] == 0:
        raise ValueError("source must hold at least one token (S >= 1).")
    return tf.cast(source, tf.int32)


def _check_params(network, params: dict) -> dict:
    """Validate an explicit params structure against the network's (static shapes)."""
    reference = network.params
    try:
        tf.nest.assert_same_structure(reference, params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"params must have the same structure as network.params: {error}"
        ) from None
    params = tf.nest.map_structure(
        lambda p: p if tensor_util.is_ref(p) else tf.convert_to_tensor(p, network.dtype), params
    )
    batch_shapes = set()
    for ref, value in zip(tf.nest.flatten(reference), tf.nest.flatten(params), strict=True):
        core, shape = ref.shape, value.shape
        if shape.rank is None or shape.rank < core.rank or shape[shape.rank - core.rank :] != core:
            raise ValueError(
                f"every params leaf must have shape [..., *core] with the network's core "
                f"shape; got {shape} where the network has {core}."
            )
        batch_shapes.add(tuple(shape[: shape.rank - core.rank].as_list()))
    if len(batch_shapes) != 1:
        raise ValueError(
            f"all params must share the same leading batch shape, got {sorted(batch_shapes)}."
        )
    return params


def _range_assertions(x, vocab_size: int, what: str) -> list:
    return [
        tf.debugging.assert_non_negative(x, message=f"{what} must be >= 0."),
        tf.debugging.assert_less(
            x, tf.cast(vocab_size, x.dtype), message=f"{what} must be < vocab_size={vocab_size}."
        ),
    ]
