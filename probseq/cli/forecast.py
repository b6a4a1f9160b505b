"""`probseq forecast`: train a DeepAR model on one column of a CSV file and forecast.

    probseq forecast --csv sales.csv --column y --prediction-length 12 [--out DIR]
        [--date-column date] [--freq M] [--fill interpolate] [--backtest 3] [--json]

Writes into `--out` (default `forecast-<column>/`):

- `forecast.csv`: one row per forecast period: `period`, `mean`, `median` and the
  quantiles `q0.1 .. q0.9` (`--quantiles` to choose), from `--num-samples` sample paths;
- `forecast.png`: the fan chart (history, median, 25-75/10-90/5-95% bands);
- `model/`: the fitted model (`probseq.forecasting.DeepARForecaster.load`);
- `summary.json`: what was done and, with `--backtest K`, the held-out scores.

With `--backtest K` the last `K` windows are first held out: a model trained on the rest
forecasts them and its mean weighted quantile loss, CRPS and MASE are reported next to
the seasonal naive forecast's; the final model is then trained on the whole series.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["add_forecast_parser", "run_forecast"]

HEAD_NAMES = ("negative_binomial", "normal", "student_t")  # probseq.forecasting.HEADS, no TF import
_QUANTILES = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"


def _quantile_list(text: str) -> list[float]:
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.1,0.5,0.9, got {text!r}"
        ) from None
    if not levels or any(not 0 < q < 1 for q in levels):
        raise argparse.ArgumentTypeError(f"quantiles must be in (0, 1), got {text!r}")
    return sorted(set(levels))


def add_forecast_parser(commands, positive_int) -> None:
    """The `forecast` subcommand's flags."""
    p = commands.add_parser(
        "forecast",
        help="train a DeepAR model on a CSV column and write quantile forecasts and a fan chart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", required=True, help="the CSV file")
    p.add_argument("--column", required=True, help="the column of values to forecast")
    p.add_argument(
        "--prediction-length", type=positive_int, required=True, help="steps to forecast"
    )
    p.add_argument("--date-column", help="column of dates (default: one named date/ds/time/...)")
    p.add_argument("--freq", help="pandas frequency (M, W, D, Q, Y, h...; default: inferred)")
    p.add_argument("--start", help="first period when the file has no dates (with --freq)")
    p.add_argument(
        "--fill",
        choices=("interpolate", "zero"),
        help="fill missing values (default: a missing value is an error)",
    )
    p.add_argument("--out", help="output directory (default: forecast-<column>)")
    p.add_argument(
        "--head",
        choices=HEAD_NAMES,
        default="student_t",
        help="distribution of each value (default: student_t)",
    )
    p.add_argument(
        "--context-length",
        type=positive_int,
        help="steps the model reads before forecasting (default: the prediction length)",
    )
    p.add_argument("--num-steps", type=positive_int, help="optimizer steps (default 1500)")
    p.add_argument(
        "--ensemble-size",
        type=positive_int,
        help="networks trained side by side, forecast as their mixture (default 4)",
    )
    p.add_argument("--num-samples", type=positive_int, default=200, help="sample paths")
    p.add_argument(
        "--quantiles",
        type=_quantile_list,
        default=_quantile_list(_QUANTILES),
        help=f"comma-separated levels in (0, 1) (default {_QUANTILES})",
    )
    p.add_argument(
        "--backtest",
        type=int,
        default=0,
        metavar="K",
        help="first score the last K held-out windows (default 0: no backtest)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")


