"""One side of a measured set-up choice (`probseq.nn.measured`): times one configuration.

Run as `python -m probseq.nn._speed_probe --mode train|eval_windows|eval_stream
--policy probseq|tensorflow --jit 0|1 --batch B --hidden H [H ...] --vocab V --steps T
--seconds S [--precision fp32|bf16]`: a fresh process (TensorFlow's thread pools are
fixed once it runs), the given thread policy, then the mode's work on random tokens in
that precision, timed for about `S` seconds after two warm-up calls:

* `train`: training steps of `LSTMAutoregressive` on `[B, T]` windows (the main job's
  loss and optimizer), the step compiled with `jit_compile` = `--jit`;
* `eval_windows`: `probseq.evaluation.evaluate` in windows mode, `batch_size=B`;
* `eval_stream`: `evaluate` in stream mode over `B` streams.

Prints one JSON line: `chars_per_s`.
"""

from __future__ import annotations

import argparse
import json
import time

MODES = ("train", "eval_windows", "eval_stream")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES, default="train")
    parser.add_argument("--policy", choices=("probseq", "tensorflow"), required=True)
    parser.add_argument("--jit", type=int, choices=(0, 1), default=0)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--hidden", type=int, nargs="+", required=True)
    parser.add_argument("--vocab", type=int, default=84)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args(argv)
    import numpy as np

    from probseq.nn.threads import set_cpu_threads

    if args.policy == "probseq":
        set_cpu_threads()
    from probseq import LSTMNetwork

    hidden = args.hidden
    if len(set(hidden)) != 1:
        raise SystemExit("the probe runs stacks of equal layers")
    network = LSTMNetwork(args.vocab, hidden[0], len(hidden), seed=0)
    rng = np.random.default_rng(0)
    if args.mode == "train":
        call, chars = _train_step(network, args, rng), args.batch * args.steps
    else:
        call, chars = _evaluation(network, args, rng)
    call()
    call()
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < args.seconds:
        call()
        count += 1
    seconds = time.perf_counter() - start
    print(json.dumps({"chars_per_s": count * chars / seconds}))


def _train_step(network, args, rng):
    import tensorflow as tf
    import tf_keras

    from probseq import LSTMAutoregressive

    distribution = LSTMAutoregressive(network, args.steps, precision=args.precision)
    optimizer = tf_keras.optimizers.Adam(1e-3)
    tokens = tf.constant(rng.integers(0, args.vocab, size=(args.batch, args.steps)), tf.int32)

    @tf.function(jit_compile=bool(args.jit))
    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(distribution.log_prob(tokens))
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    return lambda: step().numpy()


def _evaluation(network, args, rng):
    """`(call, chars per call)`: one `evaluate` over a few batches (or a stream chunk)."""
    from probseq.evaluation import evaluate

    if args.mode == "eval_windows":
        size, options = 4 * args.batch * args.steps, dict(batch_size=args.batch)
    else:  # every stream long enough for a few of evaluate's chunks
        size, options = max(4000 * args.batch, 8 * args.steps), dict(num_streams=args.batch)
    ids = rng.integers(0, args.vocab, size=size)
    mode = args.mode.removeprefix("eval_")

    def call():
        options.update(jit_compile=bool(args.jit), precision=args.precision)
        evaluate(network, ids, num_steps=args.steps, mode=mode, **options)

    return call, size


if __name__ == "__main__":
    main()
