"""Initialization ablation: how fast a 2x256 char-LM learns under each weight init.

Trains `LSTMNetwork(V, 256, 2)` on random 50-character windows of the Shakespeare
training split (batch 128, Adam 1e-3, no prior, clip 250) for `--steps` steps from each
init and prints the mean training NLL (bits/char) of the last 20 steps. The variants
re-create the earlier defaults explicitly, so the table in docs/ARCHITECTURE.md can be
re-run against the current default:

- `per_gate_glorot`: one orthogonal H x H block per gate, Glorot token table (the first
  version);
- `joint_orthogonal`: orthonormal rows across all gates, Glorot token table;
- `big_table`: one block per gate, token table with 4x the Glorot limit;
- `default`: the current `LSTMNetwork` init (both changes).

    python benchmarks/init_ablation.py --steps 250      # ~2 minutes per variant, 2 cores
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tf_keras

import probseq
from probseq.data import load_corpus, random_windows
from probseq.inference import fit_map
from probseq.nn.cells import INPUT_TABLE_SCALE

VARIANTS = ("per_gate_glorot", "joint_orthogonal", "big_table", "default")


def _per_gate_orthogonal(hidden: int, rng: np.random.Generator) -> np.ndarray:
    blocks = []
    for _ in range(4):
        q, r = np.linalg.qr(rng.standard_normal((hidden, hidden)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=-1)


def build(variant: str, vocab_size: int, seed: int) -> probseq.LSTMNetwork:
    net = probseq.LSTMNetwork(vocab_size, 256, 2, seed=(seed, 0))
    if variant == "default":
        return net
    rng = np.random.default_rng(seed)
    if variant in ("per_gate_glorot", "big_table"):
        for index in range(2):
            kernel = _per_gate_orthogonal(256, rng).astype(np.float32)
            net.params[f"layer_{index}"]["recurrent_kernel"].assign(kernel)
    if variant in ("per_gate_glorot", "joint_orthogonal"):
        table = net.params["layer_0"]["input_kernel"]
        table.assign(table / INPUT_TABLE_SCALE)  # back to the plain Glorot limit
    return net


def main(args: argparse.Namespace) -> None:
    corpus = load_corpus("shakespeare", cache_dir=args.cache_dir)
    ids = corpus.ids("train")
    for variant in args.variants:
        net = build(variant, len(corpus.vocabulary), args.seed)
        result = fit_map(
            probseq.LSTMAutoregressive(net, 50),
            random_windows(ids, 50, 128, seed=args.seed),
            num_examples=len(ids) // 50,
            num_steps=args.steps,
            prior=None,
            clip_norm=250.0,
            optimizer=tf_keras.optimizers.Adam(1e-3),
        )
        bits = float(np.mean(result.trace["nll"][-20:])) / 50 / math.log(2)
        print(f"{variant:18s} {bits:.3f} bits/char after {result.steps_run} steps", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    main(parser.parse_args())
