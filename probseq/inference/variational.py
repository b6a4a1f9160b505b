"""Variational inference (Bayes by backprop) for probseq models.

A mean-field Normal surrogate `q(w) = prod_i Normal(w_i | mu_i, sigma_i)` over the
network's params structure is fitted by maximizing the evidence lower bound

    ELBO = E_q[log p(D | w)] - KL(q || p)

with reparameterized gradients (Blundell et al., 2015). For a dataset of `N` sequences
seen through minibatches of `B`, the loop minimizes the negative ELBO per example,

    loss = E_q[-mean_{b in batch} log p(x_b | w)] + beta_t * KL(q || p) / N,

where `beta_t` is an optional linear warm-up of the KL weight (1 after
`kl_annealing_steps`). The expectation is a Monte Carlo average over `K` weight draws;
every draw is one complete params structure, passed as `params=` to
`LSTMAutoregressive`, so one draw is used for every time step of a sequence (the nn core
reads the same weights at each step by construction; weights are never redrawn per time
step, cf. Fortunato et al., 2017). `K > 1` draws are stacked on a leading params batch
dim and scored in one batched pass.

The pieces are TFP's: the surrogate is built by
`tfp.experimental.vi.build_factored_surrogate_posterior` (softplus-constrained scales),
the model is a `tfd.JointDistributionNamed` of the prior over the params structure and
the likelihood `tfd.Sample(LSTMAutoregressive(net, T, params=w), B)`, and the KL term is
`tfd.kl_divergence(Normal, Normal)` in closed form for a Normal prior. For the
two-component scale-mixture prior of Blundell et al. the KL has no closed form; it is
then the Monte Carlo estimate `mean_k [log q(w_k) - log p(w_k)]` on the same draws that
score the likelihood (unbiased, and it is what `tfp.vi.monte_carlo_variational_loss`
computes for the same draws; a test checks that equality).

#### References

[1] Blundell, Cornebise, Kavukcuoglu, Wierstra. Weight Uncertainty in Neural
    Networks. ICML 2015.
[2] Fortunato, Blundell, Vinyals. Bayesian Recurrent Neural Networks. arXiv:1704.02798.
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers

from probseq.inference.callbacks import Callback, StepInfo
from probseq.inference.map import (
    FitResult,
    GaussianPrior,
    _current_lr,
    _default_optimizer,
    global_norm_clip,
)

tfd = tfp.distributions

__all__ = [
    "ELBOTerms",
    "MeanFieldPosterior",
    "ScaleMixturePrior",
    "VariationalFitResult",
    "elbo_terms",
    "fit_variational",
    "joint_distribution",
    "kl_weight",
    "prior_distribution",
    "stateless_seed",
]


# --------------------------------------------------------------------------- priors
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


def stateless_seed(seed) -> tf.Tensor:
    """An `int32[2]` stateless seed; a Python int `n` maps to the pair `divmod(n, 2**31)`.

    TFP treats a Python int seed as *stateful* (a fresh random pair on every call), so
    probseq maps ints to fixed pairs first: the same int gives the same results.
    `None` draws a fresh seed.
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        seed = divmod(int(seed), 2**31)
    return samplers.sanitize_seed(seed)


def _has_closed_form_kl(prior: Prior) -> bool:
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


