"""One process of the multi-worker tests: fit a small model and write what it learned.

    python fit_worker.py STRATEGY METHOD OUT.npz [NUM_STEPS]

STRATEGY is a `probseq.distribute` name; with "multi-worker" the cluster comes from
TF_CONFIG. The data, model and seeds are fixed, so every run sees the same global
batches: a multi-worker run must reproduce the single-process run.
"""

from __future__ import annotations

import sys

from probseq.distribute import is_chief, make_strategy

GLOBAL_BATCH = 8


def main() -> None:
    name, method, out = sys.argv[1:4]
    num_steps = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    strategy = make_strategy(name, timeout_seconds=60)  # before any other TF op

    import numpy as np
    import tensorflow as tf

    import probseq

    tokens = np.random.default_rng(0).integers(0, 5, size=[64, 12]).astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices(tokens).repeat().batch(GLOBAL_BATCH)
    with strategy.scope():
        net = probseq.nn.LSTMNetwork(5, 8, 1, seed=1)
    model = probseq.distributions.LSTMAutoregressive(net, 12)
    common = dict(num_examples=64, num_steps=num_steps, learning_rate=1e-2, strategy=strategy)
    if method == "map":
        fit = probseq.inference.fit_map(model, dataset, **common)
        weights = {v.name: v.numpy() for v in net.trainable_variables}
    else:
        fit = probseq.inference.fit_variational(model, dataset, seed=3, **common)
        weights = {v.name: v.numpy() for v in fit.surrogate.trainable_variables}
    arrays = {f"w/{k}": v for k, v in weights.items()}
    np.savez(
        out,
        loss=fit.trace["loss"],
        nll=fit.trace["nll"],
        chief=is_chief(strategy),
        replicas=strategy.num_replicas_in_sync,
        **arrays,
    )


if __name__ == "__main__":
    main()
