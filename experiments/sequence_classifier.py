"""Images read row by row as sequences: `SequenceClassifier` fitted by MAP and by VI.

The classic RNN-chapter example (Géron, *Hands-On Machine Learning*, ch. 14): an image is
a sequence of its rows, each row a step of real-valued features; a recurrent encoder
reads the rows and a softmax over the 10 digits follows its last state. Géron's setting:
MNIST (28 steps of 28 features), 150 units, Adam 1e-3, batch 150; a basic RNN cell
reaches about 97-98% test accuracy there.

Data: MNIST when a local `mnist.npz` (the Keras file format) is given with `--mnist
PATH` or `$PROBSEQ_MNIST`; otherwise (offline default) scikit-learn's bundled 8x8
digits (1,797 images: 8 steps of 8 features, pixel values / 16), split 80/20 by a
seeded permutation (seed 0: 1,437 train, 360 test). scikit-learn is an optional extra
(`pip install -e .[classify]`; the dev extra includes it).

Variants: cell rnn / gru / lstm x method map (maximum likelihood, `fit_map(network,
log_likelihood_fn=...)`) / variational (mean-field posterior, N(0, 1) prior,
`fit_variational(network, log_likelihood_fn=...)`; the class probabilities are the
posterior predictive over `eval_draws` weight draws). Evaluation on the test split:
accuracy, NLL per example (nats), expected calibration error (15 equal-width bins) and
a reliability diagram per variant (PNG, `--plots DIR`).

Run it::

    python experiments/sequence_classifier.py                    # digits, 6 variants
    python experiments/sequence_classifier.py --cells lstm --methods map variational
    python experiments/sequence_classifier.py --mnist ~/mnist.npz --cells lstm
    python experiments/sequence_classifier.py --json --plots figures/
    python experiments/sequence_classifier.py --tiny             # seconds-long smoke test

Progress goes to stderr; a table (or with `--json` one JSON object with `dataset`, and
per variant `test_accuracy`, `test_nll`, `ece`, `train_seconds`) goes to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import numpy as np
import tensorflow as tf

from probseq.distributions import SequenceClassifier
from probseq.evaluation import classification_metrics, reliability_diagram
from probseq.inference import GaussianPrior, fit_map, fit_variational
from probseq.nn import RealValuedNetwork
from probseq.nn.threads import use_probseq_threads

MNIST_ENV = "PROBSEQ_MNIST"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Settings of every variant (defaults: Géron's, with more steps for the small set)."""

    hidden_size: int = 150
    num_layers: int = 1
    batch_size: int = 150
    learning_rate: float = 1e-3
    num_steps: int = 3000
    clip_norm: float | None = 5.0
    prior_scale: float = 1.0  # variational: N(0, scale) on every weight
    posterior_init_scale: float = 1e-2
    kl_annealing_steps: int = 0  # variational: linear warm-up of the KL weight
    eval_draws: int = 16
    seed: int = 0


TINY = dict(hidden_size=16, batch_size=32, num_steps=20, eval_draws=2)


def load_digits_sequences(seed: int = 0, test_fraction: float = 0.2) -> dict:
    """scikit-learn's 8x8 digits as `[N, 8, 8]` float32 in [0, 1] (rows as steps), split by
    a seeded permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit(
            "the digits dataset comes with scikit-learn, an optional extra: "
            "pip install -e '.[classify]' (or give --mnist PATH to a local mnist.npz)"
        ) from None
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    num_test = round(test_fraction * len(labels))
    train, test = order[num_test:], order[:num_test]
    return {
        "name": "sklearn digits 8x8 (rows as 8 steps of 8 features)",
        "train_x": images[train],
        "train_y": labels[train],
        "test_x": images[test],
        "test_y": labels[test],
    }


def load_mnist_sequences(path: str | os.PathLike) -> dict:
    """A Keras-format `mnist.npz` (`x_train`, `y_train`, `x_test`, `y_test`) as `[N, 28,
    28]` float32 in [0, 1] with its own train/test split."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SystemExit(f"--mnist {path}: no such file (a Keras-format mnist.npz)")
    with np.load(path) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise SystemExit(f"{path} is not a Keras mnist.npz: missing {sorted(missing)}")
        return {
            "name": "MNIST (rows as 28 steps of 28 features)",
            "train_x": (data["x_train"] / 255.0).astype(np.float32),
            "train_y": data["y_train"].astype(np.int32),
            "test_x": (data["x_test"] / 255.0).astype(np.float32),
            "test_y": data["y_test"].astype(np.int32),
        }