# ------------------------------------------------------------------------ surrogate
class MeanFieldPosterior(tf.Module):
    """Mean-field Normal surrogate posterior over an LSTM params structure.

    `q(w) = prod_i Normal(w_i | loc_i, scale_i)` with `scale_i = softplus(u_i)` (TFP's
    constraining bijector for a Normal scale), built by
    `tfp.experimental.vi.build_factored_surrogate_posterior`. The variables are also
    exposed in the params layout (`loc[group][key]`, `unconstrained_scale[group][key]`),
    so a `tf.train.Checkpoint(surrogate=posterior)` has readable keys; a checkpoint is
    restored into a posterior built with the same template.

    Args:
      template: params structure (e.g. `network.params`), leaves without batch dims.
      initial_loc: params structure of the same shapes for the initial locations (e.g.
        a MAP fit's params); default: the template's values.
      initial_scale: initial standard deviation of every weight (> 0, small: the
        surrogate starts close to the point estimate).
      seed: seed for the builder (the initial values are given, so nothing random is
        drawn at construction; kept for the TFP builder's contract).
      dtype: float dtype.
      name: module name.

    #### Examples

    ```python
    q = MeanFieldPosterior(net.params, initial_scale=1e-3)
    w = q.sample(4, seed=(1, 2))      # params structure, every leaf [4] + core
    LSTMAutoregressive(net, 50, params=w).batch_shape  # ==> [4]
    ```
    """

    def __init__(
        self,
        template: Mapping,
        *,
        initial_loc: Mapping | None = None,
        initial_scale: float = 1e-3,
        seed=None,
        dtype=tf.float32,
        name: str = "MeanFieldPosterior",
    ):
        super().__init__(name=name)
        if not initial_scale > 0:
            raise ValueError(f"initial_scale must be positive, got {initial_scale}.")
        dtype = tf.as_dtype(dtype)
        shapes = _core_shapes(template)
        loc = _plain(template if initial_loc is None else initial_loc)
        try:
            tf.nest.assert_same_structure(shapes, loc)
        except (ValueError, TypeError) as error:
            raise ValueError(f"initial_loc must have the template's structure: {error}") from None
        loc = tf.nest.map_structure(lambda v: tf.convert_to_tensor(v, dtype), loc)
        for shape, value in zip(tf.nest.flatten(shapes), tf.nest.flatten(loc), strict=True):
            if value.shape != shape:
                raise ValueError(
                    f"initial_loc leaf of shape {value.shape} does not match the template's "
                    f"{shape} (initial_loc must not carry batch dims)."
                )
        init = tf.nest.map_structure(
            lambda value: {"loc": value, "scale": tf.constant(initial_scale, dtype)}, loc
        )
        self.initial_scale = float(initial_scale)
        self._dtype = dtype
        self._scale_bijector = tfd.Normal.parameter_properties()[
            "scale"
        ].default_constraining_bijector_fn()
        with self.name_scope:
            surrogate = tfp.experimental.vi.build_factored_surrogate_posterior(
                event_shape=shapes, initial_parameters=init, dtype=dtype, seed=seed
            )
        # Held outside tf.Module tracking so that variables and checkpoint keys come from
        # `loc` / `unconstrained_scale` (the same variables), not from TFP's internals.
        self._untracked = types.SimpleNamespace(distribution=surrogate)
        locs, scales = self._split_builder_variables(shapes, tf.nest.flatten(loc))
        # A copy: tf.Module wraps the dicts assigned to it in place, and the builder re-reads
        # its (plain-dict) `event_shape` every time it rebuilds the distribution.
        self._shapes = _plain(shapes)
        self.loc = tf.nest.pack_sequence_as(shapes, locs)
        self.unconstrained_scale = tf.nest.pack_sequence_as(shapes, scales)

    def _split_builder_variables(self, shapes: dict, initial_locs: list) -> tuple[list, list]:
        """The builder's variables as (locs, unconstrained scales) in `tf.nest` order.

        The builder creates, for each leaf in `tf.nest.flatten` order, a `loc` and a
        `scale` variable. The layout is checked against the shapes and initial values so
        that a change in TFP fails loudly here rather than mixing parameters up.
        """
        variables = list(self._untracked.distribution.trainable_variables)
        locs = [v for v in variables if v.name.split("/")[-1].startswith("loc")]
        scales = [v for v in variables if v.name.split("/")[-1].startswith("scale")]
        shapes = tf.nest.flatten(shapes)
        ok = len(locs) == len(scales) == len(shapes) and len(variables) == 2 * len(shapes)
        for loc, scale, shape, value in zip(locs, scales, shapes, initial_locs, strict=False):
            ok = ok and loc.shape == shape and scale.shape == shape
            ok = ok and bool(tf.reduce_all(tf.equal(tf.convert_to_tensor(loc), value)))
        if not ok:
            raise RuntimeError(
                "unexpected variable layout from tfp.experimental.vi."
                "build_factored_surrogate_posterior; probseq expects one loc and one scale "
                "variable per leaf in tf.nest order."
            )
        return locs, scales

    @property
    def distribution(self) -> tfd.Distribution:
        """The TFP surrogate (a `DeferredModule` joint distribution over the params)."""
        return self._untracked.distribution

    @property
    def event_shape(self) -> dict:
        """Leaf shapes of one draw (the template's shapes), a plain nested dict."""
        return _plain(self._shapes)

    @property
    def num_weights(self) -> int:
        """Total number of scalar weights in one draw."""
        return int(sum(shape.num_elements() for shape in tf.nest.flatten(self._shapes)))

    def mean(self) -> dict:
        """Posterior mean (= location) as a params structure of tensors."""
        return tf.nest.map_structure(tf.convert_to_tensor, _plain(self.loc))

    def stddev(self) -> dict:
        """Posterior standard deviations `softplus(u)` as a params structure."""
        return tf.nest.map_structure(self._scale_bijector.forward, _plain(self.unconstrained_scale))

    def leaf_distributions(self) -> dict:
        """Elementwise `tfd.Normal(loc, scale)` per leaf (batch shape = leaf shape)."""
        return tf.nest.map_structure(tfd.Normal, self.mean(), self.stddev())

    def sample(self, sample_shape=(), seed=None) -> dict:
        """Reparameterized draws: a params structure, every leaf `sample_shape + core`.

        Draws leaf by leaf from `leaf_distributions()` with `split_seed(seed)` (the same
        distribution as `self.distribution.sample`, which rebuilds TFP's autobatched
        joint on every call and is much slower to run and to trace).
        """
        leaves = tf.nest.flatten(self.leaf_distributions())
        seeds = samplers.split_seed(stateless_seed(seed), n=len(leaves))
        draws = [leaf.sample(sample_shape, seed=s) for leaf, s in zip(leaves, seeds, strict=True)]
        return tf.nest.pack_sequence_as(self._shapes, draws)

    def log_prob(self, params: Mapping) -> tf.Tensor:
        """`log q(w)` for draws with leading dims `s` (every leaf `s + core`): returns `s`.

        Equals `self.distribution.log_prob(params)` (tested), computed leaf by leaf.
        """
        parts = []
        for leaf, value in zip(
            tf.nest.flatten(self.leaf_distributions()),
            tf.nest.flatten(_plain(params)),
            strict=True,
        ):
            core = leaf.batch_shape.rank
            log_prob = leaf.log_prob(value)  # :: s + core
            parts.append(tf.reduce_sum(log_prob, axis=list(range(-core, 0))) if core else log_prob)
        return tf.add_n(parts)

    def kl_divergence(self, prior: Prior) -> tf.Tensor:
        """Closed-form `KL(q || p)` in nats (scalar) for a `GaussianPrior`.

        Sum over all weights of `tfd.kl_divergence(Normal(loc, scale), Normal(0, s))`.

        Raises:
          NotImplementedError: for priors without a closed-form KL (use
            `kl_divergence_monte_carlo`).
        """
        if not _has_closed_form_kl(prior):
            raise NotImplementedError(
                f"KL(Normal || {type(prior).__name__}) has no closed form; use "
                "kl_divergence_monte_carlo."
            )
        scalar = _scalar_prior(prior, self._dtype)
        parts = [
            tf.reduce_sum(tfd.kl_divergence(leaf, scalar))
            for leaf in tf.nest.flatten(self.leaf_distributions())
        ]
        return tf.add_n(parts)

    def kl_divergence_monte_carlo(self, prior: Prior, num_draws: int, seed=None) -> tf.Tensor:
        """Monte Carlo `KL(q || p) ~= mean_k [log q(w_k) - log p(w_k)]`, `w_k ~ q` (nats)."""
        draws = self.sample(num_draws, seed=seed)
        log_p = _prior_log_prob(prior, self.event_shape, draws)  # :: [num_draws]
        return tf.reduce_mean(self.log_prob(draws) - log_p)


