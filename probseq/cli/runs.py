"""Loading a trained run and using it: evaluation and sampling (used by the CLI)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.cli.config import TrainConfig
from probseq.cli.rundir import RunDir, RunDirError, build_network
from probseq.data import Vocabulary, load_corpus
from probseq.distributions import LSTMAutoregressive
from probseq.evaluation import evaluate
from probseq.nn import LSTMNetwork

__all__ = ["LoadedRun", "evaluate_run", "load_run", "sample_run"]


@dataclasses.dataclass
class LoadedRun:
    """A run's config, vocabulary and network with the newest checkpoint's weights."""

    path: Path
    config: TrainConfig
    vocabulary: Vocabulary
    network: LSTMNetwork
    checkpoint: str


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory for inference, with clear errors for anything missing."""
    rd = RunDir(run_dir)
    if not rd.path.exists():
        raise RunDirError(f"run directory {rd.path} does not exist.")
    config = rd.load_config()
    vocabulary = rd.load_vocabulary()
    network = build_network(config, len(vocabulary))
    checkpoint = rd.restore(rd.checkpoint(network), partial=True)
    return LoadedRun(rd.path, config, vocabulary, network, checkpoint)


def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--text {path}: no such file.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"--text {path} is not UTF-8 text: {error}") from None


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str | None = "test",
    text_path: str | Path | None = None,
    mode: str = "windows",
    num_steps: int | None = None,
    on_unknown: str = "error",
    draws: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out metrics of a run on a corpus split or a text file (a JSON-ready dict)."""
    run = load_run(run_dir)
    num_steps = num_steps or run.config.num_steps
    num_unknown = 0
    if text_path is not None:
        text = _read_text(text_path).replace("\r\n", "\n")
        source = str(text_path)
    else:
        corpus = load_corpus(run.config.corpus, cache_dir=run.config.cache_dir)
        text = corpus.text(split)
        source = f"{run.config.corpus}:{split}"
    ids, num_unknown = run.vocabulary.encode(text, on_unknown=on_unknown, return_num_unknown=True)
    result = evaluate(run.network, ids, num_steps=num_steps, mode=mode).as_dict()
    del draws, seed  # posterior draws apply to variational runs only
    result.update(
        source=source,
        run_dir=str(run.path),
        checkpoint=Path(run.checkpoint).name,
        num_unknown_skipped=int(num_unknown),
        method=run.config.method,
    )
    return result


def sample_run(
    run_dir: str | Path,
    *,
    prime: str = "The ",
    length: int = 500,
    temperature: float = 1.0,
    seed: int = 1,
    num_samples: int = 1,
) -> list[str]:
    """`num_samples` texts: the priming text followed by `length` sampled characters."""
    if length < 1:
        raise ValueError(f"--length must be >= 1, got {length}.")
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}.")
    if not temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {temperature}.")
    run = load_run(run_dir)
    prefix = run.vocabulary.encode(prime).astype(np.int32) if prime else None
    distribution = LSTMAutoregressive(
        run.network, length, prefix=prefix, temperature=float(temperature)
    )
    tokens = tf.function(distribution.sample)(num_samples, seed=tf.constant([seed, 0]))
    return [prime + run.vocabulary.decode(row) for row in tokens.numpy()]
