"""`probseq train`: fit a character LM on a corpus into a resumable run directory."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import tensorflow as tf

from probseq.cli.config import ARCHITECTURE_FIELDS, ConfigError, TrainConfig
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
from probseq.distribute import (
    WorkerLostError,
    agree_max,
    agree_to_stop,
    is_chief,
    remove_worker_dir,
    worker_dir,
)
from probseq.evaluation.metrics import LN2
from probseq.inference import Callback, fit_map, fit_variational, warmup_cosine

__all__ = ["TrainingInterrupted", "WorkerLostError", "learning_rate_schedule", "train"]

# What a collective raises on the survivors when a peer worker died or hangs.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
)


def learning_rate_schedule(config: TrainConfig, time_progress: tf.Variable | None = None):
    """The run's learning rate: `config.learning_rate` for `lr_schedule="constant"`, else
    `probseq.inference.warmup_cosine` with the config's warm-up, `max_steps` and floor
    (and the time budget's progress, see there)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return warmup_cosine(
        config.learning_rate,
        warmup_steps=config.warmup_steps,
        max_steps=config.max_steps,
        min_fraction=config.min_learning_rate_fraction,
        time_progress=time_progress,
    )


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


@dataclasses.dataclass
class _Run:
    """What `train` sets up before fitting: the resolved config, data, model and the
    optimizer with its checkpoint."""

    rd: RunDir
    config: TrainConfig
    resuming: bool
    corpus: Any
    model: RunModel
    task: Any
    optimizer: Any
    checkpoint: tf.train.Checkpoint
    time_progress: tf.Variable
    strategy: Any = None
    start_step: int = 0

    @property
    def chief(self) -> bool:
        return is_chief(self.strategy)

    @property
    def multi_worker(self) -> bool:
        return self.strategy.extended._in_multi_worker_mode()  # as Keras


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    explicit: set[str] | None = None,
    progress: bool = True,
    out: TextIO | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the metrics dict also written to metrics.json.

    Args:
      config: the requested config (defaults + file + flags).
      run_dir: the run directory (created if missing; resumed if it holds a run).
      explicit: names of settings the user set explicitly (flags/file); on resume only
        these may differ from the stored config, and architecture changes are refused.
      progress: draw a progress bar on `out`.
      out: where messages and the progress bar go (default: sys.stderr).
      strategy: a `tf.distribute.Strategy` (`probseq.distribute.make_strategy`; default:
        one process). With several workers each takes its shard of every global batch;
        only the chief writes the run dir (checkpoints, TensorBoard, metrics, plot), the
        others save their checkpoints (a collective) to temporary directories.

    Raises:
      WorkerLostError: a multi-worker run lost a peer (the survivors stop within the
        collective timeout); restarting every worker resumes from the last checkpoint.
    """
    out = out or sys.stderr
    strategy = strategy or tf.distribute.get_strategy()
    run = _set_up(config, RunDir(run_dir), set(explicit or ()), out, strategy)
    checkpoint_dir = worker_dir(run.rd.checkpoint_dir, strategy)
    manager = tf.train.CheckpointManager(run.checkpoint, str(checkpoint_dir), max_to_keep=3)
    # From here on the run dir exists: a Ctrl-C anywhere below saves a checkpoint.
    callbacks: list = []
    started = time.perf_counter()
    evaluations: list = []
    interrupted = False
    try:
        progress_bar = _progress_bar(run, progress and run.chief, out)
        callbacks = _callbacks(run, manager, progress_bar)
        with INTERRUPTS.deferred():  # Ctrl-C takes effect after the current step
            evaluations = _fit(run, callbacks, out)
        INTERRUPTS.check()  # pressed during the last step
    except _PEER_ERRORS as error:
        if not run.multi_worker:
            raise
        remove_worker_dir(checkpoint_dir, strategy)
        latest = tf.train.latest_checkpoint(str(run.rd.checkpoint_dir))
        resume = f"step {Path(latest).name.split('-')[-1]}" if latest else "step 0"
        first = (error.message or type(error).__name__).strip().splitlines()[0][:300]
        raise WorkerLostError(
            f"lost contact with another worker ({type(error).__name__}: {first}). The last "
            f"checkpoint is {resume} in {run.rd.checkpoint_dir}; restart every worker with "
            "the same command to resume from it."
        ) from None
    except BaseException as error:
        # Ctrl-C may surface as another error (e.g. a SystemError from C code that was
        # running Python when the signal came): once it was pressed, it is the interrupt.
        if not (isinstance(error, KeyboardInterrupt) or INTERRUPTS.requested):
            raise
        interrupted = True
    finally:
        with INTERRUPTS.protect():
            for callback in callbacks:
                close = getattr(callback, "close", None)
                if close:
                    close()
    try:
        final_step = _save_final_checkpoint(run, manager, interrupted)
    finally:
        remove_worker_dir(checkpoint_dir, strategy)
    history = run.rd.load_metrics().get("history", []) if run.resuming else []
    history.extend(progress_bar.history)
    metrics = _final_metrics(run.rd, run.config, run.model, run.task, history, evaluations)
    metrics["step"] = final_step
    metrics["train_seconds_this_invocation"] = time.perf_counter() - started
    before = run.rd.load_metrics().get("train_seconds_total", 0.0) if run.resuming else 0.0
    metrics["train_seconds_total"] = before + metrics["train_seconds_this_invocation"]
    metrics["strategy"] = dict(
        name=type(strategy).__name__,
        replicas=strategy.num_replicas_in_sync,
        workers=_num_workers(strategy),
    )
    if run.chief:
        with INTERRUPTS.protect():
            run.rd.save_metrics(metrics)
            plot_learning_curve(history, metrics["evaluations"], run.rd.path / "learning_curve.png")
    return metrics


def _num_workers(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker")) or 1


def _set_up(config: TrainConfig, rd: RunDir, explicit: set[str], out: TextIO, strategy) -> _Run:
    """Resolve the config against the run dir, load the corpus, build the model, the task
    and the optimizer (variables under `strategy.scope()`), and restore the newest
    checkpoint (or, on the chief, write a new run's files)."""
    config, resuming = _resolve_run_config(rd, config, explicit, out)
    if config.precision == "auto":
        from probseq.machine import choose_precision

        chosen, reason = choose_precision("auto")
        _say(out, f"precision: {chosen} ({reason})")
        config = dataclasses.replace(config, precision=chosen)  # the run records the choice
    if config.sequences == "streams" and strategy.num_replicas_in_sync > 1:
        raise ConfigError(
            "sequences='streams' carries one state per stream from batch to batch and runs "
            f"on one replica; this strategy has {strategy.num_replicas_in_sync}. Use "
            "sequences='windows' for multi-worker training."
        )
    corpus = load_corpus(config.corpus, cache_dir=config.cache_dir)
    if resuming:
        stored_vocabulary = rd.load_vocabulary()
        if stored_vocabulary != corpus.vocabulary:
            raise RunDirError(
                f"vocabulary of run {rd.path} ({len(stored_vocabulary)} symbols) differs from "
                f"corpus {config.corpus!r} ({len(corpus.vocabulary)} symbols); refusing to "
                "resume. Use a new --run-dir."
            )
    import tf_keras

    with strategy.scope():
        model = RunModel(config, len(corpus.vocabulary))
        # Fraction of the time budget used so far (checkpointed, so a resumed run
        # continues the schedule where it stopped).
        time_progress = tf.Variable(0.0, trainable=False, name="time_progress")
        optimizer = tf_keras.optimizers.Adam(
            learning_rate=learning_rate_schedule(config, time_progress),
            weight_decay=config.weight_decay or None,
        )
        task = make_task(config, corpus, model.network)
        checkpoint = tf.train.Checkpoint(
            optimizer=optimizer,
            time_progress=time_progress,
            **model.checkpoint_items(),
            **task.checkpoint_items(),
        )
        # Build the optimizer's slots first: a restore can then be checked object by
        # object, and a checkpoint written before the first step is complete.
        optimizer.build(model.trainable_variables)
    run = _Run(
        rd, config, resuming, corpus, model, task, optimizer, checkpoint, time_progress, strategy
    )
    if resuming and rd.latest_checkpoint() is not None:
        latest = rd.restore(checkpoint)
        run.start_step = int(optimizer.iterations.numpy())
        _say(
            out,
            f"Resuming run {rd.path} from checkpoint {Path(latest).name} (step {run.start_step}).",
        )
        return run
    if resuming:
        _say(out, f"Run {rd.path} has no checkpoint yet; starting from step 0.")
    if run.chief:
        with INTERRUPTS.protect():
            rd.path.mkdir(parents=True, exist_ok=True)
            config.save(rd.config_path)
            corpus.vocabulary.save(rd.vocabulary_path)
    return run


def _progress_bar(run: _Run, enabled: bool, out: TextIO) -> ProgressCallback:
    chars = run.task.chars_per_example
    return ProgressCallback(
        total=run.config.max_steps,
        initial=run.start_step,
        chars_per_step=run.config.batch_size * chars,
        num_steps=chars,
        enabled=enabled,
        out=out,
    )


def _callbacks(run: _Run, manager, progress_bar: ProgressCallback) -> list:
    """The run's callbacks. With several workers the time budget's progress is the
    workers' maximum and a stop asked by any worker stops all at the same step (their
    collectives would otherwise wait for each other); TensorBoard is the chief's."""
    chars = run.task.chars_per_example
    strategy = run.strategy if run.multi_worker else None
    callbacks = [
        InterruptCheckCallback(),
        TimeBudgetCallback(
            run.config.budget_minutes,
            progress=run.time_progress,
            agree=(lambda value: agree_max(strategy, value)) if strategy else None,
        ),
        CheckpointCallback(manager, run.config.checkpoint_every),
    ]
    if run.chief:
        callbacks.append(
            TensorBoardCallback(run.rd.path / "tensorboard", run.config.batch_size * chars, chars)
        )
    callbacks.append(progress_bar)
    return [AgreedCallbacks(callbacks, strategy)] if strategy else callbacks


class AgreedCallbacks(Callback):
    """Callbacks of one worker of several: each step's stop decision is all-reduced (any
    worker's stop stops every worker after the same step). A Ctrl-C on this worker is
    such a stop: it is re-raised here after the agreement, while the others leave the
    loop normally, so all of them save the final checkpoint together."""

    def __init__(self, callbacks: list, strategy):
        self.callbacks, self.strategy = callbacks, strategy

    def on_step(self, info) -> bool:
        stop, interrupt = False, None
        for callback in self.callbacks:
            try:
                stop = bool(callback.on_step(info)) or stop
            except KeyboardInterrupt as error:
                stop, interrupt = True, error
        stop = agree_to_stop(self.strategy, stop)
        if interrupt is not None:
            raise interrupt
        return stop

    def on_evaluation(self, step: int, metrics: dict[str, Any]) -> bool:
        stop = False
        for callback in self.callbacks:
            stop = bool(callback.on_evaluation(step, metrics)) or stop
        return agree_to_stop(self.strategy, stop)

    def close(self) -> None:
        for callback in self.callbacks:
            close = getattr(callback, "close", None)
            if close:
                close()


def _eval_fn(run: _Run, out: TextIO):
    """Periodic validation: the task's metrics and a sample from the current weights."""
    config, model, task, vocabulary = run.config, run.model, run.task, run.corpus.vocabulary
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
        step = int(run.optimizer.iterations.numpy())
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

    return eval_fn


def _fit(run: _Run, callbacks: list, out: TextIO) -> list:
    """The MAP or variational fit for the rest of the run; returns its evaluations."""
    config, model, task, rd = run.config, run.model, run.task, run.rd
    if not run.resuming:
        _say(out, f"New run {rd.path}: {run.corpus!r}")
    remaining = max(config.max_steps - run.start_step, 0)
    if remaining == 0:
        _say(out, f"Run {rd.path} already reached max_steps={config.max_steps}; nothing to do.")
    common = dict(
        num_examples=task.num_examples,
        num_steps=remaining,
        prior=model.prior,
        optimizer=run.optimizer,
        clip_norm=config.clip_norm,
        callbacks=callbacks,
        eval_fn=_eval_fn(run, out),
        eval_every=config.eval_every,
        initial_step=run.start_step,
        jit_compile=config.jit_compile,
        seed=config.seed,
        strategy=run.strategy,
    )
    distribution = task.distribution()
    dataset = task.dataset(run.start_step)
    if model.variational:
        result = fit_variational(
            distribution,
            dataset,
            surrogate=model.surrogate,
            log_likelihood_fn=task.draws_log_likelihood_fn,
            num_draws_per_step=config.num_draws_per_step,
            kl_annealing_steps=config.kl_annealing_steps,
            **common,
        )
    else:
        result = fit_map(distribution, dataset, log_likelihood_fn=task.log_likelihood_fn, **common)
    return result.evaluations


def _save_final_checkpoint(run: _Run, manager, interrupted: bool) -> int:
    """Save the last step (if new); after Ctrl-C raise `TrainingInterrupted` saying so."""
    with INTERRUPTS.protect():
        final_step = int(run.optimizer.iterations.numpy())
        saved = manager.latest_checkpoint
        if final_step > run.start_step or saved is None:
            saved = manager.save(checkpoint_number=final_step)
    if interrupted:
        raise TrainingInterrupted(
            f"Interrupted: checkpoint saved at step {final_step} in {Path(saved).parent}; "
            f"resume with: probseq train --run-dir {run.rd.path}"
        )
    return final_step


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
        return line_metrics(
            model.network,
            rows,
            task.eos,
            task.num_steps,
            surrogate=model.surrogate,
            num_draws=model.config.eval_draws,
            seed=model.config.seed,
        )
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