def _as_template(source) -> Mapping:
    """Params structure of an `LSTMNetwork`, an `LSTMAutoregressive` or a params dict."""
    if _is_mapping(source):
        return source
    params = getattr(source, "params", None)
    if _is_mapping(params):
        return params
    raise TypeError(
        "expected an LSTMNetwork, an LSTMAutoregressive or a params dict, got "
        f"{type(source).__name__}."
    )


# ------------------------------------------------------------------------ objective
def joint_distribution(
    likelihood: tfd.Distribution,
    prior: Prior,
    *,
    num_sequences: int | tf.Tensor | None,
) -> tfd.JointDistributionNamed:
    """The model `p(w) p(x | w)` as a `tfd.JointDistributionNamed` with parts `params`, `x`.

    Args:
      likelihood: an `LSTMAutoregressive` (without explicit params); its `copy(params=w)`
        is the likelihood of one sequence given weights `w` (prefix and temperature are
        kept).
      prior: the prior over every weight.
      num_sequences: `B`: `x` is `B` iid sequences that share one weight draw
        (`tfd.Sample(likelihood(w), B)`, event `[B, T]`). `None`: `x` is one sequence
        per draw (event `[T]`; with `B` draws `w :: [B] + core` each sequence has its own).

    Returns:
      The joint; `log_prob_parts({"params": w, "x": x})` gives `{"params": log p(w),
      "x": log p(x | w)}`, each with the draws' leading shape.
    """
    template = likelihood.params
    dtype = tf.nest.flatten(template)[0].dtype
    prior_dist = prior_distribution(prior, template, dtype)

    def x_given(params):
        conditional = likelihood.copy(params=params)
        if num_sequences is None:
            return conditional
        return tfd.Sample(conditional, num_sequences)

    return tfd.JointDistributionNamed({"params": prior_dist, "x": x_given}, name="model")


