"""What machine a number was measured on: CPU model, cores and the CPU flags that change
TensorFlow's speed (AVX-512, bf16, AMX), read from `/proc/cpuinfo` at run time."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = [
    "PRECISIONS",
    "SPEED_FLAGS",
    "bf16_matmul_speedup",
    "choose_precision",
    "cpu_info",
    "describe_machine",
    "matmul_gflops",
]

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


def matmul_gflops(size: int = 1024, seconds: float = 0.3, dtype: str = "float32") -> float:
    """This machine's matmul rate with TensorFlow right now (GFLOP/s, `dtype` fp32 or
    `"bfloat16"`): the median of timed eager `[size, size] x [size, size]` products over
    about `seconds`, after a warm-up. A quick probe to report next to a time-budgeted
    result (a loaded machine shows as a low figure); `benchmarks/matmul_peak.py`
    measures the peak properly."""

    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).standard_normal((size, size), np.float32), dtype)
    tf.matmul(a, a).numpy()  # warm-up
    return 2 * size**3 / _median_seconds(lambda: tf.matmul(a, a).numpy(), seconds) / 1e9


def _median_seconds(call, seconds: float) -> float:
    """Median wall time of `call()` over repeats filling about `seconds` (at least 3)."""
    import statistics
    import time

    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# The matmul shapes of the main job's 2x256 LSTM at batch 128 (the recurrent step and the
# all-steps projection) and of a 512-unit model: what bf16 would speed up.
_PROBE_SHAPES = ((128, 256, 1024), (6400, 256, 1024), (128, 512, 2048))
PRECISIONS = ("auto", "fp32", "bf16")


def bf16_matmul_speedup(seconds: float = 0.2) -> dict:
    """Measured here and now: fp32 and bf16 GFLOP/s of compiled matmuls at LSTM sizes,
    and `speedup`, the geometric mean over `_PROBE_SHAPES` of fp32 time / bf16 time (a
    CPU without bf16 instructions emulates them, typically well below 1)."""
    import math

    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    rows, ratios = [], []
    for m, k, n in _PROBE_SHAPES:
        a = rng.standard_normal((m, k), np.float32)
        b = rng.standard_normal((k, n), np.float32)
        rates = {}
        for name, dtype in (("fp32", tf.float32), ("bf16", tf.bfloat16)):
            x, y = tf.constant(a, dtype), tf.constant(b, dtype)
            fn = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
            fn(x, y).numpy()  # trace and warm up
            median = _median_seconds(lambda fn=fn, x=x, y=y: fn(x, y).numpy(), seconds)
            rates[name] = 2 * m * k * n / median / 1e9
        ratios.append(rates["bf16"] / rates["fp32"])
        rows.append(
            {"shape": [m, k, n], "fp32_gflops": rates["fp32"], "bf16_gflops": rates["bf16"]}
        )
    speedup = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return {"speedup": speedup, "shapes": rows}


def machine_cache_path(kind: str, *key, suffix: str = "") -> Path:
    """Where a per-machine measurement is cached: `<cache dir>/machine/<kind>_<hash>
    <suffix>.json`, the hash over `key` (e.g. the CPU model and flags)."""
    import hashlib

    from probseq.data.cache import resolve_cache_dir

    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:16]
    return resolve_cache_dir() / "machine" / f"{kind}_{digest}{suffix}.json"


def choose_precision(requested: str = "auto", *, use_cache: bool = True) -> tuple[str, str]:
    """`(precision, reason)`: `"fp32"` or `"bf16"` for a requested `"auto" | "fp32" |
    "bf16"`.

    `auto` picks bf16 only where the CPU has bf16 instructions (`amx_bf16` or
    `avx512_bf16`) and `bf16_matmul_speedup()` measures bf16 matmuls at least 1.2x
    faster here. The probe (about a second) is cached per CPU model and flags under the
    probseq cache dir (`$PROBSEQ_CACHE_DIR`, `machine/`); delete the file, or pass
    `use_cache=False`, to measure again. An explicit `"fp32"` / `"bf16"` is returned as
    is (bf16 on a CPU without the instructions runs, emulated and slow, and says so).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}.")
    info = cpu_info()
    flags = [flag for flag in ("amx_bf16", "avx512_bf16") if flag in info["cpu_flags"]]
    if requested == "fp32":
        return "fp32", "requested"
    if requested == "bf16":
        note = f"requested ({' '.join(flags)})" if flags else "requested; this CPU has no bf16 "
        return "bf16", note if flags else note + "instructions (emulated, slow)"
    if not flags:
        return "fp32", "auto: this CPU has neither amx_bf16 nor avx512_bf16"
    probe = None
    path = machine_cache_path("bf16_probe", info["cpu_model"], info["cpu_flags"])
    if use_cache and path.exists():
        try:
            probe = json.loads(path.read_text())
        except (OSError, ValueError):
            probe = None
    if probe is None:
        probe = bf16_matmul_speedup()
        if use_cache:
            from probseq.files import atomic_write_text

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(probe, indent=2))
            except OSError:
                pass  # a read-only cache: measure again next time
    speedup = probe["speedup"]
    chosen = "bf16" if speedup >= 1.2 else "fp32"
    return chosen, (
        f"auto: {' '.join(flags)}; bf16 matmuls measured {speedup:.2f}x fp32 here "
        f"({'>=' if chosen == 'bf16' else '<'} 1.2x)"
    )
