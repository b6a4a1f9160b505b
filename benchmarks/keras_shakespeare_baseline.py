"""Baseline for the Shakespeare quality bar: the char-rnn tutorial written in plain tf_keras.

The tutorial's model as a practitioner writes it in Keras: Embedding -> 2 x LSTM(256)
-> Dense(V), 50-character inputs predicting the next 50 characters, batch 128, Adam
1e-3, gradient clipping at global norm 5, trained with `model.fit`-style compiled steps
on random windows of the same training split for a fixed wall-clock budget. It then
reports held-out bits/char on the test split.

Metric: each test window holds 51 characters; the first is input only, the other 50
are scored (the Keras tutorial's own loss). probseq's windows metric scores all 50
characters of a window including the first, from no context at all, so this baseline's
number is, if anything, slightly favourable to Keras.

    python benchmarks/keras_shakespeare_baseline.py --budget-minutes 10
    python benchmarks/keras_shakespeare_baseline.py --tiny        # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
import tf_keras

from probseq.data import load_corpus, random_windows


def build_model(vocab_size: int, hidden_size: int, num_layers: int) -> tf_keras.Model:
    layers = [tf_keras.layers.Embedding(vocab_size, hidden_size)]
    layers += [tf_keras.layers.LSTM(hidden_size, return_sequences=True) for _ in range(num_layers)]
    layers.append(tf_keras.layers.Dense(vocab_size))
    return tf_keras.Sequential(layers)


def test_bits_per_char(model, ids: np.ndarray, num_steps: int, batch_size: int = 256) -> float:
    """Mean NLL (bits) of the last `num_steps` chars of non-overlapping windows of T+1."""
    count = (len(ids) - 1) // num_steps
    windows = np.stack([ids[i * num_steps : i * num_steps + num_steps + 1] for i in range(count)])
    windows = windows.astype(np.int32)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @tf.function
    def batch_nll(batch):
        return loss(batch[:, 1:], model(batch[:, :-1], training=False))

    total = sum(float(batch_nll(windows[i : i + batch_size])) for i in range(0, count, batch_size))
    return total / (count * num_steps) / math.log(2)


def main(args: argparse.Namespace) -> dict:
    corpus = load_corpus(args.corpus, cache_dir=args.cache_dir)
    vocab_size = len(corpus.vocabulary)
    tf_keras.utils.set_random_seed(args.seed)
    model = build_model(vocab_size, args.hidden_size, args.num_layers)
    optimizer = tf_keras.optimizers.Adam(args.learning_rate, global_clipnorm=5.0)
    model.compile(
        optimizer=optimizer,
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    data = random_windows(
        corpus.ids("train"), args.num_steps + 1, args.batch_size, seed=args.seed
    ).map(lambda w: (w[:, :-1], w[:, 1:]))
    iterator = iter(data)
    deadline = time.monotonic() + 60 * args.budget_minutes
    started = time.perf_counter()
    steps, losses = 0, []
    while time.monotonic() < deadline and steps < args.max_steps:
        inputs, targets = next(iterator)
        losses.append(float(model.train_on_batch(inputs, targets)))
        steps += 1
    train_seconds = time.perf_counter() - started
    bpc = test_bits_per_char(model, corpus.ids("test"), args.num_steps)
    results = {
        "implementation": "tf_keras",
        "corpus": args.corpus,
        "steps": steps,
        "train_seconds": train_seconds,
        "chars_per_second": steps * args.batch_size * args.num_steps / train_seconds,
        "final_train_loss_bits_per_char": float(np.mean(losses[-50:]) / math.log(2)),
        "test_bits_per_char": bpc,
        "config": vars(args),
    }
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))
    return results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="shakespeare")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=10**9)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None, help="write the results JSON here")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.hidden_size, args.num_layers, args.num_steps, args.batch_size = 8, 1, 8, 4
        args.max_steps = 3
    return args


if __name__ == "__main__":
    main(parse_args())
