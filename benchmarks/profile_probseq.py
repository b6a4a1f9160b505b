"""Where a compiled train / eval step spends its time, by region and op type (TF profiler).

Run (from the repository root):

    python benchmarks/profile_probseq.py                        # probseq train step, text8
    python benchmarks/profile_probseq.py --variant api_xla      # the same step under XLA
    python benchmarks/profile_probseq.py --case eval_text8 --variant keras
    python benchmarks/profile_probseq.py --threads 1,1          # single-threaded

Builds the step of `--variant` (`api_graph` / `api_xla`: probseq's public path, the step
`fit_map` compiles; `keras` / `keras_xla`: the tf_keras peer; the prototypes measured
in benchmarks/ANALYSIS.md live in git history, `benchmarks/prototypes.py` at commit
`b510e64`), runs it under
`tf.profiler.experimental` for `--steps` steps, reads the XPlane trace and sums the
duration of every executed TF op per step, grouped

* by region: forward time loop, backward (gradient) time loop, forward outside loops,
  backward outside loops, optimizer update;
* by op type (MatMul, Sigmoid, TensorListPushBack, ...).

Op durations on the two executor threads overlap, so "op time" can exceed wall time; the
difference between wall time x threads and op time is executor overhead and idling.
XLA variants show up as a single cluster op (no breakdown).
"""

from __future__ import annotations

import argparse
import collections
import glob
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import case_spec, random_batches  # noqa: E402

SKIP_PREFIXES = ("ThreadpoolListener", "ExecutorState", "ParallelFor")


def region_of(name: str) -> str:
    lowered = name.lower()
    if "adam" in lowered or "resourceapply" in lowered or "/assign" in lowered:
        return "optimizer"
    backward = name.startswith("gradient") or "/gradients/" in name or "gradient_tape" in name
    in_loop = "while/" in name or "/while_" in name or "scan/" in name
    if backward:
        return "backward loop" if in_loop else "backward outside loops"
    return "forward loop" if in_loop else "forward outside loops"


def profile(step, batches, steps: int) -> tuple[dict, float]:
    """Run `step` under the profiler; returns {(region, op_type): [ps, count]}, wall s."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="probseq-profile-")
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    totals: dict = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith(SKIP_PREFIXES) or ":" not in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                key = (region_of(op_name), op_type)
                totals[key][0] += event.duration_ps
                totals[key][1] += 1
    return totals, wall


def build_step(variant: str, spec, train: bool):
    """`step(tokens [B, T+1]) -> loss` compiled for `variant` (api_* or keras_*)."""
    import tensorflow as tf
    import tf_keras

    import probseq
    from probseq.inference import global_norm_clip

    jit = variant.endswith("_xla")
    if variant.startswith("keras"):
        from benchmarks.impl_tf_keras import build_model

        model = build_model(spec)
        model.compile(
            optimizer=tf_keras.optimizers.Adam(spec.learning_rate, global_clipnorm=spec.clip_norm),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        if train:
            return lambda tokens: model.train_on_batch(tokens[:, :-1], tokens[:, 1:])
        return lambda tokens: model.test_on_batch(tokens[:, :-1], tokens[:, 1:])
    if not variant.startswith("api"):
        raise SystemExit(f"unknown variant {variant!r}: api_graph, api_xla, keras, keras_xla")
    net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=1)
    variables = list(net.trainable_variables)
    dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps)
    optimizer = tf_keras.optimizers.Adam(spec.learning_rate)

    def loss_fn(tokens):
        return -tf.reduce_mean(dist.log_prob(tokens[:, :-1]))

    def train_step(tokens):
        with tf.GradientTape() as tape:
            loss = loss_fn(tokens)
        grads = tape.gradient(loss, variables)
        grads, _ = global_norm_clip(grads, spec.clip_norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    fn = tf.function(train_step if train else loss_fn, jit_compile=jit or None)
    return lambda tokens: float(fn(tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="train_text8")
    parser.add_argument("--variant", default="api_graph")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", default=None, help="intra,inter (e.g. 1,1)")
    parser.add_argument("--top", type=int, default=25, help="op types listed")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import tensorflow as tf

    if args.threads:
        intra, inter = (int(x) for x in args.threads.split(","))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    spec = case_spec(args.case, args.quick)
    batches = [tf.constant(b) for b in random_batches(spec)]
    step = build_step(args.variant, spec, spec.kind == "train")
    for b in batches[:3]:
        step(b)  # compile + warm up
    totals, wall = profile(step, batches, args.steps)
    per_step = {k: (ps / args.steps / 1e9, n / args.steps) for k, (ps, n) in totals.items()}
    op_ms = sum(ms for ms, _ in per_step.values())
    op_count = sum(n for _, n in per_step.values())
    print(
        f"{args.variant} on {spec.name} ({spec.layers}x{spec.hidden}, T={spec.steps}, "
        f"B={spec.batch}): wall {wall * 1e3:.1f} ms/step under the profiler "
        f"({spec.chars_per_call / wall:,.0f} chars/s), op time {op_ms:.1f} ms/step, "
        f"{op_count:.0f} ops/step"
    )
    regions = collections.defaultdict(lambda: [0.0, 0.0])
    for (region, _), (ms, n) in per_step.items():
        regions[region][0] += ms
        regions[region][1] += n
    print(f"\n{'region':26s} {'ms/step':>9s} {'share':>6s} {'ops/step':>9s} {'us/op':>7s}")
    for region, (ms, n) in sorted(regions.items(), key=lambda kv: -kv[1][0]):
        print(f"{region:26s} {ms:9.1f} {100 * ms / op_ms:5.1f}% {n:9.0f} {1e3 * ms / n:7.1f}")
    print(f"\n{'region':26s} {'op type':28s} {'ms/step':>9s} {'share':>6s} {'ops/step':>9s}")
    for (region, op_type), (ms, n) in sorted(per_step.items(), key=lambda kv: -kv[1][0])[
        : args.top
    ]:
        print(f"{region:26s} {op_type:28s} {ms:9.1f} {100 * ms / op_ms:5.1f}% {n:9.0f}")


if __name__ == "__main__":
    main()
