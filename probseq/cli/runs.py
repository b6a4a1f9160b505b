"""Loading a trained run and using it: evaluation and sampling (used by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probseq.data import load_corpus
from probseq.trained import TrainedModel, load

__all__ = ["LoadedRun", "compare_runs", "evaluate_run", "load_run", "sample_run"]

# The loaded-run type under its earlier name.
LoadedRun = TrainedModel


def load_run(run_dir: str | Path) -> TrainedModel:
    """Load a run directory for inference (`probseq.load`), with clear errors."""
    return load(run_dir)


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
    replacement: str | None = None,
    draws: int | None = None,
    seed: int = 0,
    context: int = 0,
    dynamic=None,
    progress=None,
    jit_compile: bool | None = None,
) -> dict[str, Any]:
    """Held-out metrics of a run on a corpus split or a text file (a JSON-ready dict);
    `mode="dynamic"` with `dynamic` settings (`probseq.evaluation.DynamicSettings`);
    `jit_compile` as in `probseq.evaluation.evaluate` (None: its default per mode)."""
    run = load_run(run_dir)
    if text_path is not None:
        text = _read_text(text_path).replace("\r\n", "\n")
        source = str(text_path)
    else:
        text = run.corpus().text(split)
        source = f"{run.config.corpus}:{split}"
    result = run.evaluate_text(
        text,
        mode=mode,
        num_steps=num_steps,
        on_unknown=on_unknown,
        replacement=replacement,
        num_draws=draws,
        seed=seed,
        context=context,
        dynamic=dynamic,
        progress=progress,
        jit_compile=jit_compile,
    )
    result["source"] = source
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
    run = load_run(run_dir)
    return run.sample_texts(length, num_samples, prime=prime, temperature=temperature, seed=seed)


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
