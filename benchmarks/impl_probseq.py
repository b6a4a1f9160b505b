"""probseq through its public API, for `benchmarks/run.py` (not run on its own).

Variants (one fresh process each; `run.py` reports the faster of the first two as
`probseq`):

* `probseq_graph`: `tf.function` without XLA, after `probseq.set_cpu_threads()` (the
  documented CPU set-up: one thread per op, one inter-op thread per core, so the batch
  runs as concurrent slices; see `probseq/nn/threads.py`).
* `probseq_xla`: the same with `jit_compile=True`.
* `probseq_tfthreads`: `probseq_graph` with TensorFlow's default thread settings (no
  `set_cpu_threads` call): what a user who skips the set-up gets. Reported, never
  selected as `probseq`.
* `probseq_bf16`: `probseq_graph` with `precision="bf16"` (bfloat16 matmuls, fp32 gates,
  states, loss and weights): its own row, next to the fp32 `probseq`.

Train: `probseq.inference.fit_map` on `LSTMAutoregressive(net, T)` (maximum likelihood,
`prior=None`, tf_keras Adam, global-norm clipping where the case has it); a `Callback`
ticks the timer after every step, so the loop's own per-step work (reading the loss,
the learning rate) is included. Eval: `probseq.evaluation.evaluate` in windows mode with
`batch_size = B` (its `progress` hook ticks the timer after every batch). Sample:
`LSTMAutoregressive(net, T).sample(B, seed)` under `tf.function`, a fresh tensor seed per
call (no retracing), result fetched as NumPy.
"""

from __future__ import annotations

import itertools

from benchmarks.common import CaseSpec, Timer, drive, random_batches, thread_settings

# variant -> (jit_compile, call probseq.set_cpu_threads(), precision)
VARIANTS = {
    "probseq_graph": (False, True, "fp32"),
    "probseq_xla": (True, True, "fp32"),
    "probseq_tfthreads": (False, False, "fp32"),
    "probseq_bf16": (False, True, "bf16"),
}


def run(impl: str, spec: CaseSpec, timer: Timer) -> dict:
    """Benchmark variant `impl` on `spec`; returns the timer's result plus notes."""
    import tensorflow as tf

    import probseq
    from probseq.nn.threads import use_probseq_threads

    jit, threads, precision = VARIANTS[impl]
    if threads:  # kept as is when TensorFlow already runs (run.py --in-process)
        use_probseq_threads()
    net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=1)
    if spec.kind == "train":
        result = _train(spec, net, timer, jit, precision)
    elif spec.kind == "eval":
        result = _eval(spec, net, timer, jit, precision)
    else:
        dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps, precision=precision)
        fn = tf.function(lambda seed: dist.sample(spec.batch, seed=seed), jit_compile=jit)
        seeds = (tf.constant([i, 7], tf.int32) for i in itertools.count())
        result = drive(lambda: fn(next(seeds)).numpy(), timer)
        result["traces"] = fn.experimental_get_tracing_count()
    result["notes"] = f"jit_compile={jit}, precision={precision}, {thread_settings()}"
    return result


def _train(spec: CaseSpec, net, timer: Timer, jit: bool, precision: str) -> dict:
    import tensorflow as tf

    import probseq
    from probseq.inference import Callback, fit_map

    dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps, precision=precision)
    batches = [tf.constant(b[:, : spec.steps]) for b in random_batches(spec)]

    class Tick(Callback):
        def on_step(self, info):
            return timer.tick()

    timer.start()
    fit_map(
        dist,
        itertools.cycle(batches),
        num_examples=10**6,
        num_steps=10**9,
        prior=None,
        learning_rate=spec.learning_rate,
        clip_norm=spec.clip_norm,
        callbacks=[Tick()],
        jit_compile=jit,
    )
    return timer.result()


def _eval(spec: CaseSpec, net, timer: Timer, jit: bool, precision: str) -> dict:
    import numpy as np

    from probseq.evaluation import evaluate

    stream = random_batches(spec)[..., : spec.steps].reshape(-1)

    def run_batches(num_batches: int) -> None:
        ids = np.resize(stream, num_batches * spec.batch * spec.steps)  # repeats cyclically
        evaluate(
            net,
            ids,
            num_steps=spec.steps,
            batch_size=spec.batch,
            jit_compile=jit,
            precision=precision,
            progress=lambda done, total: timer.tick(),
        )

    timer.start()
    run_batches(timer.calls_before_calibration)
    run_batches(timer.calls_remaining)
    return timer.result()
