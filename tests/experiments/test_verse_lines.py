"""Smoke run of experiments/verse_lines.py on a small text, compared with a window model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from probseq.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_verse_lines_tiny_reports_lines_and_the_window_model(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the ", "king ", "and ", "queen ", "of ", "rome ", "speak ", "thou "]
    lines = ["".join(rng.choice(words, size=rng.integers(2, 8))).strip() for _ in range(3000)]
    corpus = tmp_path / "verse.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    window = tmp_path / "window"
    flags = ["--hidden-size", "8", "--num-layers", "1", "--num-steps", "8", "--batch-size", "4",
             "--max-steps", "2", "--budget-minutes", "none", "--eval-chars", "200",
             "--no-progress"]  # fmt: skip
    assert main(["train", "--corpus", str(corpus), "--run-dir", str(window), *flags]) == 0
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "verse_lines.py"), "--tiny", "--json",
         "--corpus", str(corpus), "--run-dir", str(tmp_path / "run"), "--window-run",
         str(window), "--max-lines", "500", "--no-progress"],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert 120 < results["num_test_lines"] < 180  # the last 5% of the text: ~150 lines
    assert results["test_bits_per_char"] > 0 and results["test_nll_nats_per_line"] > 0
    assert results["window_model_test_bits_per_char"] > 0
    assert isinstance(results["samples"], list)
    assert all("\n" not in line for line in results["samples"])
    assert results["steps"] == 8