def batches(x, y, batch_size: int, seed: int):
    """Shuffled minibatches `(x, y)` forever, seeded (each epoch a new permutation)."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )


def fit_variant(data: dict, cell: str, method: str, config: ClassifierConfig) -> dict:
    """Fit one variant on the training split and score the test split."""
    num_classes = int(max(data["train_y"].max(), data["test_y"].max())) + 1
    features = data["train_x"].shape[-1]
    network = RealValuedNetwork(
        features, config.hidden_size, config.num_layers, num_classes, cell=cell,
        seed=(config.seed, 0),
    )  # fmt: skip
    dataset = batches(data["train_x"], data["train_y"], config.batch_size, config.seed)
    common = dict(
        num_examples=len(data["train_y"]),
        num_steps=config.num_steps,
        learning_rate=config.learning_rate,
        clip_norm=config.clip_norm,
    )
    start = time.perf_counter()
    if method == "map":
        fit = fit_map(
            network, dataset, prior=None, **common,
            log_likelihood_fn=lambda b: SequenceClassifier(network, b[0]).log_prob(b[1]),
        )  # fmt: skip
        probs = predict(network, data["test_x"])
    else:

        def log_likelihood(batch, params):  # params leaves [K] + core -> [K, B]
            per_draw = tf.nest.map_structure(lambda p: p[:, None], params)
            return SequenceClassifier(network, batch[0], params=per_draw).log_prob(batch[1])

        fit = fit_variational(
            network, dataset, prior=GaussianPrior(config.prior_scale),
            posterior_init_scale=config.posterior_init_scale, seed=config.seed,
            kl_annealing_steps=config.kl_annealing_steps,
            log_likelihood_fn=log_likelihood, **common,
        )  # fmt: skip
        draws = fit.surrogate.sample(config.eval_draws, seed=(config.seed, 1))
        probs = predict(network, data["test_x"], draws=draws)
    seconds = time.perf_counter() - start
    metrics = classification_metrics(probs, data["test_y"], num_bins=15)
    return {
        "cell": cell,
        "method": method,
        "test_accuracy": metrics["accuracy"],
        "test_nll": metrics["nll"],
        "ece": metrics["ece"],
        "num_test": metrics["num_examples"],
        "final_train_nll": float(fit.trace["nll"][-1]),
        "steps": fit.final_step,
        "train_seconds": seconds,
        "probs": probs,
    }


def predict(network, x, *, draws=None, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities `[N, K]`: the network's, or the mean over weight `draws`."""
    out = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        if draws is None:
            out.append(SequenceClassifier(network, chunk).probs().numpy())
        else:
            per_draw = tf.nest.map_structure(lambda p: p[:, None], draws)
            dist = SequenceClassifier(network, chunk, params=per_draw)
            out.append(tf.reduce_mean(dist.probs(), axis=0).numpy())  # :: [B, K]
    return np.concatenate(out).astype(np.float64)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=os.environ.get(MNIST_ENV), help="mnist.npz path")
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"],
                        choices=["rnn", "gru", "lstm"])  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=["map", "variational"],
                        choices=["map", "variational"])  # fmt: skip
    parser.add_argument("--num-steps", type=int, default=None, help="optimizer steps")
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument(
        "--prior-scale", type=float, default=None, help="variational: N(0, s) prior scale"
    )
    parser.add_argument(
        "--posterior-init-scale", type=float, default=None,
        help="variational: initial posterior sd of every weight",
    )  # fmt: skip
    parser.add_argument(
        "--kl-annealing-steps", type=int, default=None, help="variational: KL warm-up steps"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="directory for reliability diagrams")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    config = ClassifierConfig(seed=args.seed)
    if args.tiny:
        config = dataclasses.replace(config, **TINY)
    overrides = {
        "num_steps": args.num_steps,
        "hidden_size": args.hidden_size,
        "prior_scale": args.prior_scale,
        "kl_annealing_steps": args.kl_annealing_steps,
        "posterior_init_scale": args.posterior_init_scale,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    data = load_mnist_sequences(args.mnist) if args.mnist else load_digits_sequences(args.seed)
    if args.tiny:
        data = {k: (v[:200] if k.endswith(("_x", "_y")) else v) for k, v in data.items()}
    use_probseq_threads(config.batch_size, [config.hidden_size] * config.num_layers)
    variants = {}
    for cell in args.cells:
        for method in args.methods:
            name = f"{cell}_{method}"
            print(f"fitting {name} on {data['name']} ...", file=sys.stderr, flush=True)
            result = fit_variant(data, cell, method, config)
            probs = result.pop("probs")
            if args.plots:
                Path(args.plots).mkdir(parents=True, exist_ok=True)
                reliability_diagram(
                    probs, data["test_y"], Path(args.plots) / f"reliability_{name}.png",
                    title=f"{cell} {method}, {data['name'].split(' (')[0]}",
                )  # fmt: skip
            variants[name] = result
            print(
                f"  {name}: accuracy {result['test_accuracy']:.4f}, NLL {result['test_nll']:.4f}"
                f", ECE {result['ece']:.4f} ({result['train_seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    results = {
        "dataset": data["name"],
        "num_train": len(data["train_y"]),
        "num_test": len(data["test_y"]),
        "config": dataclasses.asdict(config),
        "variants": variants,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{results['dataset']}: {results['num_train']} train, {results['num_test']} test")
        print(f"{'variant':<18} {'accuracy':>9} {'NLL':>8} {'ECE':>8} {'seconds':>8}")
        for name, r in variants.items():
            print(
                f"{name:<18} {r['test_accuracy']:>9.4f} {r['test_nll']:>8.4f} {r['ece']:>8.4f} "
                f"{r['train_seconds']:>8.1f}"
            )
    return results


if __name__ == "__main__":
    main()
