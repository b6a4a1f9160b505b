"""`eager_loop` peer for `benchmarks/run.py` (not run on its own): sampling only.

How the TensorFlow tutorials sample: a Python loop that calls the Keras one-step model
(`benchmarks.impl_tf_keras.build_step_model`) once per character in eager mode (no
`tf.function`) and draws the next token with `tf.random.categorical`.
"""

from __future__ import annotations

from benchmarks.common import CaseSpec, Timer, drive

VARIANTS = {"eager_loop": None}


def run(impl: str, spec: CaseSpec, timer: Timer) -> dict:
    """Benchmark eager per-step sampling on a `sample_*` case."""
    from benchmarks.impl_tf_keras import sampler

    if spec.kind != "sample":
        raise ValueError("eager_loop is a sampling baseline only")
    result = drive(sampler(spec, "eager"), timer)
    result["notes"] = "eager Keras one-step model called from a Python loop"
    return result
