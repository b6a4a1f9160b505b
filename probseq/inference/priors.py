"""Priors over the weights of a params structure, for `fit_variational` (and `fit_map`).

`GaussianPrior` (closed-form KL against a Normal surrogate) is defined with `fit_map` in
`probseq.inference.map`; `ScaleMixturePrior` is the two-component mixture of Blundell et
al. (2015). `prior_distribution` gives either one as a TFP joint distribution over a
params structure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference.map import GaussianPrior

tfd = tfp.distributions

__all__ = ["Prior", "ScaleMixturePrior", "has_closed_form_kl", "prior_distribution"]


class ScaleMixturePrior:
    """Two-component scale mixture of zero-mean Normals on every weight (Blundell et al.).

    `p(w) = pi Normal(w | 0, scale_1^2) + (1 - pi) Normal(w | 0, scale_2^2)`, iid over
    all weights, with `scale_1 > scale_2` (a broad component and a spike near 0). The
    KL divergence from a Normal surrogate to this prior has no closed form:
    `fit_variational` uses a Monte Carlo estimate.

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

    def scalar_distribution(self, dtype=tf.float32) -> tfd.Distribution:
        """The prior of one weight: a scalar `tfd.MixtureSameFamily`."""
        pi = self.mixture_weight
        return tfd.MixtureSameFamily(
            tfd.Categorical(probs=tf.constant([pi, 1.0 - pi], dtype)),
            tfd.Normal(tf.zeros([2], dtype), tf.constant([self.scale_1, self.scale_2], dtype)),
        )

    def log_prob(self, variables: Sequence[tf.Variable]) -> tf.Tensor:
        """Sum of the mixture log-density over all entries of all variables (nats).

        Same interface as `GaussianPrior.log_prob`, so `fit_map` accepts this prior too.
        """
        dist = self.scalar_distribution()
        return tf.add_n([tf.reduce_sum(dist.log_prob(tf.cast(v, tf.float32))) for v in variables])

    def __repr__(self) -> str:
        return (
            f"ScaleMixturePrior(mixture_weight={self.mixture_weight}, scale_1={self.scale_1}, "
            f"scale_2={self.scale_2})"
        )


Prior = GaussianPrior | ScaleMixturePrior


def _scalar_prior(prior: Prior, dtype) -> tfd.Distribution:
    if isinstance(prior, ScaleMixturePrior):
        return prior.scalar_distribution(dtype)
    if isinstance(prior, GaussianPrior):
        return tfd.Normal(tf.constant(0.0, dtype), tf.constant(prior.scale, dtype))
    raise TypeError(
        f"prior must be a GaussianPrior or a ScaleMixturePrior, got {type(prior).__name__}."
    )


def has_closed_form_kl(prior: Prior) -> bool:
    """Whether `KL(Normal || prior)` is computed in closed form (a `GaussianPrior`), else
    by Monte Carlo over posterior draws."""
    return isinstance(prior, GaussianPrior)


def _is_mapping(value) -> bool:
    # `tf.Module` wraps dict attributes in a `_DictWrapper`, which is not a `Mapping`.
    return isinstance(value, Mapping) or (hasattr(value, "items") and hasattr(value, "keys"))


def _plain(structure) -> dict:
    """A params structure (possibly `tf.Module`-wrapped dicts) as plain nested dicts."""
    return {key: _plain(value) if _is_mapping(value) else value for key, value in structure.items()}


def _core_shapes(template: Mapping) -> dict:
    """Leaf shapes of a params structure (tensors, variables or `TensorShape`s)."""
    return tf.nest.map_structure(
        lambda leaf: tf.TensorShape(leaf if isinstance(leaf, tf.TensorShape) else leaf.shape),
        _plain(template),
    )


def _prior_log_prob(prior: Prior, shapes: Mapping, params: Mapping) -> tf.Tensor:
    """`prior_distribution(prior, shapes).log_prob(params)`, computed leaf by leaf.

    Same value (tested) without the joint distribution's per-call structure checks, which
    dominate the tracing time of a training step.
    """
    parts = []
    for shape, value in zip(
        tf.nest.flatten(_core_shapes(shapes)), tf.nest.flatten(_plain(params)), strict=True
    ):
        value = tf.convert_to_tensor(value)
        log_prob = _scalar_prior(prior, value.dtype).log_prob(value)  # :: s + core
        axes = list(range(-shape.rank, 0))
        parts.append(tf.reduce_sum(log_prob, axis=axes) if axes else log_prob)
    return tf.add_n(parts)


def prior_distribution(prior: Prior, template: Mapping, dtype=tf.float32) -> tfd.Distribution:
    """The prior over a params structure as a nested `tfd.JointDistributionNamed`.

    Args:
      prior: `GaussianPrior(scale)` or `ScaleMixturePrior(...)`, iid over all weights.
      template: a params structure (e.g. `network.params`) giving the leaf shapes
        (without leading batch dims).
      dtype: float dtype.

    Returns:
      A joint distribution whose events have the structure of `template` (leaf event
      shapes = the template's leaf shapes); `log_prob(w)` of draws `[K] + core` is `[K]`.
    """
    scalar = _scalar_prior(prior, dtype)
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
