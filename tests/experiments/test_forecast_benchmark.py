"""`experiments/forecast_benchmark.py --tiny`, as a user runs it (in this process: its
`main` is what the script runs). GluonTS is not installed in the test environment: the
run says so instead of dropping the row silently."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="module")
def benchmark():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        yield importlib.import_module("forecast_benchmark")
    finally:
        sys.path.remove(str(EXPERIMENTS))


@pytest.mark.slow
def test_tiny_run_prints_metrics_per_series_and_model(benchmark, tmp_path, capsys):
    benchmark.main(
        ["--tiny", "--json", "--plots", str(tmp_path), "--out", str(tmp_path / "results.json")]
    )
    results = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert "CPUs, flags:" in results["machine"]
    nile = results["series"]["nile"]
    assert nile["frequency"] == "yearly" and nile["prediction_length"] == 6
    assert set(nile["models"]) == {"probseq_deepar", "seasonal_naive", "ets"}
    for model, summary in nile["models"].items():
        for key in ("mean_wql", "crps", "mase", "train_seconds"):
            assert summary[key] is not None and summary[key] >= 0, (model, key)
    assert nile["models"]["probseq_deepar"]["nll_per_step"] is not None
    assert set(results["aggregate"]) == set(nile["models"])
    assert (tmp_path / "forecast_nile.png").exists()


def test_human_table_and_an_unavailable_peer_is_named(benchmark, capsys):
    benchmark.main(
        ["--series", "nile", "--models", "seasonal_naive", "gluonts_deepar", "--seeds", "0"]
    )
    out = capsys.readouterr()
    assert "| nile | seasonal_naive |" in out.out
    assert "| aggregate (mean over series) |" in out.out
    try:
        import gluonts  # noqa: F401
    except ImportError:
        assert "gluonts_deepar: not run (not installed" in out.out
        assert "[gluonts_deepar] skipped" in out.err
    else:  # where the peer is installed it runs and gets a row
        assert "| nile | gluonts_deepar |" in out.out
