"""`probseq train`: fit a character LM on a corpus into a resumable run directory."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import tensorflow as tf

from probseq.cli.config import ARCHITECTURE_FIELDS, TrainConfig
from probseq.cli.interrupts import INTERRUPTS, TrainingInterrupted
from probseq.cli.models import RunModel
from probseq.cli.reporting import (
    CheckpointCallback,
    ProgressCallback,
    TensorBoardCallback,
    TimeBudgetCallback,
    plot_learning_curve,
)
from probseq.cli.rundir import RunDir, RunDirError, corpus_setting
from probseq.cli.tasks import decode_until, line_metrics, make_task
from probseq.data import load_corpus
from probseq.inference import Callback, fit_map, fit_variational

__all__ = ["TrainingInterrupted", "learning_rate_schedule", "train"]

LN2 = math.log(2.0)


def learning_rate_schedule(config: TrainConfig, time_progress: tf.Variable | None = None):
    """Linear warm-up, then cosine decay to `min_learning_rate_fraction` of the peak.

    The decay's progress is `max(step progress to max_steps, time_progress)`, where the
    optional `time_progress` variable holds the fraction of the time budget used (kept up
    to date by `TimeBudgetCallback`): the schedule reaches its floor at `max_steps` or at
    the end of `budget_minutes`, whichever comes first, so a budget-limited run on a slow
    machine still anneals instead of stopping at a high learning rate.
    """
    import tf_keras

    peak = config.learning_rate
    if config.lr_schedule == "constant":
        return peak

    class WarmupCosine(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = tf.maximum(float(config.warmup_steps), 1.0)
            total = float(max(config.max_steps - config.warmup_steps, 1))
            progress = tf.clip_by_value((step - config.warmup_steps) / total, 0.0, 1.0)
            if time_progress is not None:
                progress = tf.maximum(progress, tf.cast(time_progress, tf.float32))
            floor = config.min_learning_rate_fraction
            cosine = floor + (1 - floor) * 0.5 * (1 + tf.cos(math.pi * progress))
            return peak * tf.where(step < config.warmup_steps, (step + 1) / warm, cosine)

        def get_config(self):
            return {}

    return WarmupCosine()


def _say(out: TextIO, message: str) -> None:
    print(message, file=out, flush=True)


def _resolve_run_config(
    run_dir: RunDir, config: TrainConfig, explicit: set[str], out: TextIO
) -> tuple[TrainConfig, bool]:
    """For an existing run: the stored config with only non-architecture flags applied."""
    if not run_dir.exists():
        run_dir.check_usable_for_new_run()
        return dataclasses.replace(config, corpus=corpus_setting(config.corpus)), False
    stored = run_dir.load_config()
    run_dir.check_resume(stored, config, explicit)
    changes = {
        k: getattr(config, k)
        for k in sorted(explicit)
        if k not in ARCHITECTURE_FIELDS and getattr(config, k) != getattr(stored, k)
    }
    resolved = dataclasses.replace(stored, **changes)
    if changes:
        _say(out, f"Updated settings for this resumed run: {changes}")
    return resolved, True


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    explicit: set[str] | None = None,
    progress: bool = True,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the metrics dict also written to metrics.json.

    Args:
      config: the requested config (defaults + file + flags).
      run_dir: the run directory (created if missing; resumed if it holds a run).
      explicit: names of settings the user set explicitly (flags/file); on resume only
        these may differ from the stored config, and architecture changes are refused.
      progress: draw a progress bar on `out`.
      out: where messages and the progress bar go (default: sys.stderr).
    """
    out = out or sys.stderr
    explicit = set(explicit or ())
    rd = RunDir(run_dir)
    config, resuming = _resolve_run_config(rd, config, explicit, out)
    corpus = load_corpus(config.corpus, cache_dir=config.cache_dir)
    vocabulary = corpus.vocabulary
    if resuming:
        stored_vocabulary = rd.load_vocabulary()
        if stored_vocabulary != vocabulary:
            raise RunDirError(
                f"vocabulary of run {rd.path} ({len(stored_vocabulary)} symbols) differs from "
                f"corpus {config.corpus!r} ({len(vocabulary)} symbols); refusing to resume. "
                "Use a new --run-dir."
            )
    model = RunModel(config, len(vocabulary))
    network = model.network
    task = make_task(config, corpus, network)
    import tf_keras

    # Fraction of the time budget used so far (checkpointed, so a resumed run continues
    # the schedule where it stopped).
    time_progress = tf.Variable(0.0, trainable=False, name="time_progress")
    optimizer = tf_keras.optimizers.Adam(
        learning_rate=learning_rate_schedule(config, time_progress)
    )
    checkpoint = tf.train.Checkpoint(
        optimizer=optimizer, time_progress=time_progress, **model.checkpoint_items()
    )
    # Build the optimizer's slots first: a restore can then be checked object by object,
    # and a checkpoint written before the first step (Ctrl-C during tracing) is complete.
    optimizer.build(model.trainable_variables)
    if resuming and rd.latest_checkpoint() is not None:
        latest = rd.restore(checkpoint)
        start_step = int(optimizer.iterations.numpy())
        _say(
            out, f"Resuming run {rd.path} from checkpoint {Path(latest).name} (step {start_step})."
        )
    else:
        start_step = 0
        if resuming:
            _say(out, f"Run {rd.path} has no checkpoint yet; starting from step 0.")
        with INTERRUPTS.protect():
            rd.path.mkdir(parents=True, exist_ok=True)
            config.save(rd.config_path)
            vocabulary.save(rd.vocabulary_path)
    manager = tf.train.CheckpointManager(checkpoint, str(rd.checkpoint_dir), max_to_keep=3)
    # From here on the run dir exists: a Ctrl-C anywhere below saves a checkpoint.
    callbacks: list = []
    started = time.perf_counter()
    interrupted = False
    try:
        if not resuming:
            _say(out, f"New run {rd.path}: {corpus!r}")
        remaining = max(config.max_steps - start_step, 0)
        if remaining == 0:
            _say(out, f"Run {rd.path} already reached max_steps={config.max_steps}; nothing to do.")

        distribution = task.distribution()
        dataset = task.dataset(start_step)
        prime = config.prime if all(ch in vocabulary for ch in config.prime) else ""
        if prime != config.prime:
            _say(
                out,
                f"Note: prime {config.prime!r} has characters outside the vocabulary; "
                "samples during training are unprimed.",
            )
        sampler = model.sampler(
            config.sample_length,
            prefix=vocabulary.encode(prime).astype(np.int32) if prime else None,
            eos=task.eos,
        )

        def eval_fn() -> dict[str, Any]:
            result = validate(model, task, config.eval_chars)
            step = int(optimizer.iterations.numpy())
            per = "line" if task.kind == "lines" else "window"
            metrics = {
                "valid_bits_per_char": result["bits_per_char"],
                f"valid_nll_nats_per_{per}": result[f"nll_nats_per_{per}"],
            }
            if model.variational:
                metrics["valid_plug_in_bits_per_char"] = result["plug_in_bits_per_char"]
                metrics["valid_elbo_bound_bits_per_char"] = result["elbo_bound_bits_per_char"]
            metrics["sample"] = prime + decode_until(
                vocabulary, sampler([config.seed, step])[0], task.eos
            )
            return metrics

        history = rd.load_metrics().get("history", []) if resuming else []
        chars_per_step = config.batch_size * task.chars_per_example
        progress_bar = ProgressCallback(
            total=config.max_steps,
            initial=start_step,
            chars_per_step=chars_per_step,
            num_steps=task.chars_per_example,
            enabled=progress,
            out=out,
        )
        callbacks = [
            InterruptCheckCallback(),
            TimeBudgetCallback(config.budget_minutes, progress=time_progress),
            CheckpointCallback(manager, config.checkpoint_every),
            TensorBoardCallback(rd.path / "tensorboard", chars_per_step, task.chars_per_example),
            progress_bar,
        ]
        common = dict(
            num_examples=task.num_examples,
            num_steps=remaining,
            prior=model.prior,
            optimizer=optimizer,
            clip_norm=config.clip_norm,
            callbacks=callbacks,
            eval_fn=eval_fn,
            eval_every=config.eval_every,
            initial_step=start_step,
            jit_compile=config.jit_compile,
        )
        if model.variational:
            result = fit_variational(
                distribution,
                dataset,
                surrogate=model.surrogate,
                num_draws_per_step=config.num_draws_per_step,
                kl_annealing_steps=config.kl_annealing_steps,
                seed=config.seed,
                **common,
            )
        else:
            result = fit_map(
                distribution, dataset, log_likelihood_fn=task.log_likelihood_fn, **common
            )
        evaluations = result.evaluations
    except KeyboardInterrupt:
        interrupted = True
        evaluations = []
    finally:
        with INTERRUPTS.protect():
            for callback in callbacks:
                close = getattr(callback, "close", None)
                if close:
                    close()
    with INTERRUPTS.protect():
        final_step = int(optimizer.iterations.numpy())
        saved = manager.latest_checkpoint
        if final_step > start_step or saved is None:
            saved = manager.save(checkpoint_number=final_step)
    if interrupted:
        raise TrainingInterrupted(
            f"Interrupted: checkpoint saved at step {final_step} in {Path(saved).parent}; "
            f"resume with: probseq train --run-dir {rd.path}"
        )
    history.extend(progress_bar.history)
    metrics = _final_metrics(rd, config, model, task, history, evaluations)
    metrics["step"] = final_step
    metrics["train_seconds_this_invocation"] = time.perf_counter() - started
    with INTERRUPTS.protect():
        rd.save_metrics(metrics)
        plot_learning_curve(history, metrics["evaluations"], rd.path / "learning_curve.png")
    return metrics


