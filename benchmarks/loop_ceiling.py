"""The ceiling of a TensorFlow time loop on this machine: the recurrent GEMM alone.

Times `T` dependent steps of `h <- f(h W)` in a `tf.while_loop` (`h :: [B/K, H]`,
`W :: [H, 4H]`) for `K` independent chains run concurrently, with probseq's thread
settings (`probseq.set_cpu_threads()`: one thread per op, one inter-op thread per core):

* `gemm`: `f` keeps the first `H` columns (the GEMM and a slice, nothing else);
* `gates`: `f` is the LSTM gate math (3 sigmoids, 2 tanh, the cell update).

The `gates` rate with `K = 2` bounds what any implementation built from TensorFlow ops
in a loop can reach on `eval_text8` (1x512, B=128, T=64); probseq's evaluation adds the
input gather, the output head and the loss on top. Run:

    python benchmarks/loop_ceiling.py                  # eval_text8 shapes
    python benchmarks/loop_ceiling.py --hidden 256     # charrnn's layer shape
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    import tensorflow as tf

    import probseq

    probseq.set_cpu_threads()
    hidden, steps = args.hidden, args.steps
    weights = tf.Variable(tf.random.stateless_normal([hidden, 4 * hidden], [1, 2]) * 0.02)

    def chain(h, gates: bool):
        def body(t, h):
            z = tf.matmul(h, weights)
            if not gates:
                return t + 1, z[:, :hidden]
            i, f, o, u = tf.split(z, 4, axis=-1)
            c = tf.sigmoid(f + 1.0) * h + tf.sigmoid(i) * tf.tanh(u)
            return t + 1, tf.sigmoid(o) * tf.tanh(c)

        return tf.while_loop(lambda t, h: t < steps, body, (0, h), maximum_iterations=steps)[1]

    flops_per_char = 2 * hidden * 4 * hidden
    print(f"B={args.batch} H={hidden} T={steps}, threads: probseq.set_cpu_threads()")
    for gates in (False, True):
        for chains in (1, 2):
            rows = args.batch // chains
            fn = tf.function(lambda hs, gates=gates: [chain(h, gates) for h in hs])
            hs = [tf.random.stateless_normal([rows, hidden], [3, i]) for i in range(chains)]
            fn(hs)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                fn(hs)
                count += 1
            seconds = (time.perf_counter() - start) / count
            chars = chains * rows * steps / seconds
            print(
                f"{'gates' if gates else 'gemm':5s} chains={chains}: {chars:10,.0f} chars/s "
                f"({chars * flops_per_char / 1e9:5.0f} GFLOP/s in the recurrent GEMM)"
            )
    print(f"load average: {[round(x, 2) for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
