"""`DeepAR`: the forecast distribution of a series' next values given its past.

The model of Salinas et al. (2020), "DeepAR: probabilistic forecasting with
autoregressive recurrent networks", on probseq's recurrent core and emission heads:

```none
nu    = mean(|z_{P-C}..z_{P-1}|)              (1 where that mean is 0)
h_i   = cell(h_{i-1}, [z_{i-l}/nu for l in lags, x_i, log nu])     i = P-C .. P+H-1
z_i  ~ head(W h_i + b) scaled by nu                                (i >= P: the forecast)
```

`P` past values condition the distribution; the network reads the last `C` of them
(`context_length`) teacher-forced, then the `H` forecast steps. Every step reads lagged
values (`lags`, e.g. 1 and the seasonal period: 12 for monthly data), the known features
`x_i` of its time (`time_features`, e.g. the month) and the log of the series' scale
`nu`, so one network serves series of any magnitude (values are divided by `nu` on the
way in and the head's distribution is multiplied by `nu` on the way out:
`EmissionHead.scaled_distribution`).

It is a distribution over the forecast window `[H]` (exact `log_prob`, seeded sample
paths drawn in one compiled loop), conditioned on the past as `EncoderDecoder` is on its
source. `window_log_prob` also scores the context steps: the training loss of GluonTS's
DeepAR, which learns from every step of a training window.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal.parameter_properties import BIJECTOR_NOT_IMPLEMENTED

from probseq.distributions._sequence import NetworkParams, check_num_steps, check_params
from probseq.distributions.heads import Bernoulli, EmissionHead, StudentT
from probseq.nn.cells import cell_initial_state, network_cell
from probseq.nn.dense import dense_outputs, dense_step
from probseq.seeds import split, stateless_seed

tfd = tfp.distributions

__all__ = ["DeepAR", "check_lags"]


def check_lags(lags) -> tuple[int, ...]:
    """Lags as a sorted tuple of distinct Python ints `>= 1` (at least one)."""
    try:
        values = [int(lag) for lag in lags]
    except TypeError:
        raise TypeError(f"lags must be a sequence of ints >= 1, got {lags!r}.") from None
    if any(isinstance(lag, bool) or int(lag) != lag for lag in lags):
        raise TypeError(f"lags must be ints, got {list(lags)!r}.")
    if not values or min(values) < 1:
        raise ValueError(f"lags must be one or more ints >= 1, got {list(lags)!r}.")
    return tuple(sorted(set(values)))


class DeepAR(NetworkParams, tfd.AutoCompositeTensorDistribution):
    """The distribution of the next `prediction_length` values of series given their past.

    Args:
      network: a `probseq.nn.RealValuedNetwork` with `input_size == len(lags) + F + 1`
        (`F` time features) and `output_size == head.num_params`.
      past_values: floats `[..., P]`, the observed past of each series (leading dims are
        batch dims). `P >= context_length + max(lags)`; no NaN (fill gaps first).
      prediction_length: Python int `H >= 1`, the forecast window.
      head: a scalar `EmissionHead` (default `StudentT()`; `Normal()`,
        `NegativeBinomial()` for counts).
      lags: Python ints `>= 1`: step `i` reads `z_{i-l}` for each. Lag 1 is what makes
        the model autoregressive; leaving it out is allowed.
      context_length: steps of the past the network reads (default: all it can,
        `P - max(lags)`), also the window of the scale `nu`.
      time_features: optional floats `[..., P + H, F]`: known features of every past and
        forecast step (position in the season, holidays, a price), read at their step.
      params: optional structure like `network.params` (no leading dims, or the batch
        dims as a prefix).
      validate_args, allow_nan_stats, name: TFP conventions.

    Shapes: event `[H]`; batch: the broadcast of `past_values.shape[:-1]`, of
    `time_features.shape[:-2]` and of the params' leading dims. `sample(n)` gives sample
    paths `[n] + batch + [H]`.

    #### Examples

    ```python
    from probseq.distributions import DeepAR, heads
    net = probseq.nn.RealValuedNetwork(2 + 1, 16, 2, output_size=heads.StudentT().num_params)
    past = tf.random.stateless_normal([5, 48], seed=(1, 2)) + 10.0
    forecast = DeepAR(net, past, 12, lags=(1, 12))
    paths = forecast.sample(100, seed=(1, 2))   # ==> [100, 5, 12]
    forecast.log_prob(paths)                    # ==> [100, 5]
    ```
    """

    def __init__(
        self,
        network,
        past_values,
        prediction_length: int,
        head: EmissionHead | None = None,
        *,
        lags=(1,),
        context_length: int | None = None,
        time_features=None,
        params=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "DeepAR",
    ):
        parameters = dict(locals())
        head = StudentT() if head is None else head
        if not isinstance(head, EmissionHead):
            raise TypeError(f"head must be an EmissionHead, got {type(head).__name__}.")
        if head.event_size is not None or isinstance(head, Bernoulli):
            raise ValueError(f"DeepAR needs a scalar, scalable head; got {head!r}.")
        horizon = check_num_steps(prediction_length, "prediction_length")
        lags = check_lags(lags)
        with tf.name_scope(name) as name:
            past = _float_tensor(past_values, network.dtype, "past_values")
            if past.shape.rank is None or past.shape.rank < 1 or past.shape[-1] is None:
                raise ValueError(
                    f"past_values must have shape [..., P] with P known, got {past.shape}."
                )
            num_past = past.shape[-1]
            most = num_past - max(lags)
            if context_length is None:
                context_length = most
            if most < 1 or not 1 <= check_num_steps(context_length, "context_length") <= most:
                raise ValueError(
                    f"{num_past} past values leave {max(most, 0)} steps of context after the "
                    f"largest lag {max(lags)}; context_length={context_length} needs past "
                    f"values of length >= {context_length} + {max(lags)} (and >= 1 step of "
                    "context). Give more history, fewer or smaller lags, or a shorter context."
                )
            self._time_features = None
            num_features = 0
            if time_features is not None:
                feats = _float_tensor(time_features, network.dtype, "time_features")
                shape = feats.shape
                if shape.rank is None or shape.rank < 2 or shape[-2] != num_past + horizon:
                    raise ValueError(
                        "time_features must have shape [..., P + H, F] = [..., "
                        f"{num_past + horizon}, F] (the past and the forecast steps), got "
                        f"{shape}."
                    )
                self._time_features = feats
                num_features = shape[-1]
            inputs = len(lags) + num_features + 1
            if network.input_size != inputs or network.output_size != head.num_params:
                raise ValueError(
                    f"DeepAR with {len(lags)} lags, {num_features} time features and the log "
                    f"scale reads {inputs} inputs per step and {head!r} reads {head.num_params} "
                    f"parameters; the network has input_size={network.input_size} and "
                    f"output_size={network.output_size}."
                )
            self._network = network
            self._past_values = past
            self._horizon = horizon
            self._head = head
            self._lags = lags
            self._context_length = int(context_length)
            self._cell = network_cell(network)
            self._lengths = None
            self._params = None if params is None else check_params(network, params)
            super().__init__(
                dtype=network.dtype,
                reparameterization_type=(
                    tfd.FULLY_REPARAMETERIZED if head.reparameterized else tfd.NOT_REPARAMETERIZED
                ),
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        not_implemented = BIJECTOR_NOT_IMPLEMENTED
        properties = cls._network_parameter_properties()
        del properties["lengths"]
        return dict(
            **properties,
            past_values=tfp.util.ParameterProperties(
                event_ndims=1, default_constraining_bijector_fn=not_implemented
            ),
            time_features=tfp.util.ParameterProperties(
                event_ndims=2, default_constraining_bijector_fn=not_implemented
            ),
        )

    # ---------------------------------------------------------------- properties
    @property
    def past_values(self):
        return self._past_values

    @property
    def prediction_length(self) -> int:
        return self._horizon

    @property
    def head(self) -> EmissionHead:
        return self._head

    @property
    def lags(self) -> tuple[int, ...]:
        return self._lags

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def time_features(self):
        return self._time_features

    @property
    def scale(self) -> tf.Tensor:
        """`nu`, batch-shaped: the mean absolute value of the context (1 where it is 0)."""
        past = tf.broadcast_to(
            self._past_values, tf.concat([self.batch_shape_tensor(), [self._num_past]], 0)
        )
        return _mean_scale(past, self._context_length)

    @property
    def _num_past(self) -> int:
        return self._past_values.shape[-1]

    def _event_shape(self):
        return tf.TensorShape([self._horizon])

    def _event_shape_tensor(self):
        return tf.constant([self._horizon], tf.int32)

    def _batch_shape(self):
        shape = self.params_in_use["output"]["bias"].shape[:-1]
        shape = tf.broadcast_static_shape(shape, self._past_values.shape[:-1])
        if self._time_features is not None:
            shape = tf.broadcast_static_shape(shape, self._time_features.shape[:-2])
        return shape

    def _batch_shape_tensor(self):
        shape = tf.shape(self.params_in_use["output"]["bias"])[:-1]
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._past_values)[:-1])
        if self._time_features is not None:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._time_features)[:-2])
        return shape

    def _default_event_space_bijector(self):
        if self._head.name in ("poisson", "negative_binomial"):
            return None
        return tfp.bijectors.Identity()

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _lead(x, tail_rank: int, batch_shape, rest: int, lead):
        """`x :: batch' + tail` (`batch'` broadcasts to the batch; `tail` has `tail_rank`
        dims) laid out as `lead + tail`, where `lead = batch + r` and `rest = len(r)`."""
        tail = tf.shape(x)[x.shape.rank - tail_rank :]
        x = tf.broadcast_to(x, tf.concat([batch_shape, tail], 0))
        x = tf.reshape(x, tf.concat([batch_shape, tf.ones([rest], tf.int32), tail], 0))
        return tf.broadcast_to(x, tf.concat([lead, tail], 0))

    def _step_inputs(self, series, scale, features, start: int, stop: int):
        """The network's inputs of steps `start..stop-1` from `series :: lead + [>= stop]`
        (raw values), `scale :: lead` and `features :: lead + [P + H, F]` (or None)."""
        steps = np.arange(start, stop)
        index = steps[:, None] - np.asarray(self._lags)[None, :]  # :: [S, L]
        lagged = tf.gather(series, index, axis=-1) / scale[..., None, None]  # :: lead + [S, L]
        log_scale = tf.broadcast_to(
            tf.math.log(scale)[..., None, None], tf.concat([tf.shape(lagged)[:-1], [1]], 0)
        )
        parts = [lagged]
        if features is not None:
            parts.append(features[..., start:stop, :])
        parts.append(log_scale)
        return tf.concat(parts, axis=-1)

    def _prepared(self, rest: int, lead_tail):
        """Past values, scale, features and params laid out as `lead = batch + lead_tail`."""
        batch_shape = self.batch_shape_tensor()
        lead = tf.concat([batch_shape, lead_tail], 0)
        past = self._lead(self._past_values, 1, batch_shape, rest, lead)
        scale = _mean_scale(past, self._context_length)
        features = None
        if self._time_features is not None:
            features = self._lead(self._time_features, 2, batch_shape, rest, lead)
        params = self._broadcast_params(batch_shape)
        return lead, past, scale, features, params

    # ------------------------------------------------------------------ log_prob
    def _log_prob(self, x):
        return self._scored(x, include_context=False)

    def window_log_prob(self, future, name: str = "window_log_prob"):
        """`log p(z_{P-C} .. z_{P+H-1})` teacher-forced: the context steps scored as well
        as the forecast (GluonTS's DeepAR training loss); shape `sample + batch`."""
        with tf.name_scope(name):
            return self._scored(future, include_context=True)

    def _scored(self, x, include_context: bool):
        x = tf.convert_to_tensor(x, dtype_hint=self.dtype, name="future")
        if x.shape.rank is not None and (
            x.shape.rank < 1 or x.shape[-1] not in (None, self._horizon)
        ):
            raise ValueError(
                f"{self.name}: values must have shape [..., prediction_length="
                f"{self._horizon}], got {x.shape.as_list()}."
            )
        x = tf.cast(x, self.dtype)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        value_batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], batch_shape)
        x = tf.broadcast_to(x, tf.concat([value_batch, [self._horizon]], 0))
        rank = x.shape.rank
        sample_rank = rank - 1 - batch_rank
        perm = [*range(sample_rank, sample_rank + batch_rank), *range(sample_rank), rank - 1]
        x = tf.transpose(x, perm)  # :: batch + sample + [H]
        lead, past, scale, features, params = self._prepared(
            sample_rank, tf.shape(x)[batch_rank : rank - 1]
        )
        series = tf.concat([past, x], axis=-1)  # :: lead + [P + H]
        start = self._num_past - self._context_length
        inputs = self._step_inputs(series, scale, features, start, self._num_past + self._horizon)
        state = cell_initial_state(params, lead, cell=self._cell)
        outputs, _ = dense_outputs(params, inputs, state, cell=self._cell)  # :: lead + [S, P]
        if not include_context:
            outputs = outputs[..., self._context_length :, :]
        targets = series[..., self._num_past - (self._context_length if include_context else 0) :]
        distribution = self._head.scaled_distribution(outputs, scale[..., None])
        log_prob = tf.reduce_sum(distribution.log_prob(targets), axis=-1)  # :: batch + sample
        back = [*range(batch_rank, batch_rank + sample_rank), *range(batch_rank)]
        return tf.transpose(log_prob, back)

    # ------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        seed = stateless_seed(seed)
        lead, past, scale, features, params = self._prepared(1, [n])  # lead = batch + [n]
        start = self._num_past - self._context_length
        inputs = self._step_inputs(past, scale, features, start, self._num_past)
        state = cell_initial_state(params, lead, cell=self._cell)
        _, state = dense_outputs(params, inputs, state, cell=self._cell)
        most = max(self._lags)
        history = past[..., -most:] / scale[..., None]  # :: lead + [M], scaled
        picks = [most - lag for lag in self._lags]
        log_scale = tf.math.log(scale)[..., None]
        seeds = split(seed, self._horizon)

        def body(j, history, state, values):
            parts = [tf.gather(history, picks, axis=-1)]
            if features is not None:
                parts.append(tf.gather(features, self._num_past + j, axis=-2))
            parts.append(log_scale)
            outputs, state = dense_step(params, tf.concat(parts, axis=-1), state, cell=self._cell)
            value = self._head.scaled_distribution(outputs, scale).sample(seed=seeds[j])
            value = tf.cast(value, self.dtype)
            history = tf.concat([history[..., 1:], (value / scale)[..., None]], axis=-1)
            return j + 1, history, state, values.write(j, value)

        values = tf.TensorArray(self.dtype, size=self._horizon)
        _, _, _, values = tf.while_loop(
            lambda j, *_: j < self._horizon,
            body,
            (tf.constant(0), history, state, values),
            maximum_iterations=self._horizon,
        )
        stacked = values.stack()  # :: [H] + batch + [n]
        batch_rank = self._batch_rank()
        return tf.transpose(stacked, [batch_rank + 1, *range(1, batch_rank + 1), 0])


def _float_tensor(value, dtype, name: str) -> tf.Tensor:
    value = tf.convert_to_tensor(value, dtype_hint=dtype, name=name)
    if not value.dtype.is_floating:
        raise TypeError(f"{name} must be floats, got dtype {value.dtype.name}.")
    return tf.cast(value, dtype)


def _mean_scale(past: tf.Tensor, context_length: int) -> tf.Tensor:
    """DeepAR's scale of each series: mean |z| over the context, 1 where that is 0."""
    scale = tf.reduce_mean(tf.abs(past[..., -context_length:]), axis=-1)
    return tf.where(scale > 0, scale, tf.ones_like(scale))