class ELBOTerms(NamedTuple):
    """Monte Carlo terms of the ELBO on one minibatch (scalars).

    Attributes:
      expected_nll: `E_q[-mean_b log p(x_b | w)]`, nats per example.
      kl: `KL(q || p)` in nats for all weights (closed form or Monte Carlo estimate).
      kl_per_example: `kl / N`.
      elbo_per_example: `-(expected_nll + kl_per_example)`, the unannealed ELBO / N.
    """

    expected_nll: tf.Tensor
    kl: tf.Tensor
    kl_per_example: tf.Tensor
    elbo_per_example: tf.Tensor


def elbo_terms(
    surrogate: MeanFieldPosterior,
    likelihood: tfd.Distribution,
    prior: Prior,
    batch: tf.Tensor,
    *,
    num_examples: int,
    num_draws: int = 1,
    draw_per_sequence: bool = False,
    seed=None,
    draws: Mapping | None = None,
) -> ELBOTerms:
    """Reparameterized Monte Carlo estimate of the ELBO terms on a minibatch.

    With `draw_per_sequence=False`, `K = num_draws` weight draws `w_k ~ q` (stacked as a
    leading `[K]` params dim, one batched pass) are each shared by all `B` sequences of
    the batch and by all their time steps:

    ```none
    expected_nll = -(1 / K) sum_k (1 / B) sum_b log p(x_b | w_k)
    kl           = KL(q || p)                              (closed form, GaussianPrior)
                 = (1 / K) sum_k [log q(w_k) - log p(w_k)]  (Monte Carlo, other priors)
    ```

    With `draw_per_sequence=True` (`num_draws` must be 1) each of the `B` sequences gets
    its own draw (params `[B] + core`; `B` times the weight memory).

    The two factors are those of `joint_distribution(likelihood, prior, ...)`:
    `log p(x | w)` is `tfd.Sample(likelihood.copy(params=w), B).log_prob(x)` and
    `log p(w)` is `prior_distribution(prior, ...).log_prob(w)`, summed leaf by leaf (equal
    to the joint's `log_prob_parts`, tested). They are evaluated directly rather than
    through the joint because a JointDistribution with a callable part discovers its
    structure by tracing a full sample of the model (the LSTM sampling loop), which costs
    seconds per trace.

    Args:
      surrogate: the variational posterior.
      likelihood: `LSTMAutoregressive` template (see `joint_distribution`).
      prior: `GaussianPrior` or `ScaleMixturePrior`.
      batch: int `[B, T]` sequences.
      num_examples: `N`, the training-set size the KL is spread over.
      num_draws: `K`.
      draw_per_sequence: one draw per sequence instead of per minibatch.
      seed: stateless seed for the draws.
      draws: optional given draws (params structure, leaves `[K] + core`, or `[B] +
        core` with `draw_per_sequence`) used instead of sampling (e.g. to evaluate the
        same draws as another estimator); `num_draws` and `seed` are then ignored.

    Returns:
      `ELBOTerms` (scalars, nats).
    """
    batch = tf.convert_to_tensor(batch)
    if draw_per_sequence:
        if num_draws != 1:
            raise ValueError("draw_per_sequence=True uses exactly one draw per sequence.")
        if draws is None:
            draws = surrogate.sample(tf.shape(batch)[0], seed=seed)  # leaves :: [B] + core
        draws = _plain(draws)
        log_lik = likelihood.copy(params=draws).log_prob(batch)  # :: [B], one draw each
        expected_nll = -tf.reduce_mean(log_lik)
    else:
        if draws is None:
            draws = surrogate.sample(num_draws, seed=seed)  # leaves :: [K] + core
        draws = _plain(draws)
        num_sequences = batch.shape[0] if batch.shape[0] is not None else tf.shape(batch)[0]
        log_lik = tfd.Sample(likelihood.copy(params=draws), num_sequences).log_prob(
            batch
        )  # :: [K], summed over the B sequences
        expected_nll = -tf.reduce_mean(log_lik) / tf.cast(num_sequences, log_lik.dtype)
    if _has_closed_form_kl(prior):
        kl = surrogate.kl_divergence(prior)
    else:
        log_prior = _prior_log_prob(prior, surrogate.event_shape, draws)  # :: [K] or [B]
        kl = tf.reduce_mean(surrogate.log_prob(draws) - log_prior)
    kl_per_example = kl / tf.cast(num_examples, kl.dtype)
    return ELBOTerms(expected_nll, kl, kl_per_example, -(expected_nll + kl_per_example))


