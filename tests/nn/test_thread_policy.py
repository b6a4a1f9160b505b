"""The thread set-up chosen by a measurement on this machine (issue 15), cached."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probseq.nn import threads


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

    monkeypatch.setattr(threads.subprocess, "run", fake_run)
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


def test_the_probe_process_measures_a_training_step():
    command = [sys.executable, "-m", "probseq.nn._thread_probe", "--policy", "probseq",
               "--batch", "4", "--hidden", "8", "8", "--vocab", "5", "--steps", "6",
               "--seconds", "0.1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["chars_per_s"] > 0
