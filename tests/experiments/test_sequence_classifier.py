"""`experiments/sequence_classifier.py --tiny` on scikit-learn's digits, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "sequence_classifier.py"


@pytest.mark.slow
def test_tiny_run_prints_one_json_object_and_writes_diagrams(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--json", "--cells", "rnn", "gru",
         "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    results = json.loads(out.stdout)
    assert results["dataset"].startswith("sklearn digits 8x8")
    assert set(results["variants"]) == {"rnn_map", "rnn_variational", "gru_map", "gru_variational"}
    for variant in results["variants"].values():
        assert 0.0 <= variant["test_accuracy"] <= 1.0
        assert variant["test_nll"] > 0 and 0.0 <= variant["ece"] <= 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "reliability_gru_map.png", "reliability_gru_variational.png",
        "reliability_rnn_map.png", "reliability_rnn_variational.png",
    ]  # fmt: skip


def test_a_missing_mnist_file_is_named(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--mnist", str(tmp_path / "nope.npz")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0 and "no such file" in out.stderr
