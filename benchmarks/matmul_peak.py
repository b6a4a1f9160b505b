"""The machine's matmul rate (GFLOP/s) with TensorFlow, fp32 and bf16, at the LSTM's sizes.

Run:  python benchmarks/matmul_peak.py [--quick] [--json]
(`benchmarks/run.py` runs it in a subprocess and stores the result in results.json.)

Measured, each as the median of several timed repeats after a warm-up:

* `big`: one eager `tf.matmul` [8192, 512] x [512, 2048] (the all-steps input/weight-
  gradient GEMM shape of the 1x512 text8 model);
* `step_chain`: a `tf.function` with a `tf.while_loop` of 64 iterations, each doing
  [128, 512] x [512, 2048] then [128, 2048] x [2048, 512] (the per-time-step recurrent
  GEMM and its backward-pass twin, batch 128), i.e. the matmuls an LSTM cannot batch
  over time, with the loop overhead included;
* `step_eager`: one eager [128, 512] x [512, 2048] op (includes per-op dispatch);
* `charrnn_big` / `charrnn_step_chain`: the same at H = 256 ([6400, 256] x [256, 1024]
  and a 50-step chain of [128, 256] x [256, 1024] / [128, 1024] x [1024, 256]).

`peak_gflops` is the best of these: the hardware limit the LSTM implementations are
compared to (a matmul costs 2*M*K*N FLOPs). The same probes run again with bfloat16
operands (`bf16`: its `probes`, `peak_gflops` and `vs_fp32`, the ratio of the peaks):
what the bf16 rows of the benchmark can gain here, measured (a CPU without bf16
instructions emulates them, slower than fp32).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _time(fn, repeats: int, min_seconds: float) -> float:
    """Median seconds per call of `fn` (warm-up first; each repeat >= min_seconds)."""
    fn()
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    calls = max(1, int(min_seconds / once))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def measure(quick: bool = False, repeats: int = 7, *, bf16: bool = True) -> dict:
    """GFLOP/s for every probe and the peak over them, in fp32 (and in `bf16`)."""
    import tensorflow as tf

    result = _probes(quick, repeats, "float32")
    result["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    result["quick"] = quick
    if bf16:
        result["bf16"] = _probes(quick, repeats, "bfloat16")
        result["bf16"]["vs_fp32"] = result["bf16"]["peak_gflops"] / result["peak_gflops"]
    return result


def _probes(quick: bool, repeats: int, dtype: str) -> dict:
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    scale = 16 if quick else 1
    min_seconds = 0.01 if quick else 0.5
    repeats = 2 if quick else repeats
    probes = {}

    def big(m, k, n, name):
        a = tf.constant(rng.standard_normal((m, k), np.float32), dtype)
        b = tf.constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), dtype)
        seconds = _time(lambda: tf.matmul(a, b), repeats, min_seconds)
        probes[name] = {"shape": f"[{m},{k}]x[{k},{n}]", "gflops": 2 * m * k * n / seconds / 1e9}

    def chain(batch, hidden, steps, name):
        # Orthonormal rows: x W W^T = x, so values neither explode nor vanish.
        q, _ = np.linalg.qr(rng.standard_normal((4 * hidden, hidden)))
        w = tf.constant(q.T.astype(np.float32), dtype)  # [H, 4H]
        wt = tf.constant(q.astype(np.float32), dtype)  # [4H, H]
        x0 = tf.constant(rng.standard_normal((batch, hidden), np.float32), dtype)

        @tf.function
        def run(x):
            def body(i, x):
                return i + 1, tf.matmul(tf.matmul(x, w), wt)

            return tf.while_loop(lambda i, x: i < steps, body, (0, x))[1]

        seconds = _time(lambda: run(x0), repeats, min_seconds)
        flops = steps * 2 * (2 * batch * hidden * 4 * hidden)
        probes[name] = {
            "shape": f"{steps} x ([{batch},{hidden}]x[{hidden},{4 * hidden}] + "
            f"[{batch},{4 * hidden}]x[{4 * hidden},{hidden}]) in a tf.while_loop",
            "gflops": flops / seconds / 1e9,
        }

    big(8192 // scale, 512 // scale, 2048 // scale, "big")
    chain(128 // scale, 512 // scale, 64, "step_chain")
    big(128 // scale, 512 // scale, 2048 // scale, "step_eager")
    big(6400 // scale, 256 // scale, 1024 // scale, "charrnn_big")
    chain(128 // scale, 256 // scale, 50, "charrnn_step_chain")
    return {"peak_gflops": max(p["gflops"] for p in probes.values()), "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    result = measure(args.quick)
    if args.json:
        print("MATMUL_RESULT " + json.dumps(result), flush=True)
        return
    bf16 = result["bf16"]["probes"]
    for name, probe in result["probes"].items():
        print(
            f"{name:20s} fp32 {probe['gflops']:8.1f} GFLOP/s, bf16 {bf16[name]['gflops']:8.1f}"
            f"  {probe['shape']}"
        )
    print(
        f"peak fp32 {result['peak_gflops']:.1f} GFLOP/s, bf16 "
        f"{result['bf16']['peak_gflops']:.1f} ({result['bf16']['vs_fp32']:.2f}x)"
    )


if __name__ == "__main__":
    main()
