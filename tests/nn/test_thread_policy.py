"""Set-up choices measured on this machine (issue 15), cached: threads and XLA per mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probseq.nn import measured, threads


def test_the_faster_measured_policy_wins_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    rates = {"probseq": 900.0, "tensorflow": 1000.0}
    calls = []

    def fake_run(command, **kwargs):
        policy = command[command.index("--policy") + 1]
        calls.append(policy)
        out = json.dumps({"chars_per_s": rates[policy]})
        return subprocess.CompletedProcess(command, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(measured.subprocess, "run", fake_run)
    # a shape cut_pays would cut, but TensorFlow's defaults measured faster here
    assert threads.cut_pays(128, [256, 256], 2)
    policy, reason = threads.measured_thread_policy(128, [256, 256])
    assert policy == "tensorflow" and "0.90x" in reason and calls == ["probseq", "tensorflow"]
    policy, reason = threads.measured_thread_policy(128, [256, 256])  # cached: no new probe
    assert policy == "tensorflow" and reason.endswith("(cached)") and len(calls) == 2
    rates["probseq"] = 1500.0
    assert threads.measured_thread_policy(64, [256, 256])[0] == "probseq"  # its own shape
    rates["probseq"] = 1010.0  # a tie: the thresholds decide
    policy, reason = threads.measured_thread_policy(128, [256, 256], use_cache=False)
    assert policy == "probseq" and "cut_pays decided" in reason
    monkeypatch.setenv(threads.THREADS_ENV, "probseq")
    assert threads.measured_thread_policy(8, [16]) == ("probseq", "$PROBSEQ_THREADS=probseq")
    monkeypatch.setenv(threads.THREADS_ENV, "fast")
    with pytest.raises(ValueError, match="PROBSEQ_THREADS must be"):
        threads.measured_thread_policy(8, [16])


def _fake_probe(monkeypatch, rate_of):
    """Replace the probe processes by `rate_of(options) -> chars/s`; returns the calls."""
    calls = []

    def fake_run(command, **kwargs):
        options = {}
        for index, item in enumerate(command):
            if item.startswith("--"):
                options[item[2:]] = command[index + 1]
        calls.append(options)
        out = json.dumps({"chars_per_s": rate_of(options)})
        return subprocess.CompletedProcess(command, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(measured.subprocess, "run", fake_run)
    return calls


def test_xla_per_mode_is_measured_cached_and_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(measured.XLA_ENV, raising=False)
    rates = {("train", "1"): 500.0, ("train", "0"): 1000.0, ("eval_stream", "1"): 3000.0,
             ("eval_stream", "0"): 1000.0, ("eval_windows", "1"): 1010.0,
             ("eval_windows", "0"): 1000.0}  # fmt: skip
    calls = _fake_probe(monkeypatch, lambda o: rates[o["mode"], o["jit"]])
    jit, reason = measured.measured_xla("train", 128, [256, 256], policy="probseq")
    assert jit is False and "0.50x" in reason and "probseq threads" in reason
    assert [c["jit"] for c in calls] == ["0", "1"] and calls[0]["policy"] == "probseq"
    assert calls[0]["batch"] == "128" and calls[0]["mode"] == "train"
    assert calls[0]["precision"] == "fp32"
    jit, reason = measured.measured_xla("train", 128, [256, 256], policy="probseq")
    assert jit is False and reason.endswith("(cached)") and len(calls) == 2
    # another thread set-up is another measurement
    measured.measured_xla("train", 128, [256, 256], policy="tensorflow")
    assert len(calls) == 4
    measured.measured_xla("train", 128, [256, 256], policy="probseq", precision="bf16")
    assert len(calls) == 6 and calls[-1]["precision"] == "bf16"  # its own measurement
    jit, reason = measured.measured_xla("eval_stream", 1, [256, 256], policy="probseq")
    assert jit is True and "3.00x" in reason
    # a tie keeps the mode's default (no XLA for windows)
    jit, reason = measured.measured_xla("eval_windows", 256, [256, 256], policy="probseq")
    assert jit is False and "the default stays" in reason
    monkeypatch.setenv(measured.XLA_ENV, "on")
    assert measured.measured_xla("train", 8, [16])[0] is True
    monkeypatch.setenv(measured.XLA_ENV, "train=off,eval_windows=on")
    assert measured.measured_xla("eval_windows", 8, [16]) == (
        True, "$PROBSEQ_XLA=train=off,eval_windows=on")  # fmt: skip
    assert measured.measured_xla("train", 8, [16])[0] is False
    monkeypatch.setenv(measured.XLA_ENV, "sample=on")
    with pytest.raises(ValueError, match="PROBSEQ_XLA must be"):
        measured.measured_xla("train", 8, [16])
    monkeypatch.delenv(measured.XLA_ENV)
    with pytest.raises(ValueError, match="mode must be one of"):
        measured.measured_xla("sample", 8, [16])
    with pytest.raises(ValueError, match="precision must be"):
        measured.measured_xla("train", 8, [16], policy="probseq", precision="fp16")


def test_a_failed_probe_keeps_the_default_and_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(measured.XLA_ENV, raising=False)

    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="Killed")

    monkeypatch.setattr(measured.subprocess, "run", failing)
    jit, reason = measured.measured_xla("eval_stream", 1, [32], policy="probseq")
    assert jit is True and "probe failed (Killed)" in reason
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    "mode, jit, precision",
    [("train", "0", "bf16"), ("train", "1", "fp32"), ("eval_windows", "0", "bf16"),
     ("eval_stream", "1", "fp32")],
)  # fmt: skip
def test_the_probe_process_measures_each_mode(mode, jit, precision):
    command = [sys.executable, "-m", "probseq.nn._speed_probe", "--mode", mode, "--jit", jit,
               "--precision", precision,
               "--policy", "probseq", "--batch", "4", "--hidden", "8", "8", "--vocab", "5",
               "--steps", "6", "--seconds", "0.1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["chars_per_s"] > 0
