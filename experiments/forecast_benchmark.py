"""Probabilistic forecasting, side by side: probseq's DeepAR against GluonTS's DeepAR,
seasonal naive and ETS on real series bundled with statsmodels.

Series (`probseq.forecasting.DATASETS`), each with a fixed rolling-origin backtest: the
last `windows` windows of `prediction_length` are held out, every model is trained once
on the values before the first window and forecasts each window from the history before
it.

| series | frequency | values | prediction length | windows |
|---|---|---:|---:|---:|
| co2 | weekly | 2,284 | 13 | 3 |
| elec_equip | monthly | 257 | 12 | 3 |
| unemployment | quarterly | 203 | 8 | 3 |
| sunspots | yearly | 309 | 6 | 3 |
| nile | yearly | 100 | 6 | 3 |

Models: `probseq_deepar` (`probseq.forecasting.DeepARForecaster` at its defaults),
`gluonts_deepar` (GluonTS's PyTorch DeepAR at its defaults; the `forecast-bench`
extra), `seasonal_naive`, `ets` (statsmodels). Neural models run for every seed
(`--seeds`, default 0 1 2); metrics are means +- sd over seeds: `mean_wql` (GluonTS's
mean weighted quantile loss over q = 0.1..0.9), `crps` (per step, the series' units),
`weighted_crps` (sum CRPS / sum |y|), `mase`, `train_seconds`, and for probseq the NLL
of the held-out windows per step (`nll_per_step`). The aggregate averages each model's
per-series means over the series.

Run it (the GluonTS peer needs `make forecast-bench`, which builds `.venv-forecast`)::

    python experiments/forecast_benchmark.py                      # every series and model
    python experiments/forecast_benchmark.py --series nile --models probseq_deepar ets
    python experiments/forecast_benchmark.py --json --plots experiments/figures
    python experiments/forecast_benchmark.py --tiny               # seconds-long smoke test

Progress goes to stderr; a table (or with `--json` one JSON object) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from probseq.forecasting import (
    DeepARForecaster,
    ForecastResult,
    backtest,
    load_dataset,
)
from probseq.machine import cpu_info, describe_machine

SERIES = {  # name -> (prediction_length, windows)
    "co2": (13, 3),
    "elec_equip": (12, 3),
    "unemployment": (8, 3),
    "sunspots": (6, 3),
    "nile": (6, 3),
}
MODELS = ("probseq_deepar", "gluonts_deepar", "seasonal_naive", "ets")
NEURAL = ("probseq_deepar", "gluonts_deepar")
METRICS = ("mean_wql", "crps", "weighted_crps", "mase", "nll_per_step", "train_seconds")


def probseq_deepar(bt, seed: int, num_samples: int, **overrides):
    model = DeepARForecaster(bt.prediction_length, seed=seed, **overrides)
    model.fit(bt.train)
    forecast = model.forecast(bt.series, bt.origins, num_samples=num_samples, seed=seed)
    nll = -model.log_prob(bt.series, bt.origins) / bt.prediction_length
    return forecast, model.train_seconds, float(np.mean(nll))


def run_one(name: str, bt, seed: int, args) -> tuple[dict, np.ndarray]:
    from forecast_peers import PEERS

    nll = None
    if name == "probseq_deepar":
        overrides = {}
        if args.num_steps:
            overrides["num_steps"] = args.num_steps
        if args.tiny:
            overrides.update(hidden_size=8, num_layers=1, num_steps=args.num_steps or 30)
        forecast, seconds, nll = probseq_deepar(bt, seed, args.num_samples, **overrides)
        samples = forecast.samples
    else:
        samples, seconds = PEERS[name](bt, seed, args.num_samples)
    row = bt.scores(samples)
    row.update(train_seconds=float(seconds), nll_per_step=nll)
    return row, samples


def summarize(runs: list[dict]) -> dict:
    """Mean and sd over seeds of each metric (None where a model has no value)."""
    out = {"seeds": [run["seed"] for run in runs]}
    for metric in METRICS:
        values = [run[metric] for run in runs if run.get(metric) is not None]
        if values:
            out[metric] = float(np.mean(values))
            out[f"{metric}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        else:
            out[metric] = None
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", nargs="+", choices=sorted(SERIES), default=list(SERIES))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--num-samples", type=int, default=200, help="paths per window")
    parser.add_argument(
        "--num-steps",
        type=int,
        default=None,
        help="probseq optimizer steps (default: DeepARForecaster's)",
    )
    parser.add_argument("--plots", metavar="DIR", help="write probseq fan charts here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON object here")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke test: nile only, 1 seed, a tiny probseq model"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.series, args.seeds = ["nile"], args.seeds[:1]
        args.models = [m for m in args.models if m != "gluonts_deepar"] or ["probseq_deepar"]
        args.num_samples = min(args.num_samples, 50)
    if args.num_samples < 1:
        parser.error("--num-samples must be >= 1")
    if args.num_steps is not None and args.num_steps < 1:
        parser.error("--num-steps must be >= 1")
    return args


def main(argv=None) -> dict:
    from forecast_peers import peer_available

    args = parse_args(argv)
    try:
        load_dataset("nile")
    except ImportError as error:
        raise SystemExit(f"forecast_benchmark: {error}") from None
    machine = cpu_info()
    unavailable = {m: why for m in args.models if (why := peer_available(m))}
    for model, why in unavailable.items():
        print(f"[{model}] skipped: {why}", file=sys.stderr)
    models = [m for m in args.models if m not in unavailable]
    results: dict = {
        "machine": describe_machine(machine),
        "cpu": machine,
        "seeds": args.seeds,
        "num_samples": args.num_samples,
        "unavailable": unavailable,
        "series": {},
    }
    started = time.perf_counter()
    for name in args.series:
        series = load_dataset(name)
        horizon, windows = SERIES[name]
        bt = backtest(series, horizon, windows)
        per_model = {}
        for model in models:
            seeds = args.seeds if model in NEURAL or model == "ets" else args.seeds[:1]
            runs = []
            for seed in seeds:
                row, samples = run_one(model, bt, seed, args)
                row["seed"] = seed
                runs.append(row)
                print(
                    f"[{name}] {model} seed {seed}: mean_wql {row['mean_wql']:.4f}  "
                    f"crps {row['crps']:.4g}  mase {row['mase']:.3f}  "
                    f"train {row['train_seconds']:.1f} s",
                    file=sys.stderr,
                )
                if args.plots and model == "probseq_deepar" and seed == args.seeds[0]:
                    from probseq.forecasting.plots import fan_chart

                    Path(args.plots).mkdir(parents=True, exist_ok=True)
                    index = [series.future_index(horizon, end=o) for o in bt.origins]
                    fan_chart(
                        series,
                        ForecastResult(samples, index),
                        Path(args.plots) / f"forecast_{name}.png",
                        title=f"{name}: probseq DeepAR, {windows} backtest windows",
                    )
            per_model[model] = dict(summarize(runs), runs=runs)
        results["series"][name] = dict(
            frequency=series.freq.kind,
            values=len(series),
            prediction_length=horizon,
            windows=windows,
            train_values=bt.train_end,
            models=per_model,
        )
    results["aggregate"] = {
        model: {
            metric: float(
                np.mean([results["series"][s]["models"][model][metric] for s in args.series])
            )
            for metric in ("mean_wql", "weighted_crps", "mase", "train_seconds")
        }
        for model in models
    }
    results["wall_seconds"] = time.perf_counter() - started
    if args.out:
        from probseq.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
    return results


def _cell(summary: dict, metric: str, digits: int) -> str:
    value = summary.get(metric)
    if value is None:
        return "-"
    sd = summary.get(f"{metric}_sd") or 0.0
    return (
        f"{value:.{digits}f} ± {sd:.{digits}f}"
        if len(summary["seeds"]) > 1
        else f"{value:.{digits}f}"
    )


def format_table(results: dict) -> str:
    lines = [f"machine: {results['machine']}", ""]
    header = "| series | model | mean wQL | CRPS | MASE | NLL/step | train s |"
    lines += [header, "|---|---|---:|---:|---:|---:|---:|"]
    for name, entry in results["series"].items():
        for model, summary in entry["models"].items():
            lines.append(
                f"| {name} | {model} | {_cell(summary, 'mean_wql', 4)} | "
                f"{_cell(summary, 'crps', 3)} | {_cell(summary, 'mase', 3)} | "
                f"{_cell(summary, 'nll_per_step', 3)} | {_cell(summary, 'train_seconds', 1)} |"
            )
    lines += [
        "",
        "| aggregate (mean over series) | mean wQL | weighted CRPS | MASE | train s |",
        "|---|---:|---:|---:|---:|",
    ]
    for model, agg in results["aggregate"].items():
        lines.append(
            f"| {model} | {agg['mean_wql']:.4f} | {agg['weighted_crps']:.4f} | "
            f"{agg['mase']:.3f} | {agg['train_seconds']:.1f} |"
        )
    for model, why in results["unavailable"].items():
        lines.append(f"\n{model}: not run ({why})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
