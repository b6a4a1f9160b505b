"""One side of the thread-policy probe (`probseq.nn.threads.measured_thread_policy`).

Run as `python -m probseq.nn._thread_probe --policy probseq|tensorflow --batch B
--hidden H [H ...] --vocab V --steps T --seconds S`: a fresh process (TensorFlow's thread
pools are fixed once it runs), the given policy, then training steps of a
`LSTMAutoregressive` on random tokens (the main job's loss and optimizer) timed for
about `S` seconds after two warm-up steps. Prints one JSON line: `chars_per_s`.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", choices=("probseq", "tensorflow"), required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--hidden", type=int, nargs="+", required=True)
    parser.add_argument("--vocab", type=int, default=84)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    import numpy as np
    import tensorflow as tf

    from probseq.nn.threads import set_cpu_threads

    if args.policy == "probseq":
        set_cpu_threads()
    from probseq import LSTMAutoregressive, LSTMNetwork

    hidden = args.hidden
    if len(set(hidden)) != 1:
        raise SystemExit("the probe runs stacks of equal layers")
    network = LSTMNetwork(args.vocab, hidden[0], len(hidden), seed=0)
    distribution = LSTMAutoregressive(network, args.steps)
    import tf_keras

    optimizer = tf_keras.optimizers.Adam(1e-3)
    tokens = tf.constant(
        np.random.default_rng(0).integers(0, args.vocab, size=(args.batch, args.steps)),
        tf.int32,
    )

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(distribution.log_prob(tokens))
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    step().numpy()
    step().numpy()
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < args.seconds:
        step().numpy()
        count += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"chars_per_s": count * args.batch * args.steps / seconds}))


if __name__ == "__main__":
    main()
