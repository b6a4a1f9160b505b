"""Shared pieces of the benchmark suite: case definitions, FLOP counts and the timer.

Not a script; imported by `benchmarks/run.py` and the `impl_*.py` modules. The
protocol every implementation follows (see `Timer`):

1. the first call (tracing / compilation / first execution) is timed on its own;
2. `warmup_calls` more calls are run and timed, not reported; their median estimates
   the steady-state time per call;
3. `repeats` timed repeats follow, each of `k` consecutive calls where `k` is chosen so
   that a repeat lasts at least `min_repeat_seconds`; each repeat gives one rate
   (characters per second). The report gives the median, min and max over repeats.

`compile_seconds` is the first call minus one steady-state call (>= 0).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time

import numpy as np

__all__ = [
    "CASES",
    "QUICK_CASES",
    "CaseSpec",
    "Timer",
    "case_spec",
    "drive",
    "flops_per_char",
    "random_batches",
]


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: what is run and at which shapes.

    Attributes:
      name: case name (`train_text8`, ...).
      kind: `"train"`, `"eval"` or `"sample"`.
      vocab: number of symbols `V`.
      hidden: LSTM units per layer `H`.
      layers: stacked LSTM layers.
      steps: sequence length `T` (train/eval window, or characters sampled).
      batch: sequences per call.
      learning_rate: Adam learning rate (train).
      clip_norm: global-norm gradient clipping (train), None for none.
      num_batches: distinct data batches cycled through (train/eval).
    """

    name: str
    kind: str
    vocab: int
    hidden: int
    layers: int
    steps: int
    batch: int
    learning_rate: float = 1e-3
    clip_norm: float | None = None
    num_batches: int = 8

    @property
    def chars_per_call(self) -> int:
        """Characters processed (train/eval) or generated (sample) by one call."""
        return self.batch * self.steps


CASES: dict[str, CaseSpec] = {
    spec.name: spec
    for spec in [
        CaseSpec("train_text8", "train", 27, 512, 1, 64, 128, learning_rate=5e-3),
        CaseSpec("train_charrnn", "train", 66, 256, 2, 50, 128, clip_norm=5.0),
        CaseSpec("eval_text8", "eval", 27, 512, 1, 64, 128),
        CaseSpec("eval_charrnn", "eval", 66, 256, 2, 50, 128),
        CaseSpec("sample_1x500", "sample", 66, 256, 2, 500, 1),
        CaseSpec("sample_64x64", "sample", 66, 256, 2, 64, 64),
    ]
}

# Tiny shapes with the same structure (layers, clipping, kinds) for tests (`--quick`).
QUICK_CASES: dict[str, CaseSpec] = {
    "train_text8": dataclasses.replace(CASES["train_text8"], hidden=16, steps=8, batch=4),
    "train_charrnn": dataclasses.replace(
        CASES["train_charrnn"], vocab=12, hidden=8, steps=6, batch=4
    ),
    "eval_text8": dataclasses.replace(CASES["eval_text8"], hidden=16, steps=8, batch=4),
    "eval_charrnn": dataclasses.replace(
        CASES["eval_charrnn"], vocab=12, hidden=8, steps=6, batch=4
    ),
    "sample_1x500": dataclasses.replace(CASES["sample_1x500"], vocab=12, hidden=8, steps=10),
    "sample_64x64": dataclasses.replace(
        CASES["sample_64x64"], vocab=12, hidden=8, steps=6, batch=4
    ),
}


def case_spec(name: str, quick: bool = False) -> CaseSpec:
    """The spec of case `name` (tiny shapes if `quick`)."""
    table = QUICK_CASES if quick else CASES
    if name not in table:
        raise ValueError(f"unknown case {name!r}; known: {sorted(table)}")
    return table[name]


def flops_per_char(spec: CaseSpec, kind: str | None = None) -> dict[str, float]:
    """Matmul FLOPs per character of the LSTM (multiply-add = 2 FLOPs).

    Forward, per character and layer `l`: `2 * (I_l * 4H + H * 4H)` where the input
    width `I_l` is `H` for layers above the first; the first layer's input projection is
    a row gather (0 FLOPs; peers that multiply a one-hot vector spend `2 * V * 4H`,
    reported as `forward_one_hot_input`). Plus the output projection `2 * H * V`.
    Training counts forward + backward as `3 * forward` (the backward pass does two
    matmuls per forward matmul: input gradient and weight gradient). Elementwise gate math
    and the softmax are not counted.
    """
    kind = kind or spec.kind
    h, v = spec.hidden, spec.vocab
    recurrent = spec.layers * h * 4 * h
    upper_inputs = (spec.layers - 1) * h * 4 * h
    forward = 2.0 * (recurrent + upper_inputs + h * v)
    one_hot = forward + 2.0 * v * 4 * h
    factor = 3.0 if kind == "train" else 1.0
    return {
        "forward": forward,
        "per_char": factor * forward,
        "per_char_one_hot_input": factor * one_hot,
        "factor": factor,
    }