def kl_weight(step, kl_annealing_steps: int) -> float:
    """Linear KL warm-up: `min(1, step / kl_annealing_steps)` (1 when annealing is off).

    Args:
      step: global 1-based optimizer step of the update.
      kl_annealing_steps: length of the warm-up (0: no annealing).
    """
    if kl_annealing_steps <= 0:
        return 1.0
    return float(min(1.0, step / kl_annealing_steps))


# --------------------------------------------------------------------------- fitting
@dataclasses.dataclass
class VariationalFitResult(FitResult):
    """`FitResult` of `fit_variational`, plus the fitted surrogate and the prior.

    The trace has, per step: `loss` (annealed negative ELBO per example,
    `nll + kl_weight * kl`), `nll` (expected NLL per example), `kl` (`KL(q||p) / N`,
    unweighted), `elbo` (`-(nll + kl)`, unannealed, per example), `kl_weight`,
    `grad_norm`, `learning_rate`, `seconds` (all nats).

    Attributes:
      surrogate: the fitted `MeanFieldPosterior` (a `tf.Module` of `tf.Variable`s).
      prior: the prior used.
      kl_method: `"closed_form"` or `"monte_carlo"`.
    """

    surrogate: MeanFieldPosterior | None = None
    prior: Prior | None = None
    kl_method: str = "closed_form"


_TRACE_KEYS = (
    "step",
    "loss",
    "nll",
    "kl",
    "elbo",
    "kl_weight",
    "grad_norm",
    "learning_rate",
    "seconds",
)


def _initial_loc(initial_loc, template: Mapping, prior: Prior, seed) -> Mapping:
    if initial_loc is None:
        return template
    if isinstance(initial_loc, str):
        if initial_loc != "prior":
            raise ValueError(
                f"initial_loc must be 'prior', params or a network, not {initial_loc!r}."
            )
        dtype = tf.nest.flatten(template)[0].dtype
        return prior_distribution(prior, template, dtype).sample(seed=seed)
    return _as_template(initial_loc)


