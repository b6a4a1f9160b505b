"""The one fitting loop behind `fit_map` and `fit_variational`.

`fit_loop` takes a loss and the variables it trains; everything else is shared: the
strategy scope, the replica step (two gradient tapes, all-reduce, clipping, apply), the
reductions across replicas, compilation, per-step seeds, the Python loop over batches
(trace, finiteness check, callbacks, periodic evaluation, early stop) and the result.
The public functions only say what their loss is.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from probseq.inference.callbacks import Callback, StepInfo
from probseq.seeds import stateless_seed


@dataclasses.dataclass
class FitResult:
    """What a fitting run returns.

    Attributes:
      trace: per-step arrays: `step`, `loss` (objective per example, nats),
        `nll` (mean negative log-likelihood per example, nats), `grad_norm`
        (global norm before clipping), `learning_rate`, `seconds`, and the fit's own
        entries (e.g. `kl`, `elbo`, `kl_weight` of a variational fit).
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


class LossTerms(NamedTuple):
    """What a loss function returns for one replica's batch (scalars, per example).

    Attributes:
      data: the data term (e.g. the mean NLL); its gradient must reach every variable.
      penalty: the weight term (prior or weighted KL per example), or None.
      metrics: further scalars to trace (e.g. `kl`, `elbo`), reduced like the loss.
    """

    data: tf.Tensor
    penalty: tf.Tensor | None = None
    metrics: Mapping[str, tf.Tensor] = {}