def random_batches(spec: CaseSpec, seed: int = 0) -> np.ndarray:
    """`[num_batches, batch, steps + 1]` int32 uniform random tokens (data content does not
    change the amount of work). Train/eval use `[..., :-1]` as inputs and `[..., 1:]` as
    targets; probseq scores a window `[..., :steps]` from its start step instead, the same
    number of LSTM steps and predictions.
    """
    rng = np.random.default_rng(seed)
    return rng.integers(0, spec.vocab, size=(spec.num_batches, spec.batch, spec.steps + 1)).astype(
        np.int32
    )


class Timer:
    """Times a sequence of calls; feed it one `tick()` after each completed call.

    Args:
      units_per_call: characters per call.
      repeats: number of timed repeats.
      min_repeat_seconds: each repeat lasts at least this long (>= 1 call).
      warmup_calls: untimed calls after the first one.
    """

    def __init__(
        self,
        units_per_call: float,
        repeats: int,
        min_repeat_seconds: float,
        warmup_calls: int = 2,
    ):
        self.units_per_call = units_per_call
        self.repeats = repeats
        self.min_repeat_seconds = min_repeat_seconds
        self.warmup_calls = warmup_calls
        self._t0: float | None = None
        self._last: float | None = None
        self.first_call: float | None = None
        self.warmup_times: list[float] = []
        self.calls_per_repeat: int | None = None
        self.rates: list[float] = []
        self.repeat_seconds: list[float] = []
        self._in_repeat = 0
        self._repeat_start: float | None = None
        self._cpu_start: float | None = None
        self.cpu_seconds: list[float] = []

    def start(self) -> None:
        """Mark the start of the first call."""
        self._t0 = self._last = time.perf_counter()

    @property
    def done(self) -> bool:
        return len(self.rates) >= self.repeats

    @property
    def calls_remaining(self) -> int | None:
        """Calls still needed, once known (after the warm-up)."""
        if self.calls_per_repeat is None:
            return None
        left = self.repeats - len(self.rates)
        return max(0, left * self.calls_per_repeat - self._in_repeat)

    @property
    def calls_before_calibration(self) -> int:
        """Calls still needed before `calls_remaining` is known."""
        done = (self.first_call is not None) + len(self.warmup_times)
        return max(0, 1 + self.warmup_calls - done)

    def tick(self) -> bool:
        """Record the end of one call; returns True when all repeats are done."""
        now = time.perf_counter()
        if self._t0 is None:
            raise RuntimeError("Timer.start() was not called")
        elapsed, self._last = now - self._last, now
        if self.first_call is None:
            self.first_call = elapsed
        elif len(self.warmup_times) < self.warmup_calls:
            self.warmup_times.append(elapsed)
        if self.calls_per_repeat is None:
            if self.first_call is not None and len(self.warmup_times) >= self.warmup_calls:
                estimate = self.steady_estimate
                self.calls_per_repeat = max(1, math.ceil(self.min_repeat_seconds / estimate))
                self._repeat_start = now
                self._cpu_start = time.process_time()
            return False
        self._in_repeat += 1
        if self._in_repeat >= self.calls_per_repeat:
            seconds = now - self._repeat_start
            cpu = time.process_time()
            self.repeat_seconds.append(seconds)
            self.cpu_seconds.append(cpu - self._cpu_start)
            self.rates.append(self._in_repeat * self.units_per_call / seconds)
            self._in_repeat = 0
            self._repeat_start = now
            self._cpu_start = cpu
        return self.done

    @property
    def steady_estimate(self) -> float:
        """Seconds per call after warm-up (median of the warm-up calls, or the repeats)."""
        if self.repeat_seconds:
            return statistics.median(self.repeat_seconds) / self.calls_per_repeat
        if self.warmup_times:
            return max(statistics.median(self.warmup_times), 1e-9)
        return max(self.first_call or 1e-9, 1e-9)

    def result(self) -> dict:
        """Summary: median/min/max characters per second over repeats, compile seconds."""
        if not self.rates:
            raise RuntimeError("no timed repeat was completed")
        return {
            "median": statistics.median(self.rates),
            "min": min(self.rates),
            "max": max(self.rates),
            "unit": "chars/s",
            "repeats": len(self.rates),
            "calls_per_repeat": self.calls_per_repeat,
            "seconds_per_call": self.steady_estimate,
            "first_call_seconds": self.first_call,
            "compile_seconds": max(0.0, self.first_call - self.steady_estimate),
            "rates": self.rates,
            # CPU time of all this process's threads per call, and CPU / wall time (2 on
            # two fully used cores; lower under contention or when single-threaded).
            "cpu_seconds_per_call": statistics.median(self.cpu_seconds) / self.calls_per_repeat,
            "cpu_per_wall": statistics.median(
                c / w for c, w in zip(self.cpu_seconds, self.repeat_seconds, strict=True)
            ),
        }


def drive(call, timer: Timer) -> dict:
    """Run `call()` (which must block until its work is done) under `timer` until done."""
    timer.start()
    while True:
        call()
        if timer.tick():
            return timer.result()


def thread_settings() -> str:
    """The process's TensorFlow thread settings, as the notes of a result row."""
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "default"
    return f"threads intra_op={intra} inter_op={inter}"
