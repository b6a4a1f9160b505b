"""Run directories: config, vocabulary, checkpoints and metrics of one training run.

Layout::

    RUN_DIR/
      config.json         resolved TrainConfig
      vocabulary.json     the run's Vocabulary
      checkpoints/        tf.train.CheckpointManager files (network, optimizer, step)
      metrics.json        final and periodic metrics (written atomically)
      tensorboard/        TensorBoard event files
      learning_curve.png  training / validation curves
      samples.txt         samples drawn during training
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import tensorflow as tf

from probseq.cli.config import (
    ARCHITECTURE_FIELDS,
    ConfigError,
    TrainConfig,
    load_config_file,
    resolve_config,
)
from probseq.data import Vocabulary
from probseq.data.corpora import KNOWN_CORPORA
from probseq.files import atomic_write_text

__all__ = ["RunDir", "RunDirError", "corpus_setting", "same_corpus"]


def corpus_setting(corpus: str) -> str:
    """The `corpus` value stored with a run: a local file or directory as an absolute
    path (so the run can be evaluated and resumed from any working directory), a corpus
    name as it is."""
    if corpus in KNOWN_CORPORA:
        return corpus
    path = Path(corpus).expanduser()
    return str(path.resolve()) if path.exists() else corpus


def same_corpus(a: str, b: str) -> bool:
    """Whether two `corpus` settings name the same corpus (`corpus.txt` and its absolute
    path are the same)."""
    return a == b or corpus_setting(a) == corpus_setting(b)


class RunDirError(RuntimeError):
    """A run directory is missing, foreign, corrupt or mismatched."""


class RunDir:
    """Access to the files of one run directory (no training logic)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def vocabulary_path(self) -> Path:
        return self.path / "vocabulary.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def exists(self) -> bool:
        """True when this directory holds a run (a config.json)."""
        return self.config_path.exists()

    def check_usable_for_new_run(self) -> None:
        """Refuse a non-empty directory that is not a probseq run (never overwrite)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--run-dir {self.path} exists and is not a directory.")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.exists():
            raise RunDirError(
                f"--run-dir {self.path} is not empty and holds no probseq run (no config.json); "
                "choose a new or empty directory."
            )

    # ----------------------------------------------------------------- config
    def load_config(self) -> TrainConfig:
        """The run's stored config, with a clear error if missing or corrupt."""
        if not self.exists():
            raise RunDirError(
                f"{self.path} is not a probseq run directory (no config.json). "
                "Train one with `probseq train --run-dir DIR`."
            )
        try:
            return resolve_config(load_config_file(self.config_path))
        except ConfigError as error:
            raise RunDirError(f"{self.config_path} is corrupt or invalid: {error}") from None

    def check_resume(self, stored: TrainConfig, requested: TrainConfig, explicit: set[str]):
        """Refuse to resume with settings that would change the model or its data stream."""
        conflicts = [
            f"{name}: run has {getattr(stored, name)!r}, requested {getattr(requested, name)!r}"
            for name in ARCHITECTURE_FIELDS
            if name in explicit
            and getattr(stored, name) != getattr(requested, name)
            and not (name == "corpus" and same_corpus(stored.corpus, requested.corpus))
        ]
        if conflicts:
            raise RunDirError(
                f"cannot resume {self.path} with different settings ("
                + "; ".join(conflicts)
                + "). Use a new --run-dir, or drop these flags to continue the run."
            )

    # ------------------------------------------------------------- vocabulary
    def load_vocabulary(self) -> Vocabulary:
        """The run's vocabulary (clear error if missing or corrupt)."""
        if not self.vocabulary_path.exists():
            raise RunDirError(f"{self.vocabulary_path} is missing; the run dir is incomplete.")
        try:
            return Vocabulary.load(self.vocabulary_path)
        except (ValueError, OSError) as error:
            raise RunDirError(f"vocabulary of run {self.path} is unusable: {error}") from None

    # ------------------------------------------------------------ checkpoints
    def latest_checkpoint(self) -> str | None:
        """Path prefix of the newest checkpoint, or None."""
        return tf.train.latest_checkpoint(str(self.checkpoint_dir))

    def restore(self, checkpoint: tf.train.Checkpoint, *, partial: bool = False) -> str:
        """Restore the newest checkpoint into `checkpoint`; clear error when impossible."""
        latest = self.latest_checkpoint()
        if latest is None:
            raise RunDirError(
                f"run {self.path} has no checkpoint yet (nothing in {self.checkpoint_dir})."
            )
        try:
            status = checkpoint.read(latest)
            if partial:
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
        except Exception as error:
            lines = str(error).strip().splitlines() or [type(error).__name__]
            message = lines[0][:300]
            raise RunDirError(
                f"checkpoint {latest} cannot be restored (corrupt or from a different model): "
                f"{message}. The run dir was left untouched; start a new run with another "
                "--run-dir or restore the files from a backup."
            ) from None
        return latest

    # ---------------------------------------------------------------- metrics
    def load_metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            return {}
        try:
            return json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RunDirError(f"{self.metrics_path} is corrupt: {error}") from None

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2, sort_keys=True))