class InterruptCheckCallback(Callback):
    """Stops training after the current step once Ctrl-C was pressed, even if the
    `KeyboardInterrupt` it raised was swallowed somewhere (e.g. inside a `__del__`)."""

    def on_step(self, info) -> None:
        INTERRUPTS.check()


def validate(model: RunModel, task, max_chars: int | None) -> dict[str, Any]:
    """Validation metrics of the run's task on its first `max_chars` characters (None:
    the whole validation split)."""
    if task.kind == "lines":
        rows = task.validation_rows(max_chars)
        return line_metrics(model.network, rows, task.eos, task.num_steps)
    return model.evaluate(
        task.validation_ids(max_chars),
        num_steps=model.config.num_steps,
        seed=model.config.seed,
        num_train_chars=task.num_train_chars,
    )


def _final_metrics(rd, config, model, task, history, evaluations):
    previous = rd.load_metrics().get("evaluations", [])
    valid = validate(model, task, None)
    recent = [h["nll_nats_per_char"] for h in history[-50:]]
    return {
        "config": config.to_dict(),
        "valid": valid,
        "valid_bits_per_char": valid["bits_per_char"],
        "evaluations": previous + list(evaluations),
        "history": history,
        "train_nll_bits_per_char": float(np.mean(recent) / LN2) if recent else None,
    }
