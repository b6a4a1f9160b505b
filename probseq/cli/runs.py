"""Loading a trained run and using it: evaluation and sampling (used by the CLI)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.cli.config import TrainConfig
from probseq.cli.models import RunModel
from probseq.cli.rundir import RunDir, RunDirError
from probseq.data import Vocabulary, load_corpus
from probseq.nn import LSTMNetwork

__all__ = ["LoadedRun", "evaluate_run", "load_run", "sample_run"]


@dataclasses.dataclass
class LoadedRun:
    """A run's config, vocabulary and network with the newest checkpoint's weights."""

    path: Path
    config: TrainConfig
    vocabulary: Vocabulary
    model: RunModel
    checkpoint: str

    @property
    def network(self) -> LSTMNetwork:
        return self.model.network


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load a run directory for inference, with clear errors for anything missing."""
    rd = RunDir(run_dir)
    if not rd.path.exists():
        raise RunDirError(f"run directory {rd.path} does not exist.")
    config = rd.load_config()
    vocabulary = rd.load_vocabulary()
    model = RunModel(config, len(vocabulary))
    checkpoint = rd.restore(tf.train.Checkpoint(**model.checkpoint_items()), partial=True)
    return LoadedRun(rd.path, config, vocabulary, model, checkpoint)


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
    corpus = load_corpus(run.config.corpus, cache_dir=run.config.cache_dir)
    if text_path is not None:
        text = _read_text(text_path).replace("\r\n", "\n")
        source = str(text_path)
    else:
        text = corpus.text(split)
        source = f"{run.config.corpus}:{split}"
    ids, num_unknown = run.vocabulary.encode(text, on_unknown=on_unknown, return_num_unknown=True)
    result = run.model.evaluate(
        ids,
        num_steps=num_steps,
        mode=mode,
        num_draws=draws,
        seed=seed,
        num_train_chars=corpus.split_sizes["train"],
    )
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
    sampler = run.model.sampler(
        length, prefix=prefix, temperature=float(temperature), num_samples=num_samples
    )
    return [prime + run.vocabulary.decode(row) for row in sampler([seed, 0])]


def compare_runs(
    run_dirs: list[str | Path],
    *,
    split: str = "test",
    num_draws: int = 100,
    seed: int = 0,
    max_chars: int | None = None,
    ic: str = "loo",
):
    """ArviZ comparison (elpd, its standard error, weights) of runs on held-out windows.

    All runs must share the vocabulary and the corpus; windows of the first run's
    `num_steps`. MAP runs enter with their plug-in log-likelihood (one draw); variational
    runs with `num_draws` posterior draws (PSIS-LOO, Pareto k reported).

    Returns:
      (table, windows): the `compare_models` DataFrame and the number of windows.
    """
    from probseq.evaluation import compare_models, evaluate, posterior_predictive
    from probseq.evaluation.arviz_io import to_inference_data

    if len(run_dirs) < 2:
        raise ValueError("compare needs at least two run directories.")
    runs = [load_run(path) for path in run_dirs]
    first = runs[0]
    for run in runs[1:]:
        if run.vocabulary != first.vocabulary:
            raise ValueError(f"runs {first.path} and {run.path} have different vocabularies.")
        if run.config.corpus != first.config.corpus:
            raise ValueError(f"runs {first.path} and {run.path} use different corpora.")
    num_steps = first.config.num_steps
    corpus = load_corpus(first.config.corpus, cache_dir=first.config.cache_dir)
    ids = corpus.ids(split)
    if max_chars:
        ids = ids[:max_chars]
    models = {}
    for run in runs:
        name = str(run.path)
        if run.model.variational:
            result = posterior_predictive(
                run.model.surrogate, ids, num_draws=num_draws, seed=(seed, 1), num_steps=num_steps
            )
            models[name] = to_inference_data(result, ids, name=name)
        else:
            result = evaluate(run.network, ids, num_steps=num_steps)
            models[name] = to_inference_data(result, ids, params=run.network.params, name=name)
    return compare_models(models, ic=ic), len(ids) // num_steps
