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
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference._loop import (
    FitResult,
    LossTerms,
    check_fit_arguments,
    default_optimizer,
    fit_loop,
    takes_seed,
)
from probseq.inference.callbacks import Callback
from probseq.inference.map import likelihood_of, token_range_diagnosis
from probseq.inference.priors import (
    GaussianPrior,
    Prior,
    ScaleMixturePrior,
    _prior_log_prob,
    has_closed_form_kl,
    prior_distribution,
    scalar_prior,
)
from probseq.inference.surrogate import MeanFieldPosterior, _as_template
from probseq.nn.cells import network_cell
from probseq.nn.params import plain
from probseq.seeds import split, stateless_seed

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
    template = likelihood.params_in_use
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
    log_likelihood_fn: Callable | None = None,
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
      log_likelihood_fn: optional `(batch, params) -> log-likelihoods` replacing
        `likelihood.copy(params=...).log_prob(batch)`, for conditional or variable-length
        models: `params` are the draws (leaves `[K] + core`); it returns `[K, B]` (one
        value per draw and example), or `[B]` with `draw_per_sequence` (leaves `[B] +
        core`, one draw per example).

    Returns:
      `ELBOTerms` (scalars, nats).
    """
    if log_likelihood_fn is None:
        batch = tf.convert_to_tensor(batch)
    if draw_per_sequence:
        if num_draws != 1:
            raise ValueError("draw_per_sequence=True uses exactly one draw per sequence.")
        if draws is None:
            draws = surrogate.sample(tf.shape(batch)[0], seed=seed)  # leaves :: [B] + core
        draws = plain(draws)
        if log_likelihood_fn is not None:
            log_lik = log_likelihood_fn(batch, draws)  # :: [B], one draw each
        else:
            log_lik = likelihood.copy(params=draws).log_prob(batch)  # :: [B], one draw each
        expected_nll = -tf.reduce_mean(log_lik)
    else:
        if draws is None:
            draws = surrogate.sample(num_draws, seed=seed)  # leaves :: [K] + core
        draws = plain(draws)
        if log_likelihood_fn is not None:
            log_lik = log_likelihood_fn(batch, draws)  # :: [K, B]
            expected_nll = -tf.reduce_mean(log_lik)
        else:
            num_sequences = batch.shape[0] if batch.shape[0] is not None else tf.shape(batch)[0]
            log_lik = tfd.Sample(likelihood.copy(params=draws), num_sequences).log_prob(
                batch
            )  # :: [K], summed over the B sequences
            expected_nll = -tf.reduce_mean(log_lik) / tf.cast(num_sequences, log_lik.dtype)
    if has_closed_form_kl(prior):
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


def _template_and_cell(model) -> tuple[Mapping, Any]:
    """The params structure a surrogate is built over, and its cell: a distribution's
    params in use and its network's cell, or a network's params and cell."""
    params = getattr(model, "params_in_use", None)
    if params is not None:
        return params, network_cell(getattr(model, "network", None))
    params = getattr(model, "params", None)
    if params is not None and hasattr(model, "cell_type"):
        return params, model.cell_type
    raise TypeError(
        "fit_variational needs the params structure to put a posterior on: a probseq "
        f"distribution or a network, got {type(model).__name__}."
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
    posterior_init_scale: float = 1e-2,
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
    log_likelihood_fn: Callable | None = None,
) -> VariationalFitResult:
    """Fit a mean-field Normal posterior over an LSTM model's weights (Bayes by backprop).

    Minimizes `E_q[-mean_b log p(x_b | w)] + kl_weight(t) * KL(q || p) / N` per step (see
    the module docstring and `elbo_terms`), with `K = num_draws_per_step` reparameterized
    weight draws per minibatch, each shared by all sequences and time steps of the batch.

    Args:
      distribution: the model: a probseq distribution giving the likelihood of one
        sequence (e.g. `LSTMAutoregressive(net, T)`), or, with `log_likelihood_fn`, a
        network (e.g. the `Seq2SeqNetwork` of a conditional model); its params define
        the structure, the cell and, by default, the initial locations. Its variables
        are not changed.
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
      posterior_init_scale: initial standard deviation of every weight. The default
        1e-2 was chosen by `experiments/vi_defaults.py` (1x128 and 2x128 LSTMs on
        Shakespeare, 400 and 1,500 steps; experiments/RESULTS.md): in a short fit the
        scales barely move from their start (Adam changes each pre-image by about the
        learning rate per step), so 1e-3 gives a practically-MAP fit; 1e-2 is the
        smallest start that is not, and it beat MAP by 1,500 steps.
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
      log_likelihood_fn: optional `(batch, params) -> [K, B]` log-likelihoods under the
        `K` weight draws `params` (leaves `[K] + core`), replacing the distribution's
        `log_prob`: conditional models (an `EncoderDecoder` of the batch's sources),
        variable-length batches (`lengths=`), any likelihood built from the params
        structure (see `elbo_terms`). The model then only gives the params template
        (and the cell). A function with a `seed` keyword also gets a per-step seed.

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
    check_fit_arguments(num_steps, num_examples)
    if num_draws_per_step < 1:
        raise ValueError(f"num_draws_per_step must be >= 1, got {num_draws_per_step}.")
    if draw_per_sequence and num_draws_per_step != 1:
        raise ValueError("draw_per_sequence=True needs num_draws_per_step=1.")
    if kl_annealing_steps < 0:
        raise ValueError(f"kl_annealing_steps must be >= 0, got {kl_annealing_steps}.")
    scalar_prior(prior)  # type check
    template, cell = _template_and_cell(distribution)
    if log_likelihood_fn is None:
        likelihood_of(distribution, None, "fit_variational")  # a distribution, or refuse
    init_seed, step_seed = tf.unstack(split(seed, 2))
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        if surrogate is None:
            surrogate = MeanFieldPosterior(
                template,
                initial_loc=_initial_loc(initial_loc, template, prior, init_seed),
                initial_scale=posterior_init_scale,
                seed=init_seed,
                cell=cell,
            )
        optimizer = optimizer or default_optimizer(learning_rate)
    seeded = log_likelihood_fn is not None and takes_seed(log_likelihood_fn)

    def loss_fn(batch, draw_seed, scalars):
        fn = log_likelihood_fn
        if seeded:  # the likelihood's own randomness (e.g. dropout), apart from the draws'
            fn = functools.partial(
                log_likelihood_fn, seed=tf.random.experimental.stateless_fold_in(draw_seed, 1)
            )
        terms = elbo_terms(
            surrogate,
            distribution,
            prior,
            batch,
            num_examples=num_examples,
            num_draws=num_draws_per_step,
            draw_per_sequence=draw_per_sequence,
            seed=draw_seed,
            log_likelihood_fn=fn,
        )
        return LossTerms(
            terms.expected_nll,
            scalars["kl_weight"] * terms.kl_per_example,
            {"kl": terms.kl_per_example, "elbo": terms.elbo_per_example},
        )

    result = fit_loop(
        loss_fn,
        surrogate.trainable_variables,
        dataset,
        num_steps=num_steps,
        optimizer=optimizer,
        strategy=strategy,
        seed=step_seed,
        clip_norm=clip_norm,
        jit_compile=jit_compile,
        callbacks=callbacks,
        eval_fn=eval_fn,
        eval_every=eval_every,
        initial_step=initial_step,
        step_scalars=lambda step: {"kl_weight": kl_weight(step, kl_annealing_steps)},
        divergence_hint=(
            "lower the learning rate, set clip_norm or a smaller posterior_init_scale"
        ),
        diagnose_batch=token_range_diagnosis(distribution),
    )
    return VariationalFitResult(
        **{field.name: getattr(result, field.name) for field in dataclasses.fields(result)},
        surrogate=surrogate,
        prior=prior,
        kl_method="closed_form" if has_closed_form_kl(prior) else "monte_carlo",
    )
