"""CPU thread settings for probseq's time loops, and how the loops use them.

A time loop is a chain of small dependent ops (one `[B, H] x [H, G*H]` GEMM and the gate
math per step). With TensorFlow's default settings every such op is split across all
cores, which then wait on each other; on the 2-core benchmark machine TensorFlow kept
1.3-1.4 cores busy that way. probseq does better by running *independent slices of the
batch* through their own time loops, one per core, each op on one thread:

    import probseq
    probseq.set_cpu_threads()   # once, before any TensorFlow work

The teacher-forced passes (`log_prob`, `fit_map`, `fit_variational`, `evaluate`) then cut
a large enough batch into `parallel_chains()` slices. Measured on 2 cores against the
same code with TensorFlow's default threads (benchmarks/RESULTS.md, `probseq` vs
`probseq_tfthreads`): training 1.17x / 1.28x, evaluation 1.24x / 1.69x (text8 / char-rnn
shapes), sampling 64 sequences 1.22x.
Nothing changes unless you call `set_cpu_threads` (importing probseq never changes
TensorFlow's global configuration). Small models (`cut_pays` false for their batch)
are not cut, and with one thread per op they run slower than with TensorFlow's
defaults: call `set_cpu_threads` for models and batches that `cut_pays`.
"""

from __future__ import annotations

import os

import tensorflow as tf

__all__ = [
    "THREADS_ENV",
    "cut_pays",
    "measured_thread_policy",
    "parallel_chains",
    "set_cpu_threads",
    "usable_cpus",
    "use_probseq_threads",
]

# Below this many batch rows per slice, or this much recurrent GEMM work per slice and
# step (multiply-adds, estimated as rows * sum over layers of 4 H^2), cutting the batch
# does not pay for itself: the slices' ops are then too small for the cost of handing
# them between threads. Measured: the echo task's 1x64 LSTM at batch 128 (1M per slice)
# trained 12% slower when cut; 2x256 sampling at batch 64 (17M) 1.22x faster.
MIN_CHAIN_ROWS = 16
MIN_SLICE_WORK = 2**21


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; `os.cpu_count()` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_cpu_threads(intra_op: int = 1, inter_op: int | None = None) -> None:
    """Configure TensorFlow's CPU thread pools for probseq's time loops.

    Call it once, before TensorFlow runs its first op (right after the imports). The
    defaults, one thread per op and one inter-op thread per usable CPU, let probseq run
    independent batch slices concurrently (`parallel_chains`).

    Args:
      intra_op: threads one op may use (TensorFlow's default is one per core).
      inter_op: ops that may run at once (default: the number of usable CPUs).

    Raises:
      ValueError: for a thread count below 1.
      RuntimeError: when TensorFlow is already initialized with other settings.
    """
    inter_op = usable_cpus() if inter_op is None else inter_op
    for name, value in (("intra_op", intra_op), ("inter_op", inter_op)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"set_cpu_threads: {name} must be an int >= 1, got {value!r}.")
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == (intra_op, inter_op):
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as error:
        raise RuntimeError(
            f"set_cpu_threads(intra_op={intra_op}, inter_op={inter_op}) came too late: "
            f"TensorFlow already ran ops with intra_op={current[0] or 'default'}, "
            f"inter_op={current[1] or 'default'} and cannot change them in this process. "
            "Call probseq.set_cpu_threads() right after the imports, before creating "
            "any tensor, network or distribution."
        ) from error


def cut_pays(rows: int, hidden_sizes, chains: int | None = None) -> bool:
    """Whether `rows` batch rows through layers of `hidden_sizes` are worth cutting.

    True when each of the `chains` slices (default: `usable_cpus()`) gets at least
    `MIN_CHAIN_ROWS` rows and `MIN_SLICE_WORK` multiply-adds of recurrent GEMM per step.
    Models below that run unsliced; with `set_cpu_threads()` their ops then run on one
    thread, which is slower than TensorFlow's defaults (the echo task's 1x64 LSTM
    trained 1.8x slower), so scripts can use this to decide whether to call
    `set_cpu_threads()` at all.
    """
    chains = usable_cpus() if chains is None else chains
    per_slice = rows // max(chains, 1)
    work = per_slice * sum(4 * int(h) * int(h) for h in hidden_sizes)
    return chains >= 2 and per_slice >= MIN_CHAIN_ROWS and work >= MIN_SLICE_WORK


def parallel_chains() -> int:
    """How many independent slices a teacher-forced pass cuts its batch into.

    `intra_op_parallelism_threads == 1` (as `set_cpu_threads()` configures): one slice
    per inter-op thread. Otherwise 1 (no cut): with TensorFlow's default threads, where
    every op already uses all cores, cutting measured +13% on evaluation but -7% on
    training (benchmarks/ANALYSIS.md). Slices compute the same rows as one pass, up to
    the float rounding of GEMMs of a different height.
    """
    if tf.config.threading.get_intra_op_parallelism_threads() != 1:
        return 1
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    return max(1, inter if inter > 0 else usable_cpus())


def use_probseq_threads(
    batch_size: int | None = None, hidden_sizes=None, *, measure: bool = False
) -> str | None:
    """`probseq.set_cpu_threads()` for a command-line run (faster time loops on CPU).

    Given the training batch size and the layers' hidden sizes, only when cutting such
    batches pays (`probseq.nn.threads.cut_pays`); small models keep TensorFlow's default
    threads, which suit them better. When TensorFlow is already running in this process
    (e.g. `main()` called from Python after other TensorFlow work), its thread settings
    are kept. With `measure=True` the choice is `measured_thread_policy` (a measurement
    on this machine, cached) instead of `cut_pays`. Returns what was chosen and why.
    """
    if batch_size is not None and measure:
        policy, reason = measured_thread_policy(batch_size, hidden_sizes)
        if policy == "tensorflow":
            return f"TensorFlow's defaults ({reason})"
        chosen = f"set_cpu_threads ({reason})"
    elif batch_size is not None and not cut_pays(batch_size, hidden_sizes):
        return "TensorFlow's defaults (the batch is too small to cut: cut_pays)"
    else:
        chosen = "set_cpu_threads" + (" (cut_pays)" if batch_size is not None else "")
    try:
        set_cpu_threads()
    except RuntimeError:
        return "kept as they were (TensorFlow was already running)"
    return chosen


def measured_thread_policy(batch_size: int, hidden_sizes, **options) -> tuple[str, str]:
    """`probseq.nn.measured.measured_thread_policy` (kept here, where it was first)."""
    from probseq.nn.measured import measured_thread_policy as measure

    return measure(batch_size, hidden_sizes, **options)


THREADS_ENV = "PROBSEQ_THREADS"  # "probseq" or "tensorflow": overrides measured_thread_policy