def current_lr(optimizer) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at `iterations`)."""
    lr = getattr(optimizer, "learning_rate", None)
    if lr is None:
        return float("nan")
    if callable(lr) and not isinstance(lr, tf.Variable):
        return float(lr(optimizer.iterations))
    return float(tf.convert_to_tensor(lr))


def global_norm_clip(grads: list, clip_norm: float | None) -> tuple[list, tf.Tensor]:
    """Clip gradients by global norm; returns (clipped, norm before clipping)."""
    norm = tf.linalg.global_norm(grads)
    if clip_norm is None:
        return grads, norm
    clipped, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
    return clipped, norm


def check_likelihood_reads(grads: list, variables: list) -> None:
    """Refuse to fit when the log-likelihood reads none of the variables (all gradients
    None), and warn about the ones it does not read.

    Runs while the train step is traced (gradients are None statically), so it costs
    nothing per step. None of them read: the model scores with other tensors (e.g. a
    distribution built with `params=`), so fitting would change nothing it computes.
    Some unread can be legitimate (e.g. a decoder's token table when every target has
    one token): those get only the prior's gradient, and a warning names them.
    """
    unread = [v.name for v, g in zip(variables, grads, strict=True) if g is None]
    if not unread:
        return
    listed = ", ".join(unread[:5]) + (f", ... ({len(unread)} in all)" if len(unread) > 5 else "")
    if len(unread) < len(variables):
        warnings.warn(
            f"the log-likelihood does not read {len(unread)} of the {len(variables)} "
            f"trainable variables ({listed}); they get only the prior's gradient.",
            stacklevel=2,
        )
        return
    raise ValueError(
        f"the log-likelihood does not depend on {len(unread)} of the {len(variables)} "
        f"trainable variables ({listed}); fitting them would change nothing the model "
        "computes (only their weight decay). A distribution built with params= (frozen "
        "tensors or posterior draws) scores with those tensors, not with its network's "
        "variables: fit a distribution built on the network itself, or pass "
        "log_likelihood_fn= that uses the variables."
    )


def takes_seed(fn: Callable) -> bool:
    """Whether `fn` accepts a `seed` keyword (then it gets each step's seed)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def check_fit_arguments(num_steps: int, num_examples: int) -> None:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}.")
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
        raise ValueError(f"num_examples must be an int >= 1, got {num_examples!r}.")


def default_optimizer(learning_rate):
    """tf_keras Adam (Keras 2, which TFP needs) with `learning_rate` (float or schedule)."""
    import tf_keras

    return tf_keras.optimizers.Adam(learning_rate=learning_rate)


def fit_loop(
    loss_fn: Callable[[Any, tf.Tensor, Mapping[str, tf.Tensor]], LossTerms],
    variables: Sequence[tf.Variable],
    dataset: Iterable,
    *,
    num_steps: int,
    optimizer,
    strategy: tf.distribute.Strategy,
    seed,
    clip_norm: float | None,
    jit_compile: bool,
    callbacks: Sequence[Callback],
    eval_fn: Callable[[], dict[str, Any]] | None,
    eval_every: int | None,
    initial_step: int,
    step_scalars: Callable[[int], Mapping[str, float]] | None = None,
    divergence_hint: str = "lower the learning rate or set clip_norm",
    diagnose_batch: Callable[[Any], str | None] | None = None,
) -> FitResult:
    """Minimize `loss_fn` over `variables`, one optimizer step per batch.

    Args:
      loss_fn: `(batch, seed, scalars) -> LossTerms` for one replica's batch, as means
        per example; `seed` is the step's stateless seed (`fold_in(seed, step)`, so a
        resumed run sees the same randomness) and `scalars` the step's values of
        `step_scalars` as float32 tensors.
      variables: what the optimizer trains (created under `strategy.scope()`).
      dataset: iterable of batches; a `tf.data.Dataset` is distributed over replicas.
      num_steps: maximum steps in this call; `initial_step`: global step before it.
      optimizer: anything with `apply_gradients` and `iterations`.
      strategy: the `tf.distribute.Strategy` (the default one for a single device).
      seed: base stateless seed of the per-step seeds.
      clip_norm: global-norm clipping of the all-reduced gradients (None: off).
      jit_compile: compile the step with XLA.
      callbacks, eval_fn, eval_every: as `fit_map`.
      step_scalars: host-side `step -> {name: float}` (e.g. the KL weight), traced too.
      divergence_hint: advice in the error on a non-finite loss.
      diagnose_batch: host-side `batch -> message or None`, run only after a non-finite
        loss (it names bad data, e.g. token ids XLA turned into NaN).

    Per replica, the data term's gradient is taken on its own tape (so a variable it
    never reads is a `None` gradient at trace time and is refused), the penalty's on a
    second; both are divided by the number of replicas and the gradients all-reduced
    with a sum, so the update is that of the global batch.
    """
    variables = list(variables)
    num_replicas = strategy.num_replicas_in_sync
    base_seed = seed if tf.is_tensor(seed) else stateless_seed(seed)
    scalar_names = tuple(step_scalars(initial_step + 1)) if step_scalars else ()

    def replica_step(batch, step_seed, scalars):
        with tf.GradientTape() as data_tape, tf.GradientTape() as penalty_tape:
            terms = loss_fn(batch, step_seed, scalars)
            data = terms.data / num_replicas
            penalty = None if terms.penalty is None else terms.penalty / num_replicas
        grads = data_tape.gradient(data, variables)
        check_likelihood_reads(grads, variables)
        loss = data
        penalty_grads = [None] * len(variables)
        if penalty is not None:
            penalty_grads = penalty_tape.gradient(penalty, variables)
            loss = data + penalty
        grads = [_add(g, p, v) for g, p, v in zip(grads, penalty_grads, variables, strict=True)]
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
        grads, norm = global_norm_clip(grads, clip_norm)
        optimizer.apply_gradients(
            zip(grads, variables, strict=True), experimental_aggregate_gradients=False
        )
        metrics = {key: value / num_replicas for key, value in terms.metrics.items()}
        return loss, data, norm, metrics

    def train_step(batch, step_seed, scalars):
        loss, nll, norm, metrics = strategy.run(replica_step, args=(batch, step_seed, scalars))
        total = tf.distribute.ReduceOp.SUM

        def reduce(value):
            return strategy.reduce(total, value, axis=None)

        mean_norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
        return reduce(loss), reduce(nll), mean_norm, {k: reduce(v) for k, v in metrics.items()}

    # reduce_retracing: batches of varying width (bucketed sequences) share one trace.
    compiled = tf.function(train_step, jit_compile=jit_compile or None, reduce_retracing=True)
    if isinstance(dataset, tf.data.Dataset) and num_replicas > 1:
        # Shard by data after TensorFlow's rebatching: worker w takes sub-batch w of every
        # global batch, so step t sees the single-process batch t (file sharding would
        # give the workers different streams).
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    def step_fn(batch, step):
        scalars = dict(step_scalars(step)) if step_scalars else {}
        loss, nll, norm, metrics = compiled(
            batch,
            tf.random.experimental.stateless_fold_in(base_seed, step),
            {key: tf.constant(value, tf.float32) for key, value in scalars.items()},
        )
        extra = {key: float(value) for key, value in metrics.items()}
        return loss, nll, norm, {**extra, **scalars}

    return _run_steps(
        step_fn,
        dataset,
        num_steps=num_steps,
        initial_step=initial_step,
        optimizer=optimizer,
        callbacks=callbacks,
        eval_fn=eval_fn,
        eval_every=eval_every,
        extra_keys=scalar_names,
        divergence_hint=divergence_hint,
        diagnose_batch=diagnose_batch,
    )


def _add(grad, penalty_grad, variable):
    """The sum of two gradients, either of which may be None (zeros if both are)."""
    if grad is None and penalty_grad is None:
        return tf.zeros_like(variable)
    if grad is None or penalty_grad is None:
        return penalty_grad if grad is None else grad
    return grad + penalty_grad


_TRACE_KEYS = ("step", "loss", "nll", "grad_norm", "learning_rate", "seconds")


def _run_steps(
    step_fn: Callable[[Any, int], tuple],
    dataset: Iterable,
    *,
    num_steps: int,
    initial_step: int,
    optimizer,
    callbacks: Sequence[Callback],
    eval_fn: Callable[[], dict[str, Any]] | None,
    eval_every: int | None,
    extra_keys: Sequence[str],
    divergence_hint: str,
    diagnose_batch: Callable[[Any], str | None] | None,
) -> FitResult:
    """The Python loop: one `step_fn(batch, step) -> (loss, nll, norm, extra)` per batch.

    After each step: a `StepInfo` into the trace, an error on a non-finite loss, the
    callbacks' `on_step`, `eval_fn` every `eval_every` global steps and after the last
    step (then `on_evaluation`); a hook returning True stops the loop.
    """
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
        loss, nll, norm, extra = step_fn(batch, step)
        steps_run = local + 1
        info = StepInfo(
            step=step,
            loss=float(loss),
            nll=float(nll),
            grad_norm=float(norm),
            learning_rate=current_lr(optimizer),
            seconds=time.perf_counter() - start,
            extra=extra,
        )
        for key in _TRACE_KEYS:
            trace[key].append(getattr(info, key))
        for key, value in extra.items():
            trace.setdefault(key, []).append(value)
        if not math.isfinite(info.loss):
            bad_data = diagnose_batch(batch) if diagnose_batch is not None else None
            if bad_data:
                raise ValueError(f"loss became {info.loss} at step {step}: {bad_data}.")
            raise FloatingPointError(
                f"loss became {info.loss} at step {step}; {divergence_hint}, or check the data "
                "(values the model cannot score give NaN under jit_compile=True)."
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
    for key in extra_keys:
        trace.setdefault(key, [])
    return FitResult(
        trace={key: np.asarray(value) for key, value in trace.items()},
        evaluations=evaluations,
        steps_run=steps_run,
        final_step=initial_step + steps_run,
        stopped_early=stopped,
    )
