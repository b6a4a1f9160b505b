"""Emission heads: each step's network output -> a TFP distribution for `x_t`.

A head says how many numbers it reads per step (`num_params`), maps them to one of
TFP's own distributions (so TFP does the math: log-densities, sampling, moments), and
how a value is fed back as the next step's input (`features`). Adding a family is one
small class (GluonTS's "distribution output" idea).

| head | distribution of `x_t` | parameters read |
|---|---|---|
| `Normal()` | `tfd.Normal(loc, softplus(s) + min_scale)` | 2 |
| `StudentT()` | `tfd.StudentT(2 + softplus(d), loc, softplus(s) + min_scale)` | 3 |
| `Mixture(K, "normal" \\| "logistic")` | `tfd.MixtureSameFamily` of `K` components | 3K |
| `Bernoulli()` | `tfd.Bernoulli(logits)` (int32 0/1) | 1 |
| `Poisson()` | `tfd.Poisson(log_rate)` (float counts) | 1 |
| `NegativeBinomial()` | `tfd.NegativeBinomial(softplus(c) + min_scale, logits)` | 2 |

With `event_size=D` a head is over vectors `[D]` (`tfd.Independent` over `D`
independent coordinates, parameters `num_params * D`); the default is a scalar.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.composite import AutoComposite

tfd = tfp.distributions

__all__ = [
    "Bernoulli",
    "EmissionHead",
    "Mixture",
    "NegativeBinomial",
    "Normal",
    "Poisson",
    "StudentT",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmissionHead(AutoComposite):
    """Base class: subclasses set `name`, `params_per_coordinate`, `dtype` and implement
    `_scalar_distribution(raw)` for `raw :: [..., params_per_coordinate]`.

    A head is a composite tensor with no components (its fields are the metadata), so a
    distribution holding it passes through `tf.function`; a subclass that adds fields
    keeps them as dataclass fields (readable by name, as the rebuild needs).

    Attributes:
      event_size: None for scalar values, `D` for vectors `[D]`.
      min_scale: added to every softplus-constrained scale (numerical floor).
    """

    event_size: int | None = None
    min_scale: float = 1e-4

    name = "head"
    params_per_coordinate = 1
    dtype = tf.float32
    reparameterized = False

    def __post_init__(self):
        if self.event_size is not None and (
            isinstance(self.event_size, bool) or not isinstance(self.event_size, int)
            or self.event_size < 1
        ):  # fmt: skip
            raise ValueError(f"event_size must be None or an int >= 1, got {self.event_size!r}.")

    @property
    def num_params(self) -> int:
        """Numbers read per step: `params_per_coordinate * (event_size or 1)`."""
        return self.params_per_coordinate * (self.event_size or 1)

    @property
    def input_size(self) -> int:
        """Features a value gives as the next step's input."""
        return self.event_size or 1

    @property
    def event_shape(self) -> list[int]:
        return [] if self.event_size is None else [self.event_size]

    def distribution(self, raw: tf.Tensor) -> tfd.Distribution:
        """The distribution of `x_t` from the network output `raw :: [..., num_params]`:
        batch shape `raw.shape[:-1]`, event shape `event_shape`."""
        if self.event_size is None:
            return self._scalar_distribution(raw)
        shape = tf.concat([tf.shape(raw)[:-1], [self.event_size, self.params_per_coordinate]], 0)
        return tfd.Independent(self._scalar_distribution(tf.reshape(raw, shape)), 1)

    def scaled_distribution(self, raw: tf.Tensor, scale: tf.Tensor) -> tfd.Distribution:
        """The distribution of `scale * y` for `y ~ distribution(raw)`: the head of a model
        that reads series divided by a per-series `scale` (DeepAR's mean scaling).

        `scale` (positive) broadcasts against `raw.shape[:-1]`. A continuous head is
        rescaled exactly (`tfb.Scale`; a location-scale family keeps its own class); a
        count head keeps its integer support and multiplies its mean by `scale` instead
        (GluonTS's convention), which is a different model, not a change of variables.
        """
        return tfd.TransformedDistribution(
            self.distribution(raw), tfp.bijectors.Scale(self._event_scale(scale, raw))
        )

    def _event_scale(self, scale, raw):
        scale = tf.cast(scale, raw.dtype)
        return scale if self.event_size is None else scale[..., None]

    def features(self, x: tf.Tensor, float_dtype) -> tf.Tensor:
        """A value `[...] + event_shape` as the next input `[..., input_size]`."""
        x = tf.cast(x, float_dtype)
        return x[..., None] if self.event_size is None else x

    def _scale(self, raw):
        return tf.math.softplus(raw) + tf.cast(self.min_scale, raw.dtype)

    def _count_scaled(self, raw, scale):
        """`scaled_distribution` of a count head: the mean times `scale` (log-rate or
        logits plus `log(scale)`), the dispersion kept."""
        log_scale = tf.math.log(tf.cast(scale, raw.dtype))
        if self.event_size is None:
            return self._scalar_distribution(raw, log_scale)
        shape = tf.concat([tf.shape(raw)[:-1], [self.event_size, self.params_per_coordinate]], 0)
        return tfd.Independent(
            self._scalar_distribution(tf.reshape(raw, shape), log_scale[..., None]), 1
        )

    def _location_scale(self, raw, scale):
        """`scaled_distribution` of a location-scale family: loc and scale times `scale`."""
        scale = tf.cast(scale, raw.dtype)
        if self.event_size is None:
            return self._scalar_distribution(raw, scale)
        shape = tf.concat([tf.shape(raw)[:-1], [self.event_size, self.params_per_coordinate]], 0)
        return tfd.Independent(
            self._scalar_distribution(tf.reshape(raw, shape), scale[..., None]), 1
        )

    def _scalar_distribution(self, raw):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Normal(EmissionHead):
    """`Normal(loc, scale)`; reparameterized."""

    name = "normal"
    params_per_coordinate = 2
    reparameterized = True

    def _scalar_distribution(self, raw, scale=1.0):
        return tfd.Normal(raw[..., 0] * scale, self._scale(raw[..., 1]) * scale)

    def scaled_distribution(self, raw, scale):
        return self._location_scale(raw, scale)


