"""Smoke tests of the benchmark suite (`benchmarks/run.py`) on tiny shapes.

They check that every implementation's code runs and that results.json / RESULTS.md
have the documented schema. They never assert anything about speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROW_KEYS = {
    "case": str,
    "implementation": str,
    "median": float,
    "min": float,
    "max": float,
    "unit": str,
    "repeats": int,
    "compile_seconds": float,
    "peak_rss_mb": float,
}


def _run_suite(out: Path, *args: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--repeats", "1"]
    cmd += ["--rounds", "1"]
    cmd += ["--warmup", "0", "--out", str(out), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    document = json.loads((out / "results.json").read_text())
    assert (out / "RESULTS.md").read_text().startswith("# probseq speed benchmark results")
    return document


def _check_schema(document: dict, expected_pairs: set[tuple[str, str]]) -> None:
    machine = document["machine"]
    for key in ("cpu_model", "usable_cpus", "cpu_flags", "versions"):
        assert key in machine
    assert "avx512_bf16" in machine["cpu_flags"]
    assert document["settings"]["quick"] is True
    rows = document["results"]
    assert {(r["case"], r["implementation"]) for r in rows} == expected_pairs
    for row in rows:
        assert "error" not in row, row
        for key, kind in ROW_KEYS.items():
            value = row[key]
            assert isinstance(value, int if kind is int else (kind, int)), (key, row)
        assert row["unit"] == "chars/s"
        assert row["repeats"] == 1
        assert 0 < row["min"] <= row["median"] <= row["max"]
        assert row["compile_seconds"] >= 0
        assert row["peak_rss_mb"] > 0


@pytest.mark.slow
def test_quick_suite_probseq_tf_keras_eager(tmp_path):
    cases = ["train_charrnn", "eval_text8", "sample_1x500"]
    impls = ["probseq_graph", "tf_keras", "eager_loop"]
    document = _run_suite(tmp_path, "--in-process", "--cases", *cases, "--implementations", *impls)
    expected = {(c, i) for c in cases for i in ("probseq_graph", "tf_keras")}
    expected |= {("sample_1x500", "eager_loop")}
    expected |= {(c, "probseq") for c in cases}  # the faster variant, copied
    _check_schema(document, expected)
    assert document["matmul"]["peak_gflops"] > 0
    bf16 = document["matmul"]["bf16"]  # the same probes in bfloat16, measured
    assert bf16["peak_gflops"] > 0 and set(bf16["probes"]) == set(document["matmul"]["probes"])
    assert bf16["vs_fp32"] == pytest.approx(bf16["peak_gflops"] / document["matmul"]["peak_gflops"])
    assert set(document["flops_per_char"]) == {"train_charrnn", "eval_text8"}
    markdown = (tmp_path / "RESULTS.md").read_text()
    for case in cases:
        assert f"### {case}" in markdown
    assert "## Targets" in markdown


@pytest.mark.slow
def test_subprocess_mode_one_pair(tmp_path):
    """The default mode: each pair in a fresh process reporting its own peak RSS."""
    document = _run_suite(
        tmp_path,
        "--no-matmul",
        "--cases",
        "sample_64x64",
        "--implementations",
        "probseq_xla",
    )
    _check_schema(document, {("sample_64x64", "probseq_xla"), ("sample_64x64", "probseq")})
    assert document["matmul"] is None


def test_thread_setting_variants_run_with_their_settings(tmp_path):
    """probseq rows run after set_cpu_threads(); the two controls say what they ran with."""
    impls = ["probseq_graph", "probseq_tfthreads", "tf_keras_threads"]
    document = _run_suite(
        tmp_path, "--no-matmul", "--cases", "eval_charrnn", "--implementations", *impls
    )
    expected = {("eval_charrnn", i) for i in impls} | {("eval_charrnn", "probseq")}
    _check_schema(document, expected)
    notes = {r["implementation"]: r["notes"] for r in document["results"]}
    assert "intra_op=1 inter_op=" in notes["probseq_graph"]
    assert "intra_op=1 inter_op=" in notes["tf_keras_threads"]
    assert "intra_op=default inter_op=default" in notes["probseq_tfthreads"]


def test_loop_ceiling_runs_on_tiny_shapes():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "loop_ceiling.py"), "--batch", "4"]
    cmd += ["--hidden", "8", "--steps", "3", "--seconds", "0.05"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "chains=" in line]
    assert len(lines) == 4 and all("chars/s" in line for line in lines), proc.stdout


@pytest.mark.slow
def test_quick_suite_pytorch(tmp_path):
    """PyTorch is an optional extra (`make bench` installs it): with it the peers run;
    without it the suite still succeeds and reports them as not installed."""
    import importlib.util

    cases = ["train_charrnn", "eval_charrnn", "sample_1x500"]
    impls = ["pytorch", "pytorch_tuned"]
    args = ["--in-process", "--no-matmul", "--cases", *cases, "--implementations", *impls]
    if importlib.util.find_spec("torch") is not None:
        _check_schema(_run_suite(tmp_path, *args), {(c, i) for c in cases for i in impls})
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--repeats", "1",
           "--rounds", "1", "--warmup", "0", "--out", str(tmp_path), *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped (torch not installed)" in proc.stdout
    assert json.loads((tmp_path / "results.json").read_text())["results"] == []


def test_select_probseq_and_targets():
    from benchmarks import report, run

    rows = [
        {"case": "sample_1x500", "implementation": "probseq_graph", "median": 2.0},
        {"case": "sample_1x500", "implementation": "probseq_xla", "median": 3.0},
        # TensorFlow's default threads: reported, never chosen as `probseq`.
        {"case": "sample_1x500", "implementation": "probseq_tfthreads", "median": 5.0},
        {"case": "sample_1x500", "implementation": "pytorch", "median": 0.5},
        {"case": "sample_1x500", "implementation": "eager_loop", "median": 0.1},
    ]
    best = run.select_probseq(rows)
    assert [(r["implementation"], r["variant"], r["median"]) for r in best] == [
        ("probseq", "probseq_xla", 3.0)
    ]
    goals = report.targets({"results": rows + best, "flops_per_char": {}})
    assert ("sample_1x500", "probseq / faster PyTorch", 6.0, 4.0) in goals
    assert ("sample_1x500", "probseq / eager_loop", 30.0, 30.0) in goals


def test_flops_formula():
    from benchmarks.common import CASES, flops_per_char

    text8 = flops_per_char(CASES["train_text8"])
    assert text8["forward"] == 2 * (512 * 2048 + 512 * 27)
    assert text8["per_char"] == 3 * text8["forward"]
    charrnn = flops_per_char(CASES["eval_charrnn"])
    assert charrnn["per_char"] == 2 * (3 * 256 * 1024 + 256 * 66)


def test_merge_rounds_pools_repeats():
    from benchmarks import run

    base = {"case": "eval_text8", "implementation": "tf_keras", "load_avg_1m": [1.0, 1.0]}
    rows = [
        dict(
            base,
            median=2.0,
            rates=[1.0, 2.0, 3.0],
            compile_seconds=1.0,
            peak_rss_mb=10.0,
            cpu_per_wall=1.0,
            wall_seconds=5.0,
        ),
        dict(
            base,
            median=5.0,
            rates=[4.0, 5.0, 6.0],
            compile_seconds=3.0,
            peak_rss_mb=30.0,
            cpu_per_wall=2.0,
            wall_seconds=5.0,
        ),
        dict(base, error="timed out", wall_seconds=9.0),
    ]
    merged = run.merge_rounds(rows)
    assert merged["median"] == 3.5 and merged["min"] == 1.0 and merged["max"] == 6.0
    assert merged["repeats"] == 6 and merged["rounds"] == 2
    assert merged["round_medians"] == [2.0, 5.0]
    assert merged["compile_seconds"] == 2.0 and merged["peak_rss_mb"] == 30.0
    assert merged["failed_rounds"] == ["timed out"]


def test_bf16_rows_run_or_record_why_not(tmp_path):
    """probseq_bf16 runs with its precision; a peer that refuses bfloat16 (the Keras LSTM's
    sampler, given fp32 states under mixed_bfloat16) keeps its row, with the error."""
    cases, impls = ["eval_charrnn", "sample_64x64"], ["probseq_bf16", "tf_keras_bf16"]
    document = _run_suite(
        tmp_path, "--in-process", "--no-matmul", "--cases", *cases, "--implementations", *impls
    )
    rows = {(r["case"], r["implementation"]): r for r in document["results"]}
    for case in cases:
        assert "precision=bf16" in rows[(case, "probseq_bf16")]["notes"]
        assert rows[(case, "probseq_bf16")]["median"] > 0
    keras = rows[("eval_charrnn", "tf_keras_bf16")]
    assert "error" in keras or "mixed_bfloat16" in keras["notes"]
    assert ("sample_64x64", "tf_keras_bf16") in rows  # ran, or failed and says why


def _document(flags: dict, bf16_vs_fp32: float) -> dict:
    """A results document of two cases (made-up rates) for the report's bf16 parts."""
    rows = []
    for case, rates in {
        "train_charrnn": {"probseq": 100.0, "probseq_bf16": 150.0, "pytorch_bf16": 120.0},
        "sample_64x64": {"probseq": 100.0, "probseq_bf16": 80.0},
    }.items():
        for impl, rate in rates.items():
            rows.append(
                dict(
                    case=case,
                    implementation=impl,
                    median=rate,
                    min=rate,
                    max=rate,
                    compile_seconds=0.0,
                    peak_rss_mb=1.0,
                    round_medians=[rate],
                    shapes=dict(layers=2, hidden=256, vocab=66, steps=50, batch=128),
                )
            )
    probes = {"big": {"shape": "[8,8]x[8,8]", "gflops": 100.0}}
    bf16 = {"big": {"shape": "[8,8]x[8,8]", "gflops": 100.0 * bf16_vs_fp32}}
    return {
        "machine": {"cpu_model": "a CPU", "cpu_flags": flags, "load_avg_at_start": [0.1]},
        "settings": dict(
            command="run.py",
            started="now",
            wall_seconds=60,
            quick=False,
            warmup_calls=1,
            repeats=1,
            min_repeat_seconds=1.0,
        ),
        "matmul": {
            "peak_gflops": 100.0,
            "probes": probes,
            "bf16": {"peak_gflops": 100.0 * bf16_vs_fp32, "probes": bf16, "vs_fp32": bf16_vs_fp32},
        },
        "results": rows,
    }


