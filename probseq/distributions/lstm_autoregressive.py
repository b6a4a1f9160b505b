"""`LSTMAutoregressive`: a distribution over token sequences whose conditionals are an LSTM."""

from __future__ import annotations

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

from probseq.nn import cell_logits, cell_start, cell_step, param_batch_ndims

tfd = tfp.distributions

__all__ = ["LSTMAutoregressive"]


class LSTMAutoregressive(tfd.Distribution):
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
    (batch) dims of `params`, of `prefix[..., :-1]` and of `temperature`.
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

    def __init__(
        self,
        network,
        num_steps: int,
        *,
        prefix=None,
        temperature=None,
        params=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "LSTMAutoregressive",
    ):
        parameters = dict(locals())
        if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
            raise TypeError(f"num_steps must be a Python int, got {type(num_steps).__name__}.")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
        with tf.name_scope(name) as name:
            self._network = network
            self._cell = getattr(network, "cell", "lstm")
            self._num_steps = int(num_steps)
            float_dtype = network.dtype
            self._params = None if params is None else _check_params(network, params)
            self._prefix = _convert_prefix(prefix)
            self._temperature = tensor_util.convert_nonref_to_tensor(
                temperature, dtype=float_dtype, name="temperature"
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
            prefix=parameter_properties.ParameterProperties(
                event_ndims=1,
                default_constraining_bijector_fn=parameter_properties.BIJECTOR_NOT_IMPLEMENTED,
            ),
            temperature=parameter_properties.ParameterProperties(
                default_constraining_bijector_fn=(
                    lambda: tfp.bijectors.Softplus(low=dtype_util.eps(dtype))
                )
            ),
            params=parameter_properties.ParameterProperties(
                event_ndims=lambda self: _core_ndims(self._network.params),
                default_constraining_bijector_fn=parameter_properties.BIJECTOR_NOT_IMPLEMENTED,
            ),
        )

    @property
    def network(self):
        """The `LSTMNetwork` giving sizes (and the default variables)."""
        return self._network

    @property
    def num_steps(self) -> int:
        """Sequence length `T` (the event size)."""
        return self._num_steps

    @property
    def vocab_size(self) -> int:
        """Number of symbols `V`."""
        return self._network.vocab_size

    @property
    def prefix(self):
        """Conditioning tokens `[..., P]` or None."""
        return self._prefix

    @property
    def temperature(self):
        """Sampling temperature or None (meaning 1)."""
        return self._temperature

    @property
    def params(self) -> dict:
        """The params structure in use: the explicit `params`, else the network's."""
        return self._network.params if self._params is None else self._params

    # --------------------------------------------------------------------- shapes
    def _event_shape(self):
        return tf.TensorShape([self._num_steps])

    def _event_shape_tensor(self):
        return tf.constant([self._num_steps], dtype=tf.int32)

    def _batch_shape(self):
        shape = tf.TensorShape([])
        for part in self._batch_parts_static():
            shape = tf.broadcast_static_shape(shape, part)
        return shape

    def _batch_shape_tensor(self):
        shape = tf.constant([], dtype=tf.int32)
        for part in self._batch_parts_dynamic():
            shape = tf.broadcast_dynamic_shape(shape, part)
        return shape

    def _batch_parts_static(self):
        params = self.params
        parts = [params["output"]["bias"].shape[:-1]]
        if self._prefix is not None:
            parts.append(self._prefix.shape[:-1])
        if self._temperature is not None:
            parts.append(self._temperature.shape)
        return parts

    def _batch_parts_dynamic(self):
        params = self.params
        parts = [tf.shape(params["output"]["bias"])[:-1]]
        if self._prefix is not None:
            parts.append(tf.shape(self._prefix)[:-1])
        if self._temperature is not None:
            parts.append(tf.shape(self._temperature))
        return parts

    # ------------------------------------------------------------------- internals
    def _batch_rank(self) -> int:
        rank = self.batch_shape.rank
        if rank is None:
            raise ValueError("LSTMAutoregressive needs a batch shape of known rank.")
        return rank

    def _broadcast_params(self, batch_shape) -> dict:
        """Params with their batch dims broadcast to `batch_shape` (no-op if unbatched)."""
        params = tf.nest.map_structure(tf.convert_to_tensor, self.params)
        if param_batch_ndims(params) == 0:
            return params
        if params["output"]["bias"].shape[:-1] == self.batch_shape:
            return params
        return tf.nest.map_structure(
            lambda p: tf.broadcast_to(
                p, tf.concat([batch_shape, tf.shape(p)[param_batch_ndims(params) :]], 0)
            ),
            params,
        )

    def _start(self, params, batch_shape):
        """Logits for the first generated token and the state before reading it.

        Returns logits `batch + [V]` and per-layer state `batch + [H]`.
        """
        logits, state = cell_start(params, cell=self._cell)  # :: pb + [V], pb + [H]
        if self._prefix is None:
            logits = tf.broadcast_to(logits, tf.concat([batch_shape, tf.shape(logits)[-1:]], 0))
            state = _broadcast_state(state, batch_shape)
            return logits, state
        prefix = tf.broadcast_to(
            self._prefix, tf.concat([batch_shape, tf.shape(self._prefix)[-1:]], 0)
        )
        state = _broadcast_state(state, batch_shape)
        logits_tm, state = cell_logits(params, prefix, state, cell=self._cell, time_major=True)
        return logits_tm[-1], state

    def _temperature_for(self, batch_shape, trailing: int, leading: int = 0):
        """Temperature broadcast to `batch_shape`, reshaped to `[1]*leading + B + [1]*trailing`."""
        if self._temperature is None:
            return None
        temp = tf.broadcast_to(tf.convert_to_tensor(self._temperature), batch_shape)
        shape = tf.concat(
            [tf.ones([leading], tf.int32), batch_shape, tf.ones([trailing], tf.int32)], 0
        )
        return tf.reshape(temp, shape)

    # -------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        seed = samplers.sanitize_seed(seed)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        params = self._broadcast_params(batch_shape)
        logits, state = self._start(params, batch_shape)
        # Work in layout `batch + [n]` so batched params line up with their batch dims.
        full = tf.concat([batch_shape, [n]], 0)
        logits = tf.broadcast_to(logits[..., None, :], tf.concat([full, tf.shape(logits)[-1:]], 0))
        state = _broadcast_state(_expand_state(state), full)
        temperature = self._temperature_for(batch_shape, trailing=2)
        seeds = samplers.split_seed(seed, n=tf.constant(self._num_steps))

        def draw(logits, step_seed):
            if temperature is not None:
                logits = logits / temperature
            # Gumbel-max: argmax(logits + G) ~ Categorical(logits); works for any rank.
            u = samplers.uniform(
                tf.shape(logits),
                minval=np.finfo(np.float32).tiny,
                maxval=1.0,
                dtype=logits.dtype,
                seed=step_seed,
            )
            return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)

        first = draw(logits, seeds[0])
        tokens = tf.TensorArray(tf.int32, size=self._num_steps, element_shape=first.shape)
        tokens = tokens.write(0, first)

        def body(t, token, state, tokens):
            logits, state = cell_step(params, token, state, cell=self._cell)
            token = draw(logits, seeds[t])
            return t + 1, token, state, tokens.write(t, token)

        if self._num_steps > 1:
            _, _, _, tokens = tf.while_loop(
                lambda t, *_: t < self._num_steps,
                body,
                (tf.constant(1), first, state, tokens),
                maximum_iterations=self._num_steps - 1,
            )
        samples = tokens.stack()  # :: [T] + batch + [n]
        perm = [batch_rank + 1] + list(range(1, batch_rank + 1)) + [0]
        return tf.transpose(samples, perm)  # :: [n] + batch + [T]

    # -------------------------------------------------------------------- log_prob
    def _log_prob(self, x):
        x = self._cast_tokens(x)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        # Broadcast x against the batch shape, then put the sample dims *after* the
        # batch dims so that batched params line up with their batch dims.
        value_batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], batch_shape)
        x = tf.broadcast_to(x, tf.concat([value_batch, [self._num_steps]], 0))
        rank = x.shape.rank
        sample_rank = rank - 1 - batch_rank
        to_batch_first = (
            list(range(sample_rank, sample_rank + batch_rank))
            + list(range(sample_rank))
            + [rank - 1]
        )
        x = tf.transpose(x, to_batch_first)  # :: batch + sample + [T]
        params = self._broadcast_params(batch_shape)
        logits0, state = self._start(params, batch_shape)
        lead = tf.shape(x)[:-1]
        logits0 = tf.broadcast_to(
            _expand_dims(logits0, -2, sample_rank), tf.concat([lead, tf.shape(logits0)[-1:]], 0)
        )[None]  # :: [1] + batch + sample + [V]
        if self._num_steps > 1:
            for _ in range(sample_rank):
                state = _expand_state(state)
            state = _broadcast_state(state, lead)
            rest, _ = cell_logits(params, x[..., :-1], state, cell=self._cell, time_major=True)
            logits = tf.concat([logits0, rest], axis=0)  # :: [T] + batch + sample + [V]
        else:
            logits = logits0
        temperature = self._temperature_for(batch_shape, trailing=sample_rank + 1, leading=1)
        if temperature is not None:
            logits = logits / temperature
        targets = tf.transpose(x, [rank - 1, *range(rank - 1)])  # :: [T] + batch + sample
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        log_prob = -tf.reduce_sum(nll, axis=0)  # :: batch + sample
        back = list(range(batch_rank, batch_rank + sample_rank)) + list(range(batch_rank))
        return tf.transpose(log_prob, back)

    def _cast_tokens(self, x):
        x = tf.convert_to_tensor(x)
        if x.dtype.is_bool or not (x.dtype.is_integer or x.dtype.is_floating):
            raise TypeError(f"{self.name}: tokens must be integers, got dtype {x.dtype.name}.")
        self._check_static_length(x)
        return tf.cast(x, tf.int32)

    def _check_static_length(self, x):
        """A statically known wrong event length is a ValueError, validate_args or not."""
        if x.shape.rank is not None and x.shape.rank == 0:
            raise ValueError(f"{self.name}: tokens must have shape [..., {self._num_steps}].")
        length = x.shape[-1] if x.shape.rank is not None else None
        if length is not None and length != self._num_steps:
            raise ValueError(
                f"{self.name}: expected sequences of length num_steps={self._num_steps} "
                f"in the last axis, got shape {x.shape.as_list()}."
            )

    # ----------------------------------------------------------------- validation
    def _call_log_prob(self, value, name, **kwargs):
        return super()._call_log_prob(_keep_float_dtype(value), name, **kwargs)

    def _call_prob(self, value, name, **kwargs):
        return super()._call_prob(_keep_float_dtype(value), name, **kwargs)

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        x = tf.convert_to_tensor(x)
        self._check_static_length(x)
        assertions = []
        if x.shape.rank is None or x.shape[-1] is None:
            assertions.append(
                tf.debugging.assert_equal(
                    tf.shape(x)[-1],
                    self._num_steps,
                    message=f"{self.name}: last axis of the tokens must have length "
                    f"num_steps={self._num_steps}.",
                )
            )
        if x.dtype.is_floating:
            assertions.append(
                tf.debugging.assert_equal(
                    x, tf.round(x), message=f"{self.name}: tokens must be integer-valued."
                )
            )
        assertions.extend(_range_assertions(x, self.vocab_size, f"{self.name}: tokens"))
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
        if self._prefix is not None and is_init:
            assertions.extend(
                _range_assertions(self._prefix, self.vocab_size, f"{self.name}: prefix")
            )
        return assertions


