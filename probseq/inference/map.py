"""MAP / maximum-likelihood fitting of a probseq model's variables.

The objective for a dataset of `N` sequences, seen through minibatches of `B`, is

    log p(params) + (N / B) * sum_{b in batch} log p(x_b | params),

maximized over the point-estimate params (the model's trainable variables). With
`prior=None` it is maximum likelihood. For numerical scale the loop minimizes the same
objective divided by `-N` (a per-example loss in nats), which has the same optimum. The
loop itself is `probseq.inference._loop.fit_loop`, shared with `fit_variational`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference._loop import (
    FitResult,
    LossTerms,
    check_fit_arguments,
    check_likelihood_reads,
    default_optimizer,
    fit_loop,
    global_norm_clip,
    takes_seed,
)
from probseq.inference.callbacks import Callback
from probseq.inference.priors import GaussianPrior, Prior, scalar_prior, weights_log_prob

tfd = tfp.distributions

__all__ = [
    "FitResult",
    "GaussianPrior",
    "check_likelihood_reads",
    "fit_map",
    "global_norm_clip",
    "token_range_diagnosis",
]


def token_range_diagnosis(model) -> Callable[[Any], str | None] | None:
    """For a token model: `batch -> message` naming ids outside `[0, vocab_size)`."""
    vocab_size = getattr(model, "vocab_size", None)
    if not isinstance(vocab_size, int):
        return None

    def diagnose(batch) -> str | None:
        try:
            values = np.asarray(batch)
        except (TypeError, ValueError):
            return None
        if values.dtype.kind not in "iu" or values.size == 0:
            return None
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high < vocab_size:
            return None
        return (
            f"the batch holds token ids outside [0, vocab_size={vocab_size}) (min {low}, "
            f"max {high}); bad data, not a learning-rate problem. Encode the text with the "
            "model's vocabulary"
        )

    return diagnose


def likelihood_of(model, log_likelihood_fn: Callable | None, name: str) -> Callable:
    """`log_likelihood_fn`, else the distribution's `log_prob`; a clear error for a model
    (e.g. a network) that has neither."""
    if log_likelihood_fn is not None:
        return log_likelihood_fn
    if isinstance(model, tfd.Distribution):
        return model.log_prob
    raise TypeError(
        f"{name} got a {type(model).__name__}, which has no log_prob: pass a distribution, "
        "or pass log_likelihood_fn= with the model (e.g. a network whose variables the "
        "function reads)."
    )


def fit_map(
    distribution,
    dataset: Iterable,
    *,
    num_examples: int,
    num_steps: int,
    prior: Prior | None = GaussianPrior(1.0),
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
) -> FitResult:
    """Fit a model's trainable variables by MAP (or maximum likelihood).

    Args:
      distribution: the model: any `tfd.Distribution` whose `trainable_variables` are
        the params to fit (e.g. `LSTMAutoregressive(network, T)`; `log_prob(batch)`
        returns one log-likelihood per example), or, with `log_likelihood_fn`, anything
        with `trainable_variables` (e.g. the network of a conditional model).
      dataset: iterable (e.g. `tf.data.Dataset`) of batches `[B] + event_shape` (or
        whatever `log_likelihood_fn` reads).
      num_examples: `N`, the number of training examples the batches represent (scales
        the likelihood against the prior).
      num_steps: number of optimizer steps to take in this call.
      prior: a TFP distribution over one weight (iid over all weights, e.g.
        `tfd.Laplace(0., 0.1)`), `GaussianPrior(scale)` (default scale 1),
        `ScaleMixturePrior(...)`, or None for maximum likelihood.
      optimizer: anything with `apply_gradients(zip(grads, vars))` and `iterations`
        (tf_keras optimizers); default Adam with `learning_rate`.
      learning_rate: float or schedule (used only by the default optimizer).
      clip_norm: clip gradients by this global norm (None: no clipping).
      seed: int or stateless seed of the per-step seeds `fold_in(seed, step)`, given to a
        `log_likelihood_fn` that takes a `seed` keyword (e.g. dropout); the objective of a
        distribution's `log_prob` draws nothing at random.
      callbacks: objects with `on_step(StepInfo)` / `on_evaluation(step, metrics)`
        hooks; a hook returning True stops the fit after the current step.
      eval_fn: called every `eval_every` steps (and at the end); returns a dict of
        metrics passed to callbacks and stored in `FitResult.evaluations`.
      eval_every: evaluation period in steps (None: only at the end if eval_fn).
      initial_step: global step at which this call starts (for resumed runs).
      strategy: optional `tf.distribute.Strategy`; the model's variables must have been
        created under `strategy.scope()`. Batches are split across replicas.
      jit_compile: compile the train step with XLA (measured slower for LSTM
        training on CPU here; see benchmarks/RESULTS.md).
      log_likelihood_fn: optional `batch -> [B]` log-likelihoods (or `(batch, seed=)`)
        replacing `distribution.log_prob`: conditional models (an `EncoderDecoder` of
        the batch's sources), variable-length batches (`lengths=`), truncated BPTT.

    Raises:
      ValueError: the log-likelihood does not read some of the trainable variables (e.g.
        a distribution built with `params=`: it scores with those tensors, so fitting
        its network's variables would change nothing but their weight decay); a batch
        with token ids outside `[0, vocab_size)` when the loss turns NaN.
      FloatingPointError: the loss became non-finite otherwise.

    Returns:
      A `FitResult` with the per-step trace.
    """
    check_fit_arguments(num_steps, num_examples)
    variables = list(getattr(distribution, "trainable_variables", ()))
    if not variables:
        raise ValueError(
            "the model has no trainable variables to fit (pass a distribution built on a "
            "network rather than on explicit params)."
        )
    log_likelihood = likelihood_of(distribution, log_likelihood_fn, "fit_map")
    seeded = log_likelihood_fn is not None and takes_seed(log_likelihood_fn)
    if prior is not None:
        scalar_prior(prior)  # type check before anything is built
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        optimizer = optimizer or default_optimizer(learning_rate)

    def loss_fn(batch, step_seed, scalars):
        log_lik = log_likelihood(batch, seed=step_seed) if seeded else log_likelihood(batch)
        nll = -tf.reduce_mean(log_lik)  # :: per example of the replica's batch
        penalty = None if prior is None else -weights_log_prob(prior, variables) / num_examples
        return LossTerms(nll, penalty)

    return fit_loop(
        loss_fn,
        variables,
        dataset,
        num_steps=num_steps,
        optimizer=optimizer,
        strategy=strategy,
        seed=seed,
        clip_norm=clip_norm,
        jit_compile=jit_compile,
        callbacks=callbacks,
        eval_fn=eval_fn,
        eval_every=eval_every,
        initial_step=initial_step,
        diagnose_batch=token_range_diagnosis(distribution),
    )
