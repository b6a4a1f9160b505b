"""Set-up choices measured on this machine, cached: the thread policy and XLA per mode.

Which thread set-up and whether XLA pays depend on the CPU (benchmarks/RESULTS.md: the
same choice won on one machine of this project's kind and lost on another), so the
entry points (the main job, `probseq train --measure-setup`) measure instead of
reading fixed thresholds. Each probe runs the real work in fresh processes
(`python -m probseq.nn._speed_probe`: TensorFlow's thread pools are fixed once it runs)
for a few seconds per side; the result is cached per CPU model, flags, usable CPUs and
shape under the probseq cache dir (`machine/`), so it costs nothing after the first time.
Environment overrides: `$PROBSEQ_THREADS` = `probseq` | `tensorflow`;
`$PROBSEQ_XLA` = `on` | `off` (every mode) or per mode, e.g.
`train=off,eval_stream=on`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

from probseq.nn import threads

__all__ = ["THREADS_ENV", "XLA_ENV", "XLA_MODES", "measured_thread_policy", "measured_xla"]

THREADS_ENV = threads.THREADS_ENV  # "probseq" or "tensorflow": overrides the measurement
XLA_ENV = "PROBSEQ_XLA"  # "on" / "off", or "mode=on|off,...": overrides the measurement
# The modes and what each uses when the measurement cannot tell (within 3%, or no probe):
# the defaults of fit_map and evaluate, measured on the first benchmark machine.
XLA_MODES = {"train": False, "eval_windows": False, "eval_stream": True}
_TIE = 0.03


def _cpu_key() -> tuple:
    from probseq.machine import cpu_info

    info = cpu_info()
    return info["cpu_model"], info["cpu_flags"], threads.usable_cpus()


def _probe(options: dict, seconds: float) -> float:
    """chars/s of one configuration, measured in a fresh process (raises on failure)."""
    command = [sys.executable, "-m", "probseq.nn._speed_probe", "--seconds", str(seconds)]
    for key, value in options.items():
        command += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-300:] or f"exit status {done.returncode}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["chars_per_s"])


def _cached(path, use_cache: bool, measure):
    """`(value, reason)` from the cache file at `path`, or `measure()` (then cached)."""
    if use_cache and path.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError):
            cached = json.loads(path.read_text())
            return cached["value"], cached["reason"] + " (cached)"
    value, reason, extra = measure()
    if use_cache and extra is not None:
        from probseq.files import atomic_write_text

        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            record = {"value": value, "reason": reason, **extra}
            atomic_write_text(path, json.dumps(record))
    return value, reason


def measured_thread_policy(
    batch_size: int, hidden_sizes, *, vocab_size: int = 84, num_steps: int = 50,
    seconds: float = 3.0, use_cache: bool = True,
) -> tuple[str, str]:  # fmt: skip
    """`("probseq" | "tensorflow", reason)`: which thread set-up trains this shape faster
    *on this machine*, measured rather than read from `cut_pays`' fixed thresholds.

    Two fresh processes time training steps of the shape for about `seconds` each, one
    after `set_cpu_threads()` (and so with the batch cut into concurrent slices where
    `cut_pays`) and one with TensorFlow's defaults; the faster wins (within 3% the
    thresholds decide). Cached per machine and shape; `$PROBSEQ_THREADS` = `probseq` or
    `tensorflow` overrides it. About 20 s the first time for a shape, nothing after.
    """
    forced = os.environ.get(THREADS_ENV)
    if forced:
        if forced not in ("probseq", "tensorflow"):
            raise ValueError(f"${THREADS_ENV} must be 'probseq' or 'tensorflow', got {forced!r}.")
        return forced, f"${THREADS_ENV}={forced}"
    hidden = [int(h) for h in hidden_sizes]
    if threads.usable_cpus() < 2:
        return "tensorflow", "one usable CPU: nothing to run concurrently"
    thresholds = "probseq" if threads.cut_pays(batch_size, hidden) else "tensorflow"
    shape = dict(batch=batch_size, hidden=hidden, vocab=vocab_size, steps=num_steps)

    def measure():
        try:
            rates = {p: _probe(dict(shape, policy=p), seconds) for p in ("probseq", "tensorflow")}
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
            return thresholds, f"probe failed ({error}); cut_pays decided", None
        ratio = rates["probseq"] / rates["tensorflow"]
        if abs(ratio - 1) < _TIE:
            policy, why = thresholds, "within 3%: cut_pays decided"
        else:
            policy, why = ("probseq" if ratio > 1 else "tensorflow"), "measured faster"
        reason = (
            f"{why}: set_cpu_threads {rates['probseq']:,.0f} chars/s vs TensorFlow's "
            f"defaults {rates['tensorflow']:,.0f} ({ratio:.2f}x), batch {batch_size}, "
            f"layers {hidden}"
        )
        return policy, reason, rates

    suffix = f"_b{batch_size}_h{'x'.join(map(str, hidden))}_v{vocab_size}_t{num_steps}"
    from probseq.machine import machine_cache_path

    return _cached(machine_cache_path("threads", *_cpu_key(), suffix=suffix), use_cache, measure)


def _forced_xla(mode: str) -> bool | None:
    """The `$PROBSEQ_XLA` override for `mode` (None: not set for it)."""
    text = os.environ.get(XLA_ENV, "").strip()
    if not text:
        return None
    values = {"on": True, "off": False}
    if text in values:
        return values[text]
    chosen = {}
    for item in text.split(","):
        key, _, value = item.strip().partition("=")
        if key not in XLA_MODES or value not in values:
            raise ValueError(
                f"${XLA_ENV} must be 'on', 'off' or 'mode=on|off,...' with modes "
                f"{sorted(XLA_MODES)}; got {text!r}."
            )
        chosen[key] = values[value]
    return chosen.get(mode)


def measured_xla(
    mode: str, batch_size: int, hidden_sizes, *, vocab_size: int = 84, num_steps: int = 50,
    policy: str | None = None, precision: str = "fp32", seconds: float = 2.0,
    use_cache: bool = True,
) -> tuple[bool, str]:  # fmt: skip
    """`(jit_compile, reason)`: whether XLA makes `mode` faster for this shape *here*.

    Modes (`XLA_MODES`): `"train"` (a training step on `[batch_size, num_steps]`
    windows), `"eval_windows"` (`evaluate` in windows of `num_steps`, `batch_size` per
    call), `"eval_stream"` (`evaluate` in stream mode over `batch_size` streams). Two
    fresh processes with the thread set-up `policy` (`"probseq"`: after
    `set_cpu_threads()`, `"tensorflow"`: the defaults; None: what this process uses)
    and the matmul `precision` (`"fp32"` or `"bf16"`) time the work with and without
    `jit_compile` for about `seconds` each; the faster wins, and within 3% (or if the
    probe fails) the mode's default (`XLA_MODES`) stays. Cached per machine, mode,
    shape, thread set-up and precision; `$PROBSEQ_XLA` overrides.
    """
    if mode not in XLA_MODES:
        raise ValueError(f"mode must be one of {sorted(XLA_MODES)}, got {mode!r}.")
    forced = _forced_xla(mode)
    if forced is not None:
        return forced, f"${XLA_ENV}={os.environ[XLA_ENV]}"
    if policy is None:
        policy = "probseq" if threads.parallel_chains() > 1 else "tensorflow"
    if policy not in ("probseq", "tensorflow"):
        raise ValueError(f"policy must be 'probseq', 'tensorflow' or None, got {policy!r}.")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    hidden = [int(h) for h in hidden_sizes]
    default = XLA_MODES[mode]
    options = dict(
        mode=mode, policy=policy, batch=batch_size, hidden=hidden, vocab=vocab_size,
        steps=num_steps, precision=precision,
    )  # fmt: skip

    def measure():
        try:
            rates = {jit: _probe(dict(options, jit=int(jit)), seconds) for jit in (False, True)}
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
            return default, f"probe failed ({error}); the default for {mode} stays", None
        ratio = rates[True] / rates[False]
        if abs(ratio - 1) < _TIE:
            chosen, why = default, "within 3%: the default stays"
        else:
            chosen, why = ratio > 1, "measured faster"
        reason = (
            f"{why}: XLA {rates[True]:,.0f} chars/s vs no XLA {rates[False]:,.0f} "
            f"({ratio:.2f}x), {mode}, batch {batch_size}, layers {hidden}, {policy} threads, "
            f"{precision}"
        )
        return chosen, reason, {"xla": rates[True], "no_xla": rates[False]}

    from probseq.machine import machine_cache_path

    suffix = f"_{mode}_{policy}_{precision}_b{batch_size}_h{'x'.join(map(str, hidden))}"
    suffix += f"_v{vocab_size}"
    path = machine_cache_path("xla", *_cpu_key(), suffix=f"{suffix}_t{num_steps}")
    return _cached(path, use_cache, measure)