# ---------------------------------------------------------------------- helpers
def _keep_float_dtype(value):
    """Convert numpy float tokens without TFP's int32 dtype hint (which would truncate
    1.5 to 1 before `validate_args` could see it)."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return tf.convert_to_tensor(value)
    return value


def _core_ndims(params: dict) -> dict:
    k = param_batch_ndims(params)
    return tf.nest.map_structure(lambda p: p.shape.rank - k, params)


def _check_params(network, params: dict) -> dict:
    """Validate an explicit params structure against the network's (static shapes)."""
    reference = network.params
    try:
        tf.nest.assert_same_structure(reference, params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "params must have the same structure as network.params "
            f"(keys {sorted(reference)}): {error}"
        ) from None
    params = tf.nest.map_structure(
        lambda p: p if tensor_util.is_ref(p) else tf.convert_to_tensor(p, network.dtype),
        params,
    )
    batch_shapes = set()
    for path, (ref, value) in zip(
        _paths(reference),
        zip(tf.nest.flatten(reference), tf.nest.flatten(params), strict=True),
        strict=True,
    ):
        core = ref.shape
        shape = value.shape
        if shape.rank is None or shape.rank < core.rank or shape[shape.rank - core.rank :] != core:
            raise ValueError(
                f"params[{path}] must have shape [..., {', '.join(map(str, core))}] like the "
                f"network's, got {shape}."
            )
        batch_shapes.add(tuple(shape[: shape.rank - core.rank].as_list()))
    if len(batch_shapes) != 1:
        raise ValueError(
            f"all params must share the same leading batch shape, got {sorted(batch_shapes)}."
        )
    return params


