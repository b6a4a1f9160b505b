"""`RecurrentAutoregressive`: a sequence distribution generic over emission heads.

`p(x_1..x_T) = prod_t head(network_t(x_<t)).prob(x_t)`: a recurrent network reads the
previous value (a zero input at the first step) and its output parameterizes a TFP
distribution for the next one (`probseq.distributions.heads`: Normal, StudentT, mixtures,
Bernoulli, Poisson, NegativeBinomial). Real-valued series and vectors, binary and count
sequences. Token sequences keep their specialized class, `LSTMAutoregressive` (a gather
for the input, a Gumbel-max sampler, `eos`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

# The sentinel has no public name in TFP 0.25.
from tensorflow_probability.python.internal.parameter_properties import BIJECTOR_NOT_IMPLEMENTED

from probseq.distributions._sequence import (
    NetworkParams,
    check_num_steps,
    check_params,
)
from probseq.distributions.heads import EmissionHead
from probseq.nn.cells import cell_initial_state, network_cell
from probseq.nn.dense import dense_outputs, dense_step
from probseq.seeds import split, stateless_seed

tfd = tfp.distributions

__all__ = ["RecurrentAutoregressive"]


class RecurrentAutoregressive(NetworkParams, tfd.AutoCompositeTensorDistribution):
    """Autoregressive distribution over `num_steps` values with recurrent conditionals.

    #### Mathematical details

    ```none
    h_t = cell(h_{t-1}, [features(x_{t-1}), c_t])   (h_0 = 0, features(x_0) = 0)
    log p(x | c) = sum_{t=1}^{T} log head(W h_t + b).prob(x_t)
    ```

    `c_t` are optional per-step covariates: known features of step `t` (time of day, a
    holiday flag, a price) read together with the previous value, so the distribution
    of `x_t` is conditioned on them; they are conditioned on, not modelled. Without
    covariates the first step reads no input (a zero input term).

    With `lengths`, only `x_1..x_L` are scored: a padded batch scores exactly like the
    unpadded sequences, and the padding is never read (it is replaced by zeros).

    Shapes: event shape `[num_steps] + head.event_shape`; batch shape is the broadcast of
    the params' leading dims, of `lengths` and of `covariates.shape[:-2]`. `sample(s)`
    has shape `s + batch + event`.

    Args:
      network: a `probseq.nn.RealValuedNetwork` with `input_size == head.input_size + C`
        (`C` covariates per step, 0 without) and `output_size == head.num_params`.
      num_steps: Python int `T >= 1`.
      head: an `EmissionHead` (e.g. `probseq.distributions.heads.Normal()`).
      lengths: optional ints in `[0, T]` with batch dims.
      covariates: optional floats `[..., num_steps, C]` (leading dims are batch dims):
        step `t`'s known features, read with `x_{t-1}` to give the distribution of `x_t`.
      params: optional structure like `network.params` with leading batch dims (e.g.
        posterior draws).
      validate_args, allow_nan_stats, name: TFP conventions.

    #### Examples

    ```python
    from probseq.distributions import heads
    net = probseq.nn.RealValuedNetwork(1, 16, output_size=heads.Normal().num_params, seed=1)
    series = probseq.distributions.RecurrentAutoregressive(net, 24, heads.Normal())
    x = series.sample(3, seed=(1, 2))   # ==> float32 [3, 24]
    series.log_prob(x)                  # ==> float32 [3]
    ```
    """

    def __init__(
        self,
        network,
        num_steps: int,
        head: EmissionHead,
        *,
        lengths=None,
        covariates=None,
        params=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "RecurrentAutoregressive",
    ):
        parameters = dict(locals())
        num_steps = check_num_steps(num_steps, "num_steps")
        if not isinstance(head, EmissionHead):
            raise TypeError(f"head must be an EmissionHead, got {type(head).__name__}.")
        self._covariates = _check_covariates(covariates, num_steps, network.dtype)
        num_covariates = 0 if self._covariates is None else self._covariates.shape[-1]
        inputs = head.input_size + num_covariates
        if network.input_size != inputs or network.output_size != head.num_params:
            covariates_note = f" + {num_covariates} covariates" if num_covariates else ""
            raise ValueError(
                f"{head!r} reads {head.num_params} parameters and gives {head.input_size} "
                f"input features per step{covariates_note}; the network has output_size="
                f"{network.output_size} and input_size={network.input_size}."
            )
        with tf.name_scope(name) as name:
            self._network = network
            self._num_steps = num_steps
            self._head = head
            self._cell = network_cell(network)
            self._params = (
                None if params is None else check_params(network, params, name_leaves=True)
            )
            self._lengths = (
                None
                if lengths is None
                else tf.cast(tf.convert_to_tensor(lengths, dtype_hint=tf.int32), tf.int32)
            )
            super().__init__(
                dtype=head.dtype,
                reparameterization_type=(
                    tfd.FULLY_REPARAMETERIZED
                    if head.reparameterized and lengths is None
                    else tfd.NOT_REPARAMETERIZED
                ),
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        not_implemented = BIJECTOR_NOT_IMPLEMENTED
        return dict(
            **cls._network_parameter_properties(),
            covariates=tfp.util.ParameterProperties(
                event_ndims=2, default_constraining_bijector_fn=not_implemented
            ),
        )

    # ---------------------------------------------------------------- properties
    @property
    def head(self) -> EmissionHead:
        return self._head

    @property
    def num_steps(self) -> int:
        return self._num_steps

    @property
    def covariates(self):
        """Per-step covariates `[..., num_steps, C]` or None."""
        return self._covariates

    def _event_shape(self):
        return tf.TensorShape([self._num_steps, *self._head.event_shape])

    def _event_shape_tensor(self):
        return tf.constant([self._num_steps, *self._head.event_shape], tf.int32)

    def _param_batch_shape(self):
        return self.params_in_use["output"]["bias"].shape[:-1]

    def _batch_shape(self):
        shape = self._param_batch_shape()
        if self._lengths is not None:
            shape = tf.broadcast_static_shape(shape, self._lengths.shape)
        if self._covariates is not None:
            shape = tf.broadcast_static_shape(shape, self._covariates.shape[:-2])
        return shape

    def _batch_shape_tensor(self):
        shape = tf.shape(self.params_in_use["output"]["bias"])[:-1]
        if self._lengths is not None:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._lengths))
        if self._covariates is not None:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._covariates)[:-2])
        return shape

    def _default_event_space_bijector(self):
        if self._head.dtype.is_integer or self._head.name in ("poisson", "negative_binomial"):
            return None  # discrete values
        return tfp.bijectors.Identity()

    # ----------------------------------------------------------------- internals
    def _float(self):
        return self._network.dtype

    def _covariates_for(self, batch_shape, rest: int):
        """Covariates broadcast to `batch + [1]*rest + [T, C]` (None without)."""
        if self._covariates is None:
            return None
        covariates = tf.convert_to_tensor(self._covariates)
        steps = tf.shape(covariates)[-2:]
        covariates = tf.broadcast_to(covariates, tf.concat([batch_shape, steps], 0))
        return tf.reshape(covariates, tf.concat([batch_shape, tf.ones([rest], tf.int32), steps], 0))

    # ------------------------------------------------------------------ log_prob
    def _call_log_prob(self, value, name, **kwargs):
        self._check_value_dtype(value)
        return super()._call_log_prob(value, name, **kwargs)

    def _call_prob(self, value, name, **kwargs):
        self._check_value_dtype(value)
        return super()._call_prob(value, name, **kwargs)

    def _check_value_dtype(self, value) -> None:
        """Before TFP converts the value to the head's dtype: no booleans, and floats are
        never truncated to the integers of a Bernoulli head."""
        dtype = getattr(value, "dtype", None)
        if dtype is None and isinstance(value, (list, tuple)):
            dtype = np.asarray(value).dtype
        if dtype is None:
            return
        dtype = tf.as_dtype(dtype)
        if dtype.is_bool:
            raise TypeError(f"{self.name}: values must be numbers, got dtype bool.")
        if self.dtype.is_integer and dtype.is_floating:
            raise TypeError(
                f"{self.name}: a {self._head.name} head takes integer values, got dtype "
                f"{dtype.name}; cast 0/1 values with tf.cast(x, tf.int32)."
            )

    def _log_prob(self, x):
        event_rank = 1 + len(self._head.event_shape)
        x = tf.convert_to_tensor(x, dtype_hint=self.dtype)
        self._check_event_shape(x, event_rank)
        x = tf.cast(x, self.dtype)
        batch_shape = self.batch_shape_tensor()
        batch_rank = self._batch_rank()
        value_batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-event_rank], batch_shape)
        x = tf.broadcast_to(x, tf.concat([value_batch, self.event_shape_tensor()], 0))
        rank = x.shape.rank
        sample_rank = rank - event_rank - batch_rank
        to_batch_first = (
            list(range(sample_rank, sample_rank + batch_rank))
            + list(range(sample_rank))
            + list(range(rank - event_rank, rank))
        )
        x = tf.transpose(x, to_batch_first)  # :: batch + sample + [T] + event
        lead = tf.shape(x)[: rank - event_rank]
        mask = None
        if self._lengths is not None:
            lengths = tf.broadcast_to(self._lengths, batch_shape)
            lengths = tf.reshape(
                lengths, tf.concat([batch_shape, tf.ones([sample_rank], tf.int32)], 0)
            )
            mask = tf.range(self._num_steps) < lengths[..., None]  # :: batch + [1]*s + [T]
            mask = tf.broadcast_to(mask, tf.concat([lead, [self._num_steps]], 0))
            zero = tf.zeros_like(x)
            ones = tf.ones([event_rank - 1], tf.int32)
            shaped = tf.reshape(mask, tf.concat([tf.shape(mask), ones], 0))
            x = tf.where(shaped, x, zero)  # padding is never read
        features = self._head.features(x, self._float())  # :: lead + [T, D]
        inputs = tf.concat([tf.zeros_like(features[..., :1, :]), features[..., :-1, :]], axis=-2)
        covariates = self._covariates_for(batch_shape, sample_rank)
        if covariates is not None:  # :: batch + [1]*s + [T, C]
            covariates = tf.broadcast_to(
                covariates, tf.concat([lead, tf.shape(covariates)[-2:]], 0)
            )
            inputs = tf.concat([inputs, covariates], axis=-1)
        params = self._broadcast_params(batch_shape)  # leading dims: [] or batch
        state = cell_initial_state(params, lead, cell=self._cell)  # :: lead + [H]
        outputs, _ = dense_outputs(params, inputs, state, cell=self._cell)  # :: lead + [T, P]
        log_prob = self._head.distribution(outputs).log_prob(x)  # :: lead + [T]
        if mask is not None:
            log_prob = tf.where(mask, log_prob, tf.zeros_like(log_prob))
        log_prob = tf.reduce_sum(log_prob, axis=-1)  # :: batch + sample
        back = list(range(batch_rank, batch_rank + sample_rank)) + list(range(batch_rank))
        return tf.transpose(log_prob, back)

    def _check_event_shape(self, x, event_rank: int) -> None:
        want = self.event_shape.as_list()
        if x.shape.rank is None:
            return
        have = x.shape.as_list()[-event_rank:]
        wrong = any(h is not None and h != w for h, w in zip(have, want, strict=False))
        if x.shape.rank < event_rank or wrong:
            raise ValueError(
                f"{self.name}: values must have shape [..., {', '.join(map(str, want))}] "
                f"(num_steps={self._num_steps}), got {x.shape.as_list()}."
            )

    # ------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        seed = stateless_seed(seed)
        batch_shape = self.batch_shape_tensor()
        params = self._broadcast_params(batch_shape)
        lead = tf.concat([batch_shape, [n]], 0)  # the layout of the loop: batch + [n]
        state = cell_initial_state(params, lead, cell=self._cell)
        seeds = split(seed, self._num_steps)  # :: [T, 2]
        lengths = None
        if self._lengths is not None:
            lengths = tf.broadcast_to(self._lengths, batch_shape)
            lengths = tf.reshape(lengths, tf.concat([batch_shape, [1]], 0))  # :: batch + [1]

        def draw(outputs, t):
            value = self._head.distribution(outputs).sample(seed=seeds[t])  # :: lead + event
            if lengths is not None:
                past = t >= lengths
                ones = tf.ones([len(self._head.event_shape)], tf.int32)
                past = tf.reshape(past, tf.concat([tf.shape(past), ones], 0))
                value = tf.where(past, tf.zeros_like(value), value)
            return value

        covariates = self._covariates_for(batch_shape, 1)  # :: batch + [1, T, C]

        def step_inputs(features, t):
            """The input of step `t`: the previous value's features and `c_t`."""
            if covariates is None:
                return features
            c_t = tf.broadcast_to(
                covariates[..., t, :], tf.concat([lead, tf.shape(covariates)[-1:]], 0)
            )
            if features is None:
                features = tf.zeros(tf.concat([lead, [self._head.input_size]], 0), self._float())
            return tf.concat([features, c_t], axis=-1)

        outputs, state = dense_step(params, step_inputs(None, 0), state, cell=self._cell)
        first = draw(outputs, 0)
        values = tf.TensorArray(self.dtype, size=self._num_steps, element_shape=first.shape)
        values = values.write(0, first)

        def body(t, value, state, values):
            features = step_inputs(self._head.features(value, self._float()), t)
            outputs, state = dense_step(params, features, state, cell=self._cell)
            value = draw(outputs, t)
            return t + 1, value, state, values.write(t, value)

        if self._num_steps > 1:
            _, _, _, values = tf.while_loop(
                lambda t, *_: t < self._num_steps,
                body,
                (tf.constant(1), first, state, values),
                maximum_iterations=self._num_steps - 1,
            )
        stacked = values.stack()  # :: [T] + batch + [n] + event
        batch_rank = self._batch_rank()
        event_rank = len(self._head.event_shape)
        rank = stacked.shape.rank
        perm = [batch_rank + 1, *range(1, batch_rank + 1), 0, *range(rank - event_rank, rank)]
        return tf.transpose(stacked, perm)  # :: [n] + batch + [T] + event


def _check_covariates(covariates, num_steps: int, dtype):
    """Covariates as a float tensor `[..., num_steps, C]` with static `T` and `C`."""
    if covariates is None:
        return None
    if isinstance(covariates, tf.Variable):
        value = covariates
    else:
        value = tf.convert_to_tensor(covariates, dtype_hint=dtype, name="covariates")
    if not value.dtype.is_floating:
        raise TypeError(f"covariates must be floats, got dtype {value.dtype.name}.")
    shape = value.shape
    if shape.rank is None or shape.rank < 2 or shape[-2] != num_steps or shape[-1] is None:
        raise ValueError(
            f"covariates must have shape [..., num_steps={num_steps}, C] with C known, got {shape}."
        )
    return value if isinstance(value, tf.Variable) else tf.cast(value, dtype)
