"""MAP / maximum-likelihood fitting of a probseq distribution's variables.

The objective for a dataset of `N` sequences, seen through minibatches of `B`, is

    log p(params) + (N / B) * sum_{b in batch} log p(x_b | params),

maximized over the point-estimate params (the distribution's trainable variables). With
`prior=None` it is maximum likelihood. For numerical scale the loop minimizes the same
objective divided by `-N` (a per-example loss in nats), which has the same optimum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probseq.inference._loop import run_steps
from probseq.inference.callbacks import Callback

tfd = tfp.distributions

__all__ = ["FitResult", "GaussianPrior", "fit_map", "global_norm_clip"]


class GaussianPrior:
    """Independent `Normal(0, scale)` prior on every weight (a weight-decay prior).

    Args:
      scale: prior standard deviation (> 0).
    """

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"prior scale must be positive, got {scale}.")
        self.scale = float(scale)

    def log_prob(self, variables: Sequence[tf.Variable]) -> tf.Tensor:
        """Sum of `Normal(0, scale).log_prob(w)` over all entries of all variables (nats)."""
        normal = tfd.Normal(tf.constant(0.0), self.scale)
        return tf.add_n([tf.reduce_sum(normal.log_prob(tf.cast(v, tf.float32))) for v in variables])

    def __repr__(self) -> str:
        return f"GaussianPrior(scale={self.scale})"


@dataclasses.dataclass
class FitResult:
    """What a fitting run returns.

    Attributes:
      trace: per-step arrays: `step`, `loss` (objective per example, nats),
        `nll` (mean negative log-likelihood per example, nats), `grad_norm`
        (global norm before clipping), `learning_rate`, `seconds`.
      evaluations: list of dicts returned by `eval_fn`, each with its `step`.
      steps_run: optimizer steps taken in this call.
      final_step: global step after the last update (`initial_step + steps_run`).
      stopped_early: True when a callback asked to stop.
    """

    trace: dict[str, np.ndarray]
    evaluations: list[dict[str, Any]]
    steps_run: int
    final_step: int
    stopped_early: bool


def global_norm_clip(grads: list, clip_norm: float | None) -> tuple[list, tf.Tensor]:
    """Clip gradients by global norm; returns (clipped, norm before clipping)."""
    norm = tf.linalg.global_norm(grads)
    if clip_norm is None:
        return grads, norm
    clipped, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
    return clipped, norm


def check_likelihood_reads(grads: list, variables: list) -> None:
    """Refuse to fit variables that the log-likelihood never reads (None gradients).

    Runs while the train step is traced (gradients are None statically), so it costs
    nothing per step.
    """
    unread = [v.name for v, g in zip(variables, grads, strict=True) if g is None]
    if not unread:
        return
    listed = ", ".join(unread[:5]) + (f", ... ({len(unread)} in all)" if len(unread) > 5 else "")
    raise ValueError(
        f"the log-likelihood does not depend on {len(unread)} of the {len(variables)} "
        f"trainable variables ({listed}); fitting them would change nothing the model "
        "computes (only their weight decay). A distribution built with params= (frozen "
        "tensors or posterior draws) scores with those tensors, not with its network's "
        "variables: fit a distribution built on the network itself, or pass "
        "log_likelihood_fn= that uses the variables."
    )


def token_range_diagnosis(distribution) -> Callable[[Any], str | None] | None:
    """For a token distribution: `batch -> message` naming ids outside `[0, vocab_size)`."""
    vocab_size = getattr(distribution, "vocab_size", None)
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


def _default_optimizer(learning_rate):
    import tf_keras

    return tf_keras.optimizers.Adam(learning_rate=learning_rate)


def fit_map(
    distribution: tfd.Distribution,
    dataset: Iterable,
    *,
    num_examples: int,
    num_steps: int,
    prior: GaussianPrior | None = GaussianPrior(1.0),
    optimizer=None,
    learning_rate: float | Callable = 1e-3,
    clip_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    eval_fn: Callable[[], dict[str, Any]] | None = None,
    eval_every: int | None = None,
    initial_step: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool = False,
    log_likelihood_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
) -> FitResult:
    """Fit a distribution's trainable variables by MAP (or maximum likelihood).

    Args:
      distribution: any `tfd.Distribution` whose `trainable_variables` are the params
        to fit (e.g. `LSTMAutoregressive(network, T)`); `log_prob(batch)` must return
        one log-likelihood per example of the batch.
      dataset: iterable (e.g. `tf.data.Dataset`) of batches `[B] + event_shape`.
      num_examples: `N`, the number of training examples the batches represent (scales
        the likelihood against the prior).
      num_steps: number of optimizer steps to take in this call.
      prior: `GaussianPrior(scale)` (default scale 1) or None for maximum likelihood.
      optimizer: anything with `apply_gradients(zip(grads, vars))` and `iterations`
        (tf_keras optimizers); default Adam with `learning_rate`.
      learning_rate: float or schedule (used only by the default optimizer).
      clip_norm: clip gradients by this global norm (None: no clipping).

    Raises:
      ValueError: the log-likelihood does not read some of the trainable variables (e.g.
        a distribution built with `params=`: it scores with those tensors, so fitting
        its network's variables would change nothing but their weight decay); a batch
        with token ids outside `[0, vocab_size)` when the loss turns NaN.
      FloatingPointError: the loss became non-finite otherwise.
      callbacks: objects with `on_step(StepInfo)` / `on_evaluation(step, metrics)`
        hooks; a hook returning True stops the fit after the current step.
      eval_fn: called every `eval_every` steps (and at the end); returns a dict of
        metrics passed to callbacks and stored in `FitResult.evaluations`.
      eval_every: evaluation period in steps (None: only at the end if eval_fn).
      initial_step: global step at which this call starts (for resumed runs).
      strategy: optional `tf.distribute.Strategy`; the distribution's variables must
        have been created under `strategy.scope()`. Batches are split across replicas.
      jit_compile: compile the train step with XLA (measured slower for LSTM
        training on CPU here; see benchmarks/RESULTS.md).
      log_likelihood_fn: optional `batch -> [B]` log-likelihoods replacing
        `distribution.log_prob` (e.g. for truncated BPTT with carried state).

    MAP fitting draws nothing at random (the data order is the dataset's), so it takes
    no `seed` (it used to accept one and drop it).

    Returns:
      A `FitResult` with the per-step trace.
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}.")
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}.")
    variables = list(distribution.trainable_variables)
    if not variables:
        raise ValueError(
            "the distribution has no trainable variables to fit (pass a distribution "
            "built on an LSTMNetwork rather than on explicit params)."
        )
    log_likelihood = log_likelihood_fn or distribution.log_prob
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        optimizer = optimizer or _default_optimizer(learning_rate)
    num_replicas = strategy.num_replicas_in_sync

    def replica_step(batch):
        with tf.GradientTape() as tape:
            log_lik = log_likelihood(batch)  # :: [B_replica]
            global_batch = tf.cast(tf.shape(log_lik)[0] * num_replicas, tf.float32)
            nll = -tf.reduce_sum(log_lik) / global_batch
        grads = tape.gradient(nll, variables)
        check_likelihood_reads(grads, variables)
        loss = nll
        if prior is not None:
            with tf.GradientTape() as prior_tape:
                prior_term = -prior.log_prob(variables) / (num_examples * num_replicas)
            prior_grads = prior_tape.gradient(prior_term, variables)
            grads = [g + p for g, p in zip(grads, prior_grads, strict=True)]
            loss = nll + prior_term
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        grads, norm = global_norm_clip(grads, clip_norm)
        optimizer.apply_gradients(
            zip(grads, variables, strict=True), experimental_aggregate_gradients=False
        )
        return loss, nll, norm

    def train_step(batch):
        loss, nll, norm = strategy.run(replica_step, args=(batch,))
        reduce = tf.distribute.ReduceOp.SUM
        return (
            strategy.reduce(reduce, loss, axis=None),
            strategy.reduce(reduce, nll, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None),
        )

    # reduce_retracing: batches of varying width (bucketed sequences) share one trace.
    compiled = tf.function(train_step, jit_compile=jit_compile or None, reduce_retracing=True)
    if isinstance(dataset, tf.data.Dataset) and num_replicas > 1:
        dataset = strategy.experimental_distribute_dataset(dataset)
    trace, evaluations, steps_run, stopped = run_steps(
        lambda batch, step: (*compiled(batch), {}),
        dataset,
        num_steps=num_steps,
        initial_step=initial_step,
        optimizer=optimizer,
        callbacks=callbacks,
        eval_fn=eval_fn,
        eval_every=eval_every,
        trace_keys=("step", "loss", "nll", "grad_norm", "learning_rate", "seconds"),
        divergence_hint="lower the learning rate or set clip_norm",
        diagnose_batch=token_range_diagnosis(distribution),
    )
    return FitResult(
        trace=trace,
        evaluations=evaluations,
        steps_run=steps_run,
        final_step=initial_step + steps_run,
        stopped_early=stopped,
    )