def _paths(structure: dict) -> list[str]:
    paths = []
    for key in sorted(structure):
        value = structure[key]
        if isinstance(value, dict):
            paths.extend(f"{key!r}][{sub}" for sub in _paths(value))
        else:
            paths.append(repr(key))
    return paths


def _convert_prefix(prefix):
    if prefix is None:
        return None
    prefix = tf.convert_to_tensor(prefix, dtype_hint=tf.int32, name="prefix")
    if not prefix.dtype.is_integer:
        raise TypeError(f"prefix must be integer tokens, got dtype {prefix.dtype.name}.")
    if prefix.shape.rank == 0:
        raise ValueError("prefix must have shape [..., P] with P >= 1, got a scalar.")
    if prefix.shape[-1] == 0:
        raise ValueError("prefix must hold at least one token; pass prefix=None for none.")
    return tf.cast(prefix, tf.int32)


def _range_assertions(x, vocab_size: int, what: str) -> list:
    return [
        tf.debugging.assert_non_negative(x, message=f"{what} must be >= 0."),
        tf.debugging.assert_less(
            x,
            tf.cast(vocab_size, x.dtype),
            message=f"{what} must be < vocab_size={vocab_size}.",
        ),
    ]


def _expand_dims(x, axis: int, times: int):
    for _ in range(times):
        x = tf.expand_dims(x, axis)
    return x


def _expand_state(state):
    """Add one unit axis before the feature axis of every state tensor."""
    return tf.nest.map_structure(lambda s: tf.expand_dims(s, -2), state)


def _broadcast_state(state, batch_shape):
    return tf.nest.map_structure(
        lambda s: tf.broadcast_to(s, tf.concat([batch_shape, tf.shape(s)[-1:]], 0)), state
    )