def test_the_report_says_where_bf16_is_unavailable_and_judges_the_bf16_targets():
    from benchmarks import report

    avx = {"avx512_bf16": True, "amx_bf16": False}
    here = _document(avx, 1.9)
    assert report.bf16_status(here) is None
    text = report.markdown(here)
    assert "| big | [8,8]x[8,8] | 100.0 | 190.0 |" in text and "(1.90x)" in text
    assert "bf16 here: available (measured faster)" in text
    goals = {(case, what): (value, goal) for case, what, value, goal in report.targets(here)}
    assert goals["train_charrnn", "probseq_bf16 / probseq fp32 (AMX target)"] == (1.5, 2.0)
    assert goals["train_charrnn", "probseq_bf16 / fastest peer, any precision (AMX target)"] == (
        1.25, 1.5)  # fmt: skip
    assert goals["sample_64x64", "probseq_bf16 / probseq fp32 (AMX target)"] == (0.8, 1.5)
    # no bf16 instructions: the rows are still measured, and labelled unavailable
    none = _document({"avx512_bf16": False, "amx_bf16": False}, 0.3)
    assert "neither amx_bf16 nor avx512_bf16" in report.bf16_status(none)
    text = report.markdown(none)
    assert "**unavailable here**" in text and "bf16 matmuls measured 0.30x fp32" in text
    assert "| probseq_bf16 (unavailable here: emulated bf16) | 150 |" in text
    # the instructions, but measured slower: unavailable too
    assert report.bf16_status(_document(avx, 0.8)) == "bf16 matmuls measured 0.80x fp32 here"
    amx = _document({"avx512_bf16": True, "amx_bf16": True}, 3.6)
    assert ("train_charrnn", "probseq_bf16 / probseq fp32", 1.5, 2.0) in report.targets(amx)


