"""`experiments/forecast_benchmark.py --tiny`, as a user runs it (GluonTS not installed in
the test environment: the run says so instead of dropping the row silently)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "forecast_benchmark.py"


@pytest.mark.slow
def test_tiny_run_prints_metrics_per_series_and_model(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--tiny",
            "--json",
            "--plots",
            str(tmp_path),
            "--out",
            str(tmp_path / "results.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    results = json.loads(out.stdout)
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


def test_human_table_and_an_unavailable_peer_is_named(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--models", "seasonal_naive", "gluonts_deepar"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "| nile | seasonal_naive |" in out.stdout
    assert "| aggregate (mean over series) |" in out.stdout
    # --tiny leaves GluonTS out (it trains for minutes); a full run without it says why:
    full = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--series",
            "nile",
            "--models",
            "seasonal_naive",
            "gluonts_deepar",
            "--seeds",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        import gluonts  # noqa: F401
    except ImportError:
        assert full.returncode == 0
        assert "gluonts_deepar: not run (not installed" in full.stdout
    else:  # where the peer is installed it runs and gets a row
        assert full.returncode == 0 and "| nile | gluonts_deepar |" in full.stdout
