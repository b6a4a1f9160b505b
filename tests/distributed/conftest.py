"""Helpers of the multi-process tests: free loopback ports, TF_CONFIG, bounded waits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from probseq.distribute import tf_config


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(ports: list[int], index: int) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env["TF_CONFIG"] = tf_config([f"127.0.0.1:{p}" for p in ports], index)
    return env


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 (closed with the process by the caller)
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=handle, stderr=subprocess.STDOUT
    )


def wait_all(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit codes; every process still running at `timeout` is killed (the test fails
    instead of hanging CI)."""
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise AssertionError(f"a worker did not finish within {timeout} s") from None
    return codes