class _Progress:
    """A tqdm bar over the fit's steps showing the loss (nats per step)."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False)

    def on_step(self, info):
        if self.bar is not None:
            self.bar.update(1)
            if info.step % 25 == 0:
                self.bar.set_postfix(loss=f"{info.loss:.3f}")
        return None

    def on_evaluation(self, step, metrics):
        return None

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _forecaster(args):
    from probseq.forecasting import DeepARForecaster

    options = dict(head=args.head, num_samples=args.num_samples, seed=args.seed)
    if args.context_length:
        options["context_length"] = args.context_length
    if args.num_steps:
        options["num_steps"] = args.num_steps
    if args.ensemble_size:
        options["ensemble_size"] = args.ensemble_size
    return DeepARForecaster(args.prediction_length, **options)


def _fit(model, series, label: str, progress: bool):
    bar = _Progress(model.config["num_steps"], label, progress)
    try:
        model.fit(series, callbacks=[bar])
    finally:
        bar.close()
    return model


def _backtest(args, series, say) -> dict:
    import numpy as np

    from probseq.forecasting import backtest

    bt = backtest(series, args.prediction_length, args.backtest)
    model = _fit(_forecaster(args), bt.train, "backtest fit", not args.no_progress)
    forecast = model.forecast(series, bt.origins, seed=args.seed)

    def scores(samples):  # what the report shows
        return {k: v for k, v in bt.scores(samples).items() if k in ("mean_wql", "crps", "mase")}

    result = dict(
        windows=args.backtest,
        origins=[str(series.index[o]) for o in bt.origins],
        deepar=scores(forecast.samples),
        seasonal_naive=scores(bt.seasonal_naive()),
        deepar_nll_per_step=float(
            np.mean(-model.log_prob(series, bt.origins) / args.prediction_length)
        ),
    )
    say(
        f"backtest on the last {args.backtest} windows of {args.prediction_length} "
        f"(from {result['origins'][0]}):"
    )
    say(f"  {'model':<15} {'mean wQL':>9} {'CRPS':>10} {'MASE':>7}")
    for name in ("deepar", "seasonal_naive"):
        row = result[name]
        say(f"  {name:<15} {row['mean_wql']:>9.4f} {row['crps']:>10.4g} {row['mase']:>7.3f}")
    return result


def run_forecast(args: argparse.Namespace) -> int:
    """The `forecast` subcommand; returns the exit status."""
    import numpy as np

    from probseq.files import atomic_write_text
    from probseq.forecasting import read_csv
    from probseq.forecasting.plots import fan_chart
    from probseq.machine import describe_machine

    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    if args.backtest < 0:
        raise ValueError(f"--backtest must be >= 0, got {args.backtest}.")
    out = Path(args.out or f"forecast-{args.column}")
    series = read_csv(
        args.csv,
        args.column,
        date_column=args.date_column,
        freq=args.freq,
        start=args.start,
        fill=args.fill,
    )
    say(
        f"{args.column} from {args.csv}: {len(series)} {series.freq.kind} values "
        f"({series.index[0]} .. {series.index[-1]})"
    )
    summary: dict = dict(
        csv=os.fspath(args.csv),
        column=args.column,
        frequency=series.freq.kind,
        values=len(series),
        prediction_length=args.prediction_length,
        machine=describe_machine(),
    )
    if args.backtest:
        summary["backtest"] = _backtest(args, series, say)
    model = _fit(_forecaster(args), series, "fit", not args.no_progress)
    config = model.config
    say(
        f"trained DeepAR ({config['ensemble_size']} networks of {config['num_layers']} x "
        f"{config['hidden_size']} {config['cell']}, {config['head']} head, "
        f"{len(model.lags)} lags up to {max(model.lags)}, context "
        f"{config['context_length']}) for {config['num_steps']} steps in "
        f"{model.train_seconds:.1f} s on {summary['machine']}"
    )
    forecast = model.forecast(series, seed=args.seed)
    samples = forecast.samples[:, 0]  # :: [n, H]
    levels = args.quantiles
    quantiles = np.quantile(samples, levels, axis=0)
    periods = [str(p) for p in forecast.index[0]]
    header = ["period", "mean", "median"] + [f"q{q:g}" for q in levels]
    rows = [",".join(header)]
    for t, period in enumerate(periods):
        values = [samples[:, t].mean(), np.median(samples[:, t]), *quantiles[:, t]]
        rows.append(",".join([period] + [f"{v:.6g}" for v in values]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "forecast.csv", "\n".join(rows) + "\n")
    fan_chart(
        series,
        forecast,
        out / "forecast.png",
        title=f"{args.column}: DeepAR forecast of {args.prediction_length} steps",
    )
    model.save(out / "model")
    summary.update(
        model=dict(config, lags=list(model.lags), train_seconds=model.train_seconds),
        forecast=dict(
            periods=periods,
            quantiles={f"{q:g}": quantiles[i].tolist() for i, q in enumerate(levels)},
            mean=samples.mean(axis=0).tolist(),
        ),
        files=dict(
            forecast_csv=os.fspath(out / "forecast.csv"),
            fan_chart=os.fspath(out / "forecast.png"),
            model=os.fspath(out / "model"),
        ),
    )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    low, high = min(levels), max(levels)
    say(
        f"forecast of the {args.prediction_length} {series.freq.kind} steps after "
        f"{series.index[-1]} ({args.num_samples} sample paths):"
    )
    say(f"  {'period':<12} {'median':>10} {f'q{low:g}':>10} {f'q{high:g}':>10}")
    med = np.median(samples, axis=0)
    for t, period in enumerate(periods):
        say(f"  {period:<12} {med[t]:>10.4g} {quantiles[0, t]:>10.4g} {quantiles[-1, t]:>10.4g}")
    say(
        f"wrote {out / 'forecast.csv'}, {out / 'forecast.png'}, {out / 'model'}/ and "
        f"{out / 'summary.json'}"
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
