"""`probseq forecast --csv`: what a user with a CSV file sees and gets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probseq.cli.forecast import HEAD_NAMES
from probseq.cli.main import main
from probseq.forecasting import HEADS


def _write_csv(path, n=96, missing=False):
    t = np.arange(n)
    values = 50 + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(size=n)
    frame = pd.DataFrame(
        {
            "month": pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"),
            "sales": np.round(values, 3),
        }
    )
    if missing:
        frame.loc[5, "sales"] = np.nan
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_forecast_writes_quantiles_fan_chart_and_model(tmp_path, capsys):
    csv = _write_csv(tmp_path / "sales.csv")
    out = tmp_path / "out"
    code = main(
        [
            "forecast",
            "--csv",
            str(csv),
            "--column",
            "sales",
            "--prediction-length",
            "6",
            "--num-steps",
            "40",
            "--num-samples",
            "50",
            "--backtest",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "sales from" in printed and "96 monthly values (2010-01 .. 2017-12)" in printed
    assert "backtest on the last 1 windows of 6" in printed and "seasonal_naive" in printed
    assert "forecast of the 6 monthly steps after 2017-12 (50 sample paths)" in printed
    assert "2018-01" in printed and "wrote" in printed
    frame = pd.read_csv(out / "forecast.csv")
    assert list(frame.columns) == ["period", "mean", "median"] + [f"q0.{i}" for i in range(1, 10)]
    assert list(frame["period"]) == [f"2018-0{i}" for i in range(1, 7)]
    quantiles = frame[[f"q0.{i}" for i in range(1, 10)]].to_numpy()
    assert (np.diff(quantiles, axis=1) >= 0).all()
    assert (out / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backtest"]["deepar"]["mean_wql"] > 0
    assert summary["model"]["num_steps"] == 40 and summary["values"] == 96
    assert (out / "model" / "config.json").exists() and (out / "model" / "weights.npz").exists()


def test_forecast_json_and_quantile_choice(tmp_path, capsys):
    csv = _write_csv(tmp_path / "sales.csv", n=60)
    code = main(
        [
            "forecast",
            "--csv",
            str(csv),
            "--column",
            "sales",
            "--prediction-length",
            "3",
            "--num-steps",
            "5",
            "--num-samples",
            "20",
            "--quantiles",
            "0.05,0.5,0.95",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)  # stdout is the JSON object alone
    assert set(summary["forecast"]["quantiles"]) == {"0.05", "0.5", "0.95"}
    assert "forecast of the 3 monthly steps" in captured.err
    header = (tmp_path / "o" / "forecast.csv").read_text().splitlines()[0]
    assert header == "period,mean,median,q0.05,q0.5,q0.95"


def test_forecast_errors_are_one_line(tmp_path, capsys):
    csv = _write_csv(tmp_path / "sales.csv", missing=True)
    base = [
        "forecast",
        "--csv",
        str(csv),
        "--prediction-length",
        "6",
        "--num-steps",
        "2",
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert main([*base, "--column", "revenue"]) == 2
    assert "no column 'revenue'; its columns: ['month', 'sales']" in capsys.readouterr().err
    assert main([*base, "--column", "sales"]) == 2
    err = capsys.readouterr().err
    assert "1 missing or non-finite values (at 2010-06)" in err and "--fill interpolate" in err
    assert (
        main([*base, "--column", "sales", "--fill", "interpolate", "--head", "negative_binomial"])
        == 2
    )
    assert "not counts" in capsys.readouterr().err
    assert (
        main(
            [
                "forecast",
                "--csv",
                str(tmp_path / "none.csv"),
                "--column",
                "y",
                "--prediction-length",
                "2",
            ]
        )
        == 2
    )
    assert "none.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--column", "sales", "--quantiles", "0.5,1.5"])
    assert "quantiles must be in (0, 1)" in capsys.readouterr().err


def test_the_cli_head_names_are_the_library_heads():
    assert set(HEAD_NAMES) == set(HEADS)
