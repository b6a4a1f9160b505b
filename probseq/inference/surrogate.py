"""`MeanFieldPosterior`: the mean-field Normal surrogate posterior of `fit_variational`."""

from __future__ import annotations

import types
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference.priors import (
    Prior,
    _prior_log_prob,
    has_closed_form_kl,
    scalar_prior,
)
from probseq.nn.cells import get_cell
from probseq.nn.params import ParamsSpec, is_mapping, plain
from probseq.seeds import split, stateless_seed

tfd = tfp.distributions

__all__ = ["MeanFieldPosterior", "stateless_seed"]


class MeanFieldPosterior(tf.Module):
    """Mean-field Normal surrogate posterior over an LSTM params structure.

    `q(w) = prod_i Normal(w_i | loc_i, scale_i)` with `scale_i = softplus(u_i)` (TFP's
    constraining bijector for a Normal scale): `distribution` is that TFP distribution,
    built from `tf.Variable` locations and `tfp.util.TransformedVariable` scales (what
    `tfp.experimental.vi.build_factored_surrogate_posterior` builds, without recovering
    its variables by name). The variables are exposed in the params layout
    (`loc[group][key]`, `unconstrained_scale[group][key]`), so a
    `tf.train.Checkpoint(surrogate=posterior)` has readable keys; a checkpoint is
    restored into a posterior built with the same template.

    Args:
      template: params structure (e.g. `network.params`), leaves without batch dims.
      initial_loc: params structure of the same shapes for the initial locations (e.g.
        a MAP fit's params); default: the template's values.
      initial_scale: initial standard deviation of every weight (> 0, small: the
        surrogate starts close to the point estimate).
      seed: unused (the initial values are given, so nothing random is drawn at
        construction); kept from the first API.
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
        spec = ParamsSpec.of(plain(template))
        initial, _ = spec.check(
            plain(template if initial_loc is None else initial_loc),
            dtype=dtype,
            max_batch_ndims=0,
            what="initial_loc",
            reference="the template",
        )
        self.initial_scale = float(initial_scale)
        self._dtype = dtype
        self._scale_bijector = tfd.Normal.parameter_properties()[
            "scale"
        ].default_constraining_bijector_fn()
        del seed  # nothing is drawn: the initial values are given
        with self.name_scope:
            locs = [
                tf.Variable(tf.convert_to_tensor(value), name=f"loc/{name}")
                for value, name in zip(spec.flatten(initial), spec.names, strict=True)
            ]
            scales = [
                tfp.util.TransformedVariable(
                    tf.fill(shape, tf.constant(initial_scale, dtype)),
                    self._scale_bijector,
                    name=f"scale/{name}",
                )
                for shape, name in zip(spec.core_shapes, spec.names, strict=True)
            ]
        leaves = [
            tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=shape.rank)
            for loc, scale, shape in zip(locs, scales, spec.core_shapes, strict=True)
        ]
        surrogate = _joint(spec.pack(leaves), name="surrogate")
        # Held outside tf.Module tracking so that variables and checkpoint keys come from
        # `loc` / `unconstrained_scale` (the same variables), not from TFP's objects.
        self._untracked = types.SimpleNamespace(distribution=surrogate, leaves=leaves)
        self._spec = spec
        self._shapes = spec.shapes
        self.loc = spec.pack(locs)
        self.unconstrained_scale = spec.pack([scale.pretransformed_input for scale in scales])

    @property
    def distribution(self) -> tfd.Distribution:
        """The surrogate as a TFP distribution: a `tfd.JointDistributionNamed` (one part
        per params group, each a joint over its leaves) of `Independent(Normal(loc,
        scale))` with `tf.Variable` locations and `tfp.util.TransformedVariable` scales
        (softplus); `sample` and `log_prob` use its leaf distributions."""
        return self._untracked.distribution

    @property
    def event_shape(self) -> dict:
        """Leaf shapes of one draw (the template's shapes), a plain nested dict."""
        return plain(self._shapes)

    @property
    def num_weights(self) -> int:
        """Total number of scalar weights in one draw."""
        return int(sum(shape.num_elements() for shape in tf.nest.flatten(self._shapes)))

    def mean(self) -> dict:
        """Posterior mean (= location) as a params structure of tensors."""
        return tf.nest.map_structure(tf.convert_to_tensor, plain(self.loc))

    def stddev(self) -> dict:
        """Posterior standard deviations `softplus(u)` as a params structure."""
        return tf.nest.map_structure(self._scale_bijector.forward, plain(self.unconstrained_scale))

    def leaf_distributions(self) -> dict:
        """Elementwise `tfd.Normal(loc, scale)` per leaf (batch shape = leaf shape)."""
        return self._spec.pack([leaf.distribution for leaf in self._untracked.leaves])

    def sample(self, sample_shape=(), seed=None) -> dict:
        """Reparameterized draws: a params structure, every leaf `sample_shape + core`.

        Draws leaf by leaf from the distribution's own leaves with `split_seed(seed)`,
        in `tf.nest` order: the same distribution as `self.distribution.sample` (whose
        joint splits the seed its own way), and the same draws for a seed as before the
        surrogate was a TFP distribution, so runs resume with the draws they had.
        """
        leaves = self._untracked.leaves
        seeds = tf.unstack(split(seed, len(leaves)))
        draws = [leaf.sample(sample_shape, seed=s) for leaf, s in zip(leaves, seeds, strict=True)]
        return self._spec.pack(draws)

    def log_prob(self, params: Mapping) -> tf.Tensor:
        """`log q(w)` for draws with leading dims `s` (every leaf `s + core`): returns `s`.

        `self.distribution.log_prob(params)` (tested equal), summed over the leaves
        directly: the joint's structure checks dominate the tracing time of a step.
        """
        parts = [
            leaf.log_prob(value)
            for leaf, value in zip(
                self._untracked.leaves, self._spec.flatten(plain(params)), strict=True
            )
        ]
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


def _joint(node, name=None) -> tfd.Distribution:
    """Nested dicts of distributions as nested `tfd.JointDistributionNamed`s."""
    if not is_mapping(node):
        return node
    return tfd.JointDistributionNamed(
        {key: _joint(value) for key, value in node.items()}, name=name
    )


def _as_template(source) -> Mapping:
    """Params structure of an `LSTMNetwork`, an `LSTMAutoregressive` or a params dict."""
    if is_mapping(source):
        return source
    params = getattr(source, "params_in_use", None)  # a distribution's
    if params is None:
        params = getattr(source, "params", None)  # a network's
    if is_mapping(params):
        return params
    raise TypeError(
        "expected an LSTMNetwork, an LSTMAutoregressive or a params dict, got "
        f"{type(source).__name__}."
    )