@dataclasses.dataclass(frozen=True)
class StudentT(EmissionHead):
    """`StudentT(df > 2, loc, scale)` (finite variance); reparameterized."""

    name = "student_t"
    params_per_coordinate = 3
    reparameterized = True

    def _scalar_distribution(self, raw, scale=1.0):
        df = 2.0 + tf.math.softplus(raw[..., 0])
        return tfd.StudentT(df, raw[..., 1] * scale, self._scale(raw[..., 2]) * scale)

    def scaled_distribution(self, raw, scale):
        return self._location_scale(raw, scale)


@dataclasses.dataclass(frozen=True)
class Mixture(EmissionHead):
    """A `num_components`-component mixture of Normal or Logistic distributions."""

    num_components: int = 3
    family: str = "normal"
    name = "mixture"

    def __post_init__(self):
        super().__post_init__()
        if self.family not in ("normal", "logistic"):
            raise ValueError(f"family must be 'normal' or 'logistic', got {self.family!r}.")
        if not isinstance(self.num_components, int) or self.num_components < 1:
            raise ValueError(f"num_components must be an int >= 1, got {self.num_components!r}.")

    @property
    def params_per_coordinate(self) -> int:  # type: ignore[override]
        return 3 * self.num_components

    def _scalar_distribution(self, raw):
        k = self.num_components
        logits, loc, scale = raw[..., :k], raw[..., k : 2 * k], self._scale(raw[..., 2 * k :])
        component = tfd.Normal if self.family == "normal" else tfd.Logistic
        return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), component(loc, scale))


@dataclasses.dataclass(frozen=True)
class Bernoulli(EmissionHead):
    """`Bernoulli(logits)` over int32 0/1."""

    name = "bernoulli"
    dtype = tf.int32

    def _scalar_distribution(self, raw):
        return tfd.Bernoulli(logits=raw[..., 0])

    def scaled_distribution(self, raw, scale):
        raise ValueError("a bernoulli head has values 0/1 and cannot be scaled.")


@dataclasses.dataclass(frozen=True)
class Poisson(EmissionHead):
    """`Poisson(rate = exp(raw))` over non-negative counts (float values)."""

    name = "poisson"

    def _scalar_distribution(self, raw, log_scale=0.0):
        return tfd.Poisson(log_rate=raw[..., 0] + log_scale)

    def scaled_distribution(self, raw, scale):
        return self._count_scaled(raw, scale)

    def features(self, x, float_dtype):
        return super().features(tf.math.log1p(tf.cast(x, float_dtype)), float_dtype)


@dataclasses.dataclass(frozen=True)
class NegativeBinomial(EmissionHead):
    """`NegativeBinomial(total_count, logits)` over counts (overdispersed Poisson)."""

    name = "negative_binomial"
    params_per_coordinate = 2

    def _scalar_distribution(self, raw, log_scale=0.0):
        return tfd.NegativeBinomial(
            total_count=self._scale(raw[..., 0]), logits=raw[..., 1] + log_scale
        )

    def scaled_distribution(self, raw, scale):
        return self._count_scaled(raw, scale)

    def features(self, x, float_dtype):
        return super().features(tf.math.log1p(tf.cast(x, float_dtype)), float_dtype)
