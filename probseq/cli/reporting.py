"""Callbacks that draw progress, write TensorBoard events and checkpoints, and plots."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import tensorflow as tf

from probseq.cli.interrupts import INTERRUPTS
from probseq.evaluation.metrics import LN2
from probseq.files import atomic_path
from probseq.inference import Callback, StepInfo

__all__ = [
    "CheckpointCallback",
    "ProgressCallback",
    "TensorBoardCallback",
    "TimeBudgetCallback",
    "plot_learning_curve",
]


class TimeBudgetCallback(Callback):
    """Stops the fit once `budget_minutes` of wall time have passed (None: never).

    With a `progress` variable, also records the fraction of the budget used: the
    remaining `1 - p0` of the schedule (p0 = its value at the start, e.g. restored from a
    checkpoint) is spread over this invocation's budget; the value never decreases.
    With `agree` (`fraction -> fraction`, e.g. the maximum over the workers of a
    multi-worker run), every process uses the agreed fraction, so their learning rates
    and their last step are the same.
    """

    def __init__(
        self,
        budget_minutes: float | None,
        progress: tf.Variable | None = None,
        agree: Callable[[float], float] | None = None,
    ):
        self.seconds = None if budget_minutes is None else 60.0 * budget_minutes
        self.start = time.monotonic()
        self.progress = progress
        self.agree = agree
        self.initial = 0.0 if progress is None else float(progress.numpy())
        self.expired = False

    def on_step(self, info: StepInfo) -> bool:
        if self.seconds is None:
            return False
        fraction = min((time.monotonic() - self.start) / self.seconds, 1.0)
        if self.agree is not None:
            fraction = self.agree(fraction)
        if self.progress is not None:
            value = self.initial + (1.0 - self.initial) * fraction
            self.progress.assign(max(value, float(self.progress.numpy())))
        self.expired = fraction >= 1.0
        return self.expired


class CheckpointCallback(Callback):
    """Saves a checkpoint every `every` global steps (numbered by the step)."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        self.manager = manager
        self.every = every

    def on_step(self, info: StepInfo) -> None:
        if info.step % self.every == 0:
            with INTERRUPTS.protect():
                self.manager.save(checkpoint_number=info.step)


class TensorBoardCallback(Callback):
    """Loss (bits/char), gradient norm, learning rate, validation bits/char, samples."""

    def __init__(self, logdir: str | os.PathLike, chars_per_step: int, num_steps: int):
        self.writer = tf.summary.create_file_writer(str(logdir))
        self.num_steps = num_steps
        self.chars_per_step = chars_per_step

    def on_step(self, info: StepInfo) -> None:
        if info.step % 10:
            return
        with self.writer.as_default(step=info.step):
            tf.summary.scalar("train/loss_bits_per_char", info.loss / self.num_steps / LN2)
            tf.summary.scalar("train/nll_bits_per_char", info.nll / self.num_steps / LN2)
            tf.summary.scalar("train/grad_norm", info.grad_norm)
            tf.summary.scalar("train/learning_rate", info.learning_rate)
            for key, value in info.extra.items():
                tf.summary.scalar(f"train/{key}", value)

    def on_evaluation(self, step: int, metrics: dict[str, Any]) -> None:
        with self.writer.as_default(step=step):
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and key != "step":
                    tf.summary.scalar(f"valid/{key}", value)
                elif isinstance(value, str):
                    tf.summary.text(key, value)
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class ProgressCallback(Callback):
    """A tqdm bar with ETA, characters/s, running loss and the last validation bits/char.

    Also records the per-step history (bits/char) used for metrics.json and the plot.
    """

    def __init__(
        self,
        *,
        total: int,
        initial: int,
        chars_per_step: int,
        num_steps: int,
        enabled: bool = True,
        out: TextIO | None = None,
    ):
        from tqdm.auto import tqdm

        out = out or sys.stderr
        self.out = out
        self.chars_per_step = chars_per_step
        self.num_steps = num_steps
        self.history: list[dict[str, float]] = []
        self.valid_bpc = float("nan")
        self._last = None
        self._running = None
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=not enabled,
            file=out,
            unit="step",
            dynamic_ncols=True,
            mininterval=0.5 if getattr(out, "isatty", lambda: False)() else 10.0,
        )

    def on_step(self, info: StepInfo) -> None:
        nats_per_char = info.loss / self.num_steps
        self._running = (
            nats_per_char if self._running is None else 0.95 * self._running + 0.05 * nats_per_char
        )
        now = time.perf_counter()
        rate = float("nan") if self._last is None else self.chars_per_step / (now - self._last)
        self._last = now
        record = {
            "step": info.step,
            "loss_nats_per_char": nats_per_char,
            "nll_nats_per_char": info.nll / self.num_steps,
            "grad_norm": info.grad_norm,
            "learning_rate": info.learning_rate,
        }
        record.update({k: float(v) for k, v in info.extra.items()})
        self.history.append(record)
        self.bar.set_postfix(
            loss_bpc=f"{self._running / LN2:.3f}",
            val_bpc=f"{self.valid_bpc:.3f}",
            chars_s=f"{rate:,.0f}",
            refresh=False,
        )
        self.bar.update(1)

    def on_evaluation(self, step: int, metrics: dict[str, Any]) -> None:
        self.valid_bpc = metrics.get("valid_bits_per_char", self.valid_bpc)
        self.bar.write(
            f"step {step}: validation {self.valid_bpc:.4f} bits/char | "
            f"sample: {metrics.get('sample', '')[:70]!r}",
            file=self.out,
        )

    def close(self) -> None:
        self.bar.close()


def plot_learning_curve(
    history: list[dict[str, float]], evaluations: list[dict[str, Any]], path: str | os.PathLike
) -> None:
    """Training loss and validation bits/char against step, as a PNG (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if history:
        steps = [h["step"] for h in history]
        bpc = [h["nll_nats_per_char"] / LN2 for h in history]
        axes.plot(steps, bpc, lw=0.8, alpha=0.6, label="train NLL (bits/char)")
    points = [
        (e["step"], e["valid_bits_per_char"]) for e in evaluations if "valid_bits_per_char" in e
    ]
    if points:
        axes.plot(*zip(*points, strict=True), "o-", label="validation (bits/char)")
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
