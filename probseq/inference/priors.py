"""Priors over the weights of a params structure, for `fit_map` and `fit_variational`.

A prior is any TFP distribution over one scalar weight (batch and event shape `[]`),
applied iid to every weight: `tfd.Normal(0., 1.)`, `tfd.Laplace(0., 0.1)`,
`tfd.StudentT(3., 0., 1.)`, a `tfd.MixtureSameFamily`, ... . `GaussianPrior(scale)` and
`ScaleMixturePrior(...)` are small named constructors of two of them (kept from the
first API, where they were the only choices). The KL term of a variational fit uses
`tfd.kl_divergence(Normal, prior)` where TFP registers one in closed form (e.g. a Normal
prior) and a Monte Carlo estimate on the step's weight draws otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.nn.params import ParamsSpec, plain

tfd = tfp.distributions

__all__ = [
    "GaussianPrior",
    "Prior",
    "ScaleMixturePrior",
    "has_closed_form_kl",
    "prior_distribution",
    "scalar_prior",
    "weights_log_prob",
]


class _NamedPrior:
    """A named prior: `distribution(dtype)` is its TFP distribution of one weight."""

    def distribution(self, dtype=tf.float32) -> tfd.Distribution:
        raise NotImplementedError

    def log_prob(self, variables: Sequence[tf.Variable]) -> tf.Tensor:
        """Sum of the log-density over all entries of all `variables` (nats)."""
        return weights_log_prob(self, variables)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value}" for key, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class GaussianPrior(_NamedPrior):
    """`tfd.Normal(0, scale)` on every weight (a weight-decay prior; closed-form KL).

    Args:
      scale: prior standard deviation (> 0).
    """

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"prior scale must be positive, got {scale}.")
        self.scale = float(scale)

    def distribution(self, dtype=tf.float32) -> tfd.Distribution:
        return tfd.Normal(tf.constant(0.0, dtype), tf.constant(self.scale, dtype))


class ScaleMixturePrior(_NamedPrior):
    """Two-component scale mixture of zero-mean Normals on every weight (Blundell et al.).

    `p(w) = pi Normal(w | 0, scale_1^2) + (1 - pi) Normal(w | 0, scale_2^2)`, iid over
    all weights, with `scale_1 > scale_2` (a broad component and a spike near 0), as a
    `tfd.MixtureSameFamily`. The KL divergence from a Normal surrogate to it has no
    closed form: `fit_variational` uses a Monte Carlo estimate.

    Args:
      mixture_weight: `pi` in (0, 1), the weight of the broad component.
      scale_1: standard deviation of the broad component (> 0).
      scale_2: standard deviation of the narrow component (> 0).

    Defaults (`pi = 0.25`, `-log scale_1 = 0`, `-log scale_2 = 6`) are a point of the grid
    Blundell et al. (2015) searched (`pi` in {1/4, 1/2, 3/4}, `-log scale_1` in {0, 1, 2},
    `-log scale_2` in {6, 7, 8}); tune them for your model.
    """

    def __init__(
        self,
        mixture_weight: float = 0.25,
        scale_1: float = 1.0,
        scale_2: float = math.exp(-6.0),
    ):
        if not 0.0 < mixture_weight < 1.0:
            raise ValueError(f"mixture_weight must be in (0, 1), got {mixture_weight}.")
        if not (scale_1 > 0 and scale_2 > 0):
            raise ValueError(f"mixture scales must be positive, got {scale_1}, {scale_2}.")
        self.mixture_weight = float(mixture_weight)
        self.scale_1 = float(scale_1)
        self.scale_2 = float(scale_2)

    def distribution(self, dtype=tf.float32) -> tfd.Distribution:
        pi = self.mixture_weight
        return tfd.MixtureSameFamily(
            tfd.Categorical(probs=tf.constant([pi, 1.0 - pi], dtype)),
            tfd.Normal(tf.zeros([2], dtype), tf.constant([self.scale_1, self.scale_2], dtype)),
        )

    def scalar_distribution(self, dtype=tf.float32) -> tfd.Distribution:
        """The prior of one weight (the name of the first API; see `distribution`)."""
        return self.distribution(dtype)


Prior = tfd.Distribution | GaussianPrior | ScaleMixturePrior


def scalar_prior(prior: Prior, dtype=tf.float32) -> tfd.Distribution:
    """The TFP distribution of one weight: a named prior's, or `prior` itself.

    Raises:
      TypeError: `prior` is neither, or is not over one scalar (batch and event `[]`).
    """
    if isinstance(prior, _NamedPrior):
        return prior.distribution(dtype)
    if not isinstance(prior, tfd.Distribution):
        raise TypeError(
            "prior must be a TFP distribution over one weight (e.g. tfd.Normal(0., 1.)), "
            f"GaussianPrior or ScaleMixturePrior, got {type(prior).__name__}."
        )
    if prior.batch_shape.rank != 0 or prior.event_shape.rank != 0:
        raise TypeError(
            f"prior must be a distribution over one scalar weight (applied to every weight "
            f"independently); got batch shape {prior.batch_shape} and event shape "
            f"{prior.event_shape}."
        )
    return prior


def _log_prob_as(prior: tfd.Distribution, value: tf.Tensor) -> tf.Tensor:
    """`prior.log_prob(value)` in the prior's dtype, returned in the value's."""
    value = tf.convert_to_tensor(value)
    return tf.cast(prior.log_prob(tf.cast(value, prior.dtype)), value.dtype)


def weights_log_prob(prior: Prior, variables: Sequence) -> tf.Tensor:
    """Sum of `log p(w)` over every entry of every tensor in `variables` (nats)."""
    variables = list(variables)
    dtype = tf.convert_to_tensor(variables[0]).dtype if variables else tf.float32
    dist = scalar_prior(prior, dtype)
    return tf.add_n([tf.reduce_sum(_log_prob_as(dist, v)) for v in variables])


_CLOSED_FORM: dict[type, bool] = {}


def has_closed_form_kl(prior: Prior) -> bool:
    """Whether TFP has `KL(Normal || prior)` in closed form (else: Monte Carlo)."""
    dist = scalar_prior(prior)
    kind = type(dist)
    if kind not in _CLOSED_FORM:
        try:  # registrations are by type pair; inside tf.function the unused op is pruned
            tfd.kl_divergence(tfd.Normal(tf.zeros([], dist.dtype), 1.0), dist)
            _CLOSED_FORM[kind] = True
        except NotImplementedError:
            _CLOSED_FORM[kind] = False
    return _CLOSED_FORM[kind]


def _core_shapes(template: Mapping) -> dict:
    """Leaf shapes of a params structure (tensors, variables or `TensorShape`s)."""
    return ParamsSpec.of(plain(template)).shapes


def _prior_log_prob(prior: Prior, shapes: Mapping, params: Mapping) -> tf.Tensor:
    """`prior_distribution(prior, shapes).log_prob(params)`, computed leaf by leaf.

    Same value (tested) without the joint distribution's per-call structure checks, which
    dominate the tracing time of a training step.
    """
    parts = []
    for shape, value in zip(
        tf.nest.flatten(_core_shapes(shapes)), tf.nest.flatten(plain(params)), strict=True
    ):
        value = tf.convert_to_tensor(value)
        log_prob = _log_prob_as(scalar_prior(prior, value.dtype), value)  # :: s + core
        axes = list(range(-shape.rank, 0))
        parts.append(tf.reduce_sum(log_prob, axis=axes) if axes else log_prob)
    return tf.add_n(parts)


def prior_distribution(prior: Prior, template: Mapping, dtype=tf.float32) -> tfd.Distribution:
    """The prior over a params structure as a nested `tfd.JointDistributionNamed`.

    Args:
      prior: a TFP distribution over one weight, `GaussianPrior` or `ScaleMixturePrior`,
        iid over all weights.
      template: a params structure (e.g. `network.params`) giving the leaf shapes
        (without leading batch dims).
      dtype: float dtype (of a named prior; a TFP distribution keeps its own).

    Returns:
      A joint distribution whose events have the structure of `template` (leaf event
      shapes = the template's leaf shapes); `log_prob(w)` of draws `[K] + core` is `[K]`.
    """
    scalar = scalar_prior(prior, dtype)
    shapes = _core_shapes(template)
    return tfd.JointDistributionNamed(
        {
            group: tfd.JointDistributionNamed(
                {key: tfd.Sample(scalar, shape) for key, shape in leaves.items()}
            )
            for group, leaves in shapes.items()
        },
        name="prior",
    )