def fit_variational(
    distribution: tfd.Distribution,
    dataset: Iterable,
    *,
    num_examples: int,
    num_steps: int,
    prior: Prior = GaussianPrior(1.0),
    surrogate: MeanFieldPosterior | None = None,
    initial_loc=None,
    posterior_init_scale: float = 1e-3,
    num_draws_per_step: int = 1,
    draw_per_sequence: bool = False,
    kl_annealing_steps: int = 0,
    optimizer=None,
    learning_rate: float | Callable = 1e-3,
    clip_norm: float | None = None,
    seed=None,
    callbacks: Sequence[Callback] = (),
    eval_fn: Callable[[], dict[str, Any]] | None = None,
    eval_every: int | None = None,
    initial_step: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool = False,
) -> VariationalFitResult:
    """Fit a mean-field Normal posterior over an LSTM model's weights (Bayes by backprop).

    Minimizes `E_q[-mean_b log p(x_b | w)] + kl_weight(t) * KL(q || p) / N` per step (see
    the module docstring and `elbo_terms`), with `K = num_draws_per_step` reparameterized
    weight draws per minibatch, each shared by all sequences and time steps of the batch.

    Args:
      distribution: an `LSTMAutoregressive` giving the likelihood of one sequence; its
        params (the network's variables) define the structure and, by default, the
        initial locations. Its variables are not changed.
      dataset: iterable (e.g. `tf.data.Dataset`) of int batches `[B, T]`.
      num_examples: `N`, the number of training sequences (scales the KL).
      num_steps: optimizer steps to take in this call.
      prior: `GaussianPrior(scale)` (closed-form KL; default scale 1) or
        `ScaleMixturePrior(...)` (Monte Carlo KL).
      surrogate: an existing `MeanFieldPosterior` to continue fitting (e.g. restored
        from a checkpoint); default: a new one built from `initial_loc` and
        `posterior_init_scale`.
      initial_loc: initial locations: None (the distribution's current params, e.g. a
        fresh network's init or a MAP fit), `"prior"` (a prior draw with `seed`), an
        `LSTMNetwork` or a params dict.
      posterior_init_scale: initial standard deviation of every weight.
      num_draws_per_step: `K` weight draws per step, scored in one batched pass.
      draw_per_sequence: one draw per sequence instead of per minibatch (`K` must be 1).
      kl_annealing_steps: linear warm-up of the KL weight over this many global steps
        (0: weight 1 throughout).
      optimizer: anything with `apply_gradients` and `iterations`; default tf_keras Adam
        with `learning_rate` (as `fit_map`).
      learning_rate: float or schedule (default optimizer only).
      clip_norm: clip gradients by this global norm (None: no clipping).
      seed: int or stateless seed; the draws of global step `t` use
        `fold_in(seed, t)`, so the same seed gives the same fit, also when resumed.
      callbacks: `Callback`s; `StepInfo.extra` holds `kl`, `elbo` and `kl_weight`.
      eval_fn: no-argument function called every `eval_every` steps and at the end
        (build the surrogate first and pass it in if `eval_fn` needs it).
      eval_every: evaluation period in steps.
      initial_step: global step at which this call starts (for resumed runs).
      strategy: optional `tf.distribute.Strategy` (surrogate variables must have been
        created under its scope); every replica uses the same draws.
      jit_compile: compile the train step with XLA.

    Returns:
      A `VariationalFitResult` with the surrogate and the per-step trace.

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=65, hidden_size=128, seed=1)
    dist = probseq.LSTMAutoregressive(net, num_steps=50)
    result = fit_variational(dist, batches, num_examples=2000, num_steps=500, seed=0)
    result.trace["elbo"][-1]                  # ==> ELBO per sequence, nats
    draws = result.surrogate.sample(16, seed=(1, 2))
    ```
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}.")
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}.")
    if num_draws_per_step < 1:
        raise ValueError(f"num_draws_per_step must be >= 1, got {num_draws_per_step}.")
    if draw_per_sequence and num_draws_per_step != 1:
        raise ValueError("draw_per_sequence=True needs num_draws_per_step=1.")
    if kl_annealing_steps < 0:
        raise ValueError(f"kl_annealing_steps must be >= 0, got {kl_annealing_steps}.")
    _scalar_prior(prior, tf.float32)  # type check
    template = distribution.params
    init_seed, step_seed = samplers.split_seed(stateless_seed(seed))
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        if surrogate is None:
            surrogate = MeanFieldPosterior(
                template,
                initial_loc=_initial_loc(initial_loc, template, prior, init_seed),
                initial_scale=posterior_init_scale,
                seed=init_seed,
            )
        optimizer = optimizer or _default_optimizer(learning_rate)
    variables = list(surrogate.trainable_variables)
    num_replicas = strategy.num_replicas_in_sync

    def replica_step(batch, step_seed, weight):
        with tf.GradientTape() as tape:
            terms = elbo_terms(
                surrogate,
                distribution,
                prior,
                batch,
                num_examples=num_examples,
                num_draws=num_draws_per_step,
                draw_per_sequence=draw_per_sequence,
                seed=step_seed,
            )
            # Per replica: the replica's share of the global-batch mean, and 1/R of the KL,
            # so that the all-reduced sum is the global objective.
            nll = terms.expected_nll / num_replicas
            kl = terms.kl_per_example / num_replicas
            loss = nll + weight * kl
        grads = tape.gradient(loss, variables)
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        grads, norm = global_norm_clip(grads, clip_norm)
        optimizer.apply_gradients(
            zip(grads, variables, strict=True), experimental_aggregate_gradients=False
        )
        return loss, nll, kl, norm

    def train_step(batch, step_seed, weight):
        loss, nll, kl, norm = strategy.run(replica_step, args=(batch, step_seed, weight))
        total = tf.distribute.ReduceOp.SUM
        return (
            strategy.reduce(total, loss, axis=None),
            strategy.reduce(total, nll, axis=None),
            strategy.reduce(total, kl, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None),
        )

    compiled = tf.function(train_step, jit_compile=jit_compile or None)
    if isinstance(dataset, tf.data.Dataset) and num_replicas > 1:
        dataset = strategy.experimental_distribute_dataset(dataset)
    trace: dict[str, list] = {key: [] for key in _TRACE_KEYS}
    evaluations: list[dict[str, Any]] = []
    stopped = False
    steps_run = 0
    start = time.perf_counter()
    iterator = iter(dataset)
    for local in range(num_steps):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        step = initial_step + local + 1
        weight = kl_weight(step, kl_annealing_steps)
        loss, nll, kl, norm = compiled(
            batch,
            tf.random.experimental.stateless_fold_in(step_seed, step),
            tf.constant(weight, tf.float32),
        )
        steps_run = local + 1
        nll, kl = float(nll), float(kl)
        extra = {"kl": kl, "elbo": -(nll + kl), "kl_weight": weight}
        info = StepInfo(
            step=step,
            loss=float(loss),
            nll=nll,
            grad_norm=float(norm),
            learning_rate=_current_lr(optimizer),
            seconds=time.perf_counter() - start,
            extra=extra,
        )
        for key in _TRACE_KEYS:
            trace[key].append(extra[key] if key in extra else getattr(info, key))
        if not math.isfinite(info.loss):
            raise FloatingPointError(
                f"loss became {info.loss} at step {step}; lower the learning rate, set "
                "clip_norm or a smaller posterior_init_scale."
            )
        stop = any(bool(cb.on_step(info)) for cb in callbacks)
        last = stop or local == num_steps - 1
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or last):
            metrics = dict(eval_fn(), step=step)
            evaluations.append(metrics)
            stop = any(bool(cb.on_evaluation(step, metrics)) for cb in callbacks) or stop
        if stop:
            stopped = True
            break
    return VariationalFitResult(
        trace={key: np.asarray(value) for key, value in trace.items()},
        evaluations=evaluations,
        steps_run=steps_run,
        final_step=initial_step + steps_run,
        stopped_early=stopped,
        surrogate=surrogate,
        prior=prior,
        kl_method="closed_form" if _has_closed_form_kl(prior) else "monte_carlo",
    )
