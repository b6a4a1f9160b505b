"""Learning-rate schedules for the fitting routines (and the `probseq train` command)."""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["warmup_cosine"]


def warmup_cosine(
    peak: float,
    *,
    warmup_steps: int,
    max_steps: int,
    min_fraction: float = 0.0,
    time_progress: tf.Variable | None = None,
):
    """Linear warm-up to `peak` over `warmup_steps`, then cosine decay to
    `min_fraction * peak` at `max_steps` (a tf_keras `LearningRateSchedule`).

    The decay's progress is `max(step progress to max_steps, time_progress)`, where the
    optional `time_progress` variable holds the fraction of a time budget used (the CLI's
    `TimeBudgetCallback` keeps it up to date and checkpoints it): the schedule then
    reaches its floor at `max_steps` or at the end of the budget, whichever comes first,
    so a budget-limited run on a slow machine still anneals instead of stopping at a
    high learning rate.
    """
    import tf_keras

    if not peak > 0:
        raise ValueError(f"peak learning rate must be > 0, got {peak}.")
    if not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}.")

    class WarmupCosine(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = tf.maximum(float(warmup_steps), 1.0)
            total = float(max(max_steps - warmup_steps, 1))
            progress = tf.clip_by_value((step - warmup_steps) / total, 0.0, 1.0)
            if time_progress is not None:
                progress = tf.maximum(progress, tf.cast(time_progress, tf.float32))
            cosine = min_fraction + (1 - min_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
            return peak * tf.where(step < warmup_steps, (step + 1) / warm, cosine)

        def get_config(self):
            return {
                "peak": peak,
                "warmup_steps": warmup_steps,
                "max_steps": max_steps,
                "min_fraction": min_fraction,
            }

    return WarmupCosine()