def test_rounds_repeat_until_the_spread_allows_the_comparison(tmp_path):
    """After --rounds, pairs whose medians per round differ by more than --target-spread
    run again, up to --max-rounds; every row reports its spread."""
    args = ["--in-process", "--no-matmul", "--cases", "sample_64x64", "--implementations",
            "probseq_graph"]  # fmt: skip
    strict = _run_suite(tmp_path / "strict", *args, "--max-rounds", "3", "--target-spread", "0")
    row = next(r for r in strict["results"] if r["implementation"] == "probseq_graph")
    assert row["rounds"] == 3 and row["spread"] > 0 and row["spread_ok"] is False
    # --rounds N runs every pair N times before the spread is judged (a wide target: no more)
    fixed = _run_suite(tmp_path / "fixed", *args, "--rounds", "2", "--target-spread", "10")
    row = next(r for r in fixed["results"] if r["implementation"] == "probseq_graph")
    assert row["rounds"] == 2 and len(row["round_medians"]) == 2
    assert "(too wide)" in (tmp_path / "strict" / "RESULTS.md").read_text()
    # a wide enough target is met after the second round (unit level: no third run)
    import argparse

    from benchmarks.run import _too_spread

    runs = {("c", "i"): [{"median": 100.0}, {"median": 104.0}]}
    loose = argparse.Namespace(rounds=1, max_rounds=4, target_spread=0.05)
    assert _too_spread(runs, loose, 2) == []
    assert _too_spread(runs, argparse.Namespace(**{**vars(loose), "target_spread": 0.01}), 2)
    assert _too_spread(runs, argparse.Namespace(**{**vars(loose), "target_spread": 0.01}), 4) == []
