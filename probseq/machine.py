"""What machine a number was measured on: CPU model, cores and the CPU flags that change
TensorFlow's speed (AVX-512, bf16, AMX), read from `/proc/cpuinfo` at run time."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["SPEED_FLAGS", "cpu_info", "describe_machine", "matmul_gflops"]

SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    """`cpu_model`, `logical_cpus`, `usable_cpus` and `cpu_flags` (those of `SPEED_FLAGS`
    the CPU has); `cpu_model` falls back to `platform.processor()` off Linux."""
    info = {
        "cpu_model": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": [],
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            info["cpu_model"] = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            info["cpu_flags"] = [flag for flag in SPEED_FLAGS if flag in flags]
            break
    return info


def describe_machine(info: dict | None = None) -> str:
    """One line: `"<model>, <n> CPUs, flags: avx512f avx512_bf16"`."""
    info = info or cpu_info()
    cpus = info.get("usable_cpus") or info.get("logical_cpus")
    flags = " ".join(info.get("cpu_flags") or []) or "none of " + "/".join(SPEED_FLAGS[2:])
    return f"{info.get('cpu_model')}, {cpus} CPUs, flags: {flags}"


def matmul_gflops(size: int = 1024, seconds: float = 0.3) -> float:
    """This machine's fp32 matmul rate with TensorFlow right now (GFLOP/s): the median
    of timed eager `[size, size] x [size, size]` products over about `seconds`, after a
    warm-up. A quick probe to report next to a time-budgeted result (a loaded machine
    shows as a low figure); `benchmarks/matmul_peak.py` measures the peak properly."""
    import statistics
    import time

    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).standard_normal((size, size), np.float32))
    tf.matmul(a, a).numpy()  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        tf.matmul(a, a).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9
