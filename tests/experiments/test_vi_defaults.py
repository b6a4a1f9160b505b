"""`experiments/vi_defaults.py` with tiny settings on a local text, as a user would run it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "vi_defaults.py"
# Kingma & Ba (2015), sec. 2.1: one Adam step moves a parameter by at most
# lr * (1 - beta1) / sqrt(1 - beta2) = 3.16 lr (tf_keras defaults). sd = softplus(u) has
# |d log sd / du| = sigmoid(u) / softplus(u) <= 1, so log(sd / init) is bounded by
# 3.17 * sum_t lr_t = 3.17 * log(adam_max_growth) for every weight, hence for the mean.
ADAM_STEP_BOUND = 3.17


@pytest.mark.slow
def test_tiny_sweep_reports_every_setting_and_consistent_numbers(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 300)
    results_path = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--corpus", str(text),
         "--init-scales", "1e-3", "0.1", "--results", str(results_path)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(results_path.read_text())

    rows = results["rows"]
    assert [(r["method"], r.get("posterior_init_scale")) for r in rows] == [
        ("map", None),
        ("variational", 1e-3),
        ("variational", 0.1),
    ]
    steps = results["config"]["max_steps"]
    assert all(r["steps"] == steps for r in rows)
    map_row, small, large = rows
    assert "posterior_sd_mean" not in map_row and map_row["plug_in_bits_per_char"] > 0
    for row in (small, large):
        growth = math.log(row["adam_max_growth"])
        assert 0 < growth < 0.1  # a few steps of at most lr=2e-3
        assert abs(math.log(row["sd_over_init"])) <= ADAM_STEP_BOUND * growth + 1e-6
        assert row["gap_bits_per_char"] == pytest.approx(
            row["predictive_bits_per_char"] - row["plug_in_bits_per_char"], abs=1e-12
        )
        # Same draws: -log mean_s p <= -mean_s log p (Jensen), and -ELBO adds KL >= 0.
        assert row["predictive_bits_per_char"] <= row["expected_nll_bits_per_char"] + 1e-9
        assert row["elbo_bound_bits_per_char"] >= row["expected_nll_bits_per_char"]
        assert row["eval_draws"] == results["config"]["eval_draws"]
    # A ten times wider posterior stays ten times wider after a few steps, and its
    # weight noise shows up as a gap between the predictive and the plug-in.
    assert large["posterior_sd_mean"] > 50 * small["posterior_sd_mean"]
    assert abs(large["gap_bits_per_char"]) > abs(small["gap_bits_per_char"])

    by_init = {s["posterior_init_scale"]: s for s in results["summary"]}
    assert by_init[None]["predictive_minus_map"] == 0.0
    assert by_init[0.1]["predictive_minus_map"] == pytest.approx(
        large["predictive_bits_per_char"] - map_row["plug_in_bits_per_char"], abs=1e-12
    )
    assert results["machine"]["cpu_count"] >= 1

    # What a person sees: the table with one line per setting.
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert "predictive" in lines[header] and "vs MAP" in lines[header]
    table = lines[header + 1 : header + 4]
    assert table[0].startswith("MAP") and f"{map_row['plug_in_bits_per_char']:.4f}" in table[0]
    assert table[1].startswith("variational") and "1e-03" in table[1]
    assert f"{large['predictive_bits_per_char']:.4f}" in table[2]
    assert "largest sd growth Adam allows" in result.stdout
