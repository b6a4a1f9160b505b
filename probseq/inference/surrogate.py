"""`MeanFieldPosterior`: the mean-field Normal surrogate posterior of `fit_variational`."""

from __future__ import annotations

import types
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference.priors import (
    Prior,
    _core_shapes,
    _is_mapping,
    _plain,
    _prior_log_prob,
    has_closed_form_kl,
    scalar_prior,
)
from probseq.nn.cells import get_cell
from probseq.seeds import split, stateless_seed

tfd = tfp.distributions

__all__ = ["MeanFieldPosterior", "stateless_seed"]


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
      cell: the recurrent cell the params are for (name or `Cell`; default `"lstm"`),
        stated so that evaluation uses the right equations (`fit_variational` passes
        its network's).
      dtype: float dtype.
      name: module name.

    #### Examples

    ```python
    q = MeanFieldPosterior(net.params, initial_scale=1e-2)
    w = q.sample(4, seed=(1, 2))      # params structure, every leaf [4] + core
    LSTMAutoregressive(net, 50, params=w).batch_shape  # ==> [4]
    ```
    """

    def __init__(
        self,
        template: Mapping,
        *,
        initial_loc: Mapping | None = None,
        initial_scale: float = 1e-2,
        seed=None,
        dtype=tf.float32,
        name: str = "MeanFieldPosterior",
        cell="lstm",
    ):
        super().__init__(name=name)
        self.cell = get_cell(cell)
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
        seeds = tf.unstack(split(seed, len(leaves)))
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
        if not has_closed_form_kl(prior):
            raise NotImplementedError(
                f"KL(Normal || {type(prior).__name__}) has no closed form; use "
                "kl_divergence_monte_carlo."
            )
        scalar = scalar_prior(prior, self._dtype)
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
    params = getattr(source, "params_in_use", None)  # a distribution's
    if params is None:
        params = getattr(source, "params", None)  # a network's
    if _is_mapping(params):
        return params
    raise TypeError(
        "expected an LSTMNetwork, an LSTMAutoregressive or a params dict, got "
        f"{type(source).__name__}."
    )
