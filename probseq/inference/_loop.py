"""The Python optimization loop shared by `fit_map` and `fit_variational`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.inference.callbacks import Callback, StepInfo


def current_lr(optimizer) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at `iterations`)."""
    lr = getattr(optimizer, "learning_rate", None)
    if lr is None:
        return float("nan")
    if callable(lr) and not isinstance(lr, tf.Variable):
        return float(lr(optimizer.iterations))
    return float(tf.convert_to_tensor(lr))


def run_steps(
    step_fn: Callable[[Any, int], tuple],
    dataset: Iterable,
    *,
    num_steps: int,
    initial_step: int,
    optimizer,
    callbacks: Sequence[Callback],
    eval_fn: Callable[[], dict[str, Any]] | None,
    eval_every: int | None,
    trace_keys: Sequence[str],
    divergence_hint: str,
    diagnose_batch: Callable[[Any], str | None] | None = None,
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], int, bool]:
    """Take up to `num_steps` optimizer steps, one per batch of `dataset`.

    After each step: build a `StepInfo`, append it to the trace, raise on a non-finite
    loss, call the callbacks' `on_step`, run `eval_fn` every `eval_every` global steps and
    after the last step (then `on_evaluation`), and stop when a hook returns True.

    Args:
      step_fn: `(batch, step) -> (loss, nll, grad_norm, extra)`, one update at global
        step `step` (1-based); `extra` is the `StepInfo.extra` dict.
      dataset: iterable of batches; the loop ends early when it is exhausted.
      num_steps: maximum number of steps in this call.
      initial_step: global step before the first update.
      optimizer: read for the learning rate of the trace.
      callbacks: `Callback`s.
      eval_fn: optional no-argument evaluation returning a dict of metrics.
      eval_every: evaluation period in global steps (None: only at the end).
      trace_keys: trace entries, read from `extra` or else from the `StepInfo`.
      divergence_hint: advice appended to the error on a non-finite loss.
      diagnose_batch: optional `batch -> message or None`, run on the host only after a
        non-finite loss (so it costs nothing otherwise): a message names bad data (e.g.
        token ids out of range, which XLA turns into NaN instead of an error).

    Returns:
      `(trace, evaluations, steps_run, stopped_early)`, the trace as numpy arrays.
    """
    trace: dict[str, list] = {key: [] for key in trace_keys}
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
        for key in trace_keys:
            trace[key].append(extra[key] if key in extra else getattr(info, key))
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
    return {key: np.asarray(value) for key, value in trace.items()}, evaluations, steps_run, stopped
