"""The echo task with an encoder-decoder distribution (`probseq.distributions.EncoderDecoder`).

The reference tutorial's sequence-to-sequence toy problem: the source is a random
sequence of 5 tokens from a vocabulary of 100, the target is its first 2 tokens. A Keras
LSTM encoder-decoder reached about 97% test accuracy on it. Here the same task is a
*conditional distribution* `p(target | source)`:

1. **Data.** `make_echo_data` draws 10,000 sources uniformly (seeded) and holds out the
   last 20% as the test split; target = the first `echo_length` source tokens.
2. **Model.** `Seq2SeqNetwork` holds an encoder (its own source embedding, i.e. the row-
   gathered input kernel, and recurrent weights) and a decoder with a softmax head.
   `EncoderDecoder(network, source, target_steps)` is a `tfd.Distribution` over targets:
   the encoder reads the source from a zero state, its final state starts the decoder,
   whose first step reads no token and later steps read the previous target token.
3. **Fit.** Maximum likelihood with `probseq.inference.fit_map(network, prior=None,
   log_likelihood_fn=...)`: the minibatch loss is `-mean log p(target | source)`; the
   function builds the conditional distribution of each minibatch's sources, and the
   network gives the variables. `--method variational` fits a mean-field posterior over
   the same network's weights with `fit_variational(network, log_likelihood_fn=...)`,
   whose function gets the step's `K` weight draws and returns `[K, B]`.
4. **Evaluate.** Greedy (argmax) decoding of the test sources gives token accuracy and
   sequence accuracy (a variational fit decodes with its posterior mean); the held-out
   NLL is `-mean log p(target | source)` in nats per sequence (teacher-forced, exact;
   for a variational fit the posterior predictive `-mean log (1/S) sum_s p(target |
   source, w_s)` over `eval_draws` weight draws).

Run it::

    python experiments/echo_seq2seq.py                        # 5 -> echo 2 (default)
    python experiments/echo_seq2seq.py --source-length 10 --echo-length 5 \
        --hidden-size 128 --num-layers 2                      # the longer variant
    python experiments/echo_seq2seq.py --method variational   # Bayes by backprop
    python experiments/echo_seq2seq.py --json                 # one JSON object on stdout
    python experiments/echo_seq2seq.py --tiny                 # seconds-long smoke test

Measured (seed 0, 2,000 test sequences, greedy decoding):

- default (LSTM, H=64, 1 layer, Adam 1e-2 with cosine decay, batch 128, 3,000 steps,
  clipping at 5), on a 2-core AMD EPYC (avx512f, avx512_bf16, no AMX), 2026-12-01:
  token accuracy 99.975%, sequence accuracy 99.95%, held-out NLL 0.0044 nats/sequence,
  7.7 s of training (`python experiments/echo_seq2seq.py`; experiments/RESULTS.md).
  (The reference Keras encoder-decoder: about 97%.)
- the same with `--method variational` (mean-field posterior, N(0, 1) prior, initial
  posterior scale 1e-2, one weight draw per step; same machine and day): token and
  sequence accuracy 100% (posterior-mean decoding), held-out posterior predictive NLL
  0.181 nats/sequence over 8 draws, 15.8 s of training (2.1x the MAP fit).
- echo the first 5 of 10 (LSTM, H=128, 2 layers, otherwise the same; Intel Xeon): token
  and sequence accuracy 100%, held-out NLL 0.0047 nats/sequence, about 2 minutes. One
  layer of 128 units reaches 99.6% token accuracy there.

Progress goes to stderr; the results (config, metrics, a few decoded examples) are
printed on stdout (as one JSON object with `--json`) and optionally written with
`--results PATH`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import numpy as np
import tensorflow as tf

from probseq.distributions import EncoderDecoder, greedy_decode
from probseq.inference import (
    Callback,
    FitResult,
    GaussianPrior,
    MeanFieldPosterior,
    StepInfo,
    fit_map,
    fit_variational,
)
from probseq.nn import Seq2SeqNetwork
from probseq.nn.threads import use_probseq_threads


@dataclasses.dataclass
class EchoConfig:
    """All settings of one run (defaults: the reference task, tuned to reach >= 99.9%)."""

    source_length: int = 5
    echo_length: int = 2
    vocab_size: int = 100
    num_examples: int = 10_000
    test_fraction: float = 0.2
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    batch_size: int = 128
    learning_rate: float = 1e-2
    decay_steps: int | None = None  # cosine decay to 0 over this many steps (None: num_steps)
    num_steps: int = 3000
    clip_norm: float | None = 5.0
    prior_scale: float | None = None  # Normal(0, scale) prior on every weight (MAP); None: ML
    method: str = "map"  # or "variational" (mean-field posterior, prior_scale default 1)
    posterior_init_scale: float = 1e-2  # variational: initial posterior sd of every weight
    eval_draws: int = 8  # variational: weight draws of the held-out posterior predictive
    eval_batch_size: int = 1000
    seed: int = 0


TINY = dict(num_examples=200, hidden_size=16, batch_size=16, num_steps=5, eval_batch_size=64)


def make_echo_data(
    num_examples: int,
    source_length: int,
    echo_length: int,
    vocab_size: int,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Seeded echo data: uniform random sources, target = the first `echo_length` tokens.

    Returns:
      dict with `train_source :: [N_train, S]`, `train_target :: [N_train, E]`,
      `test_source :: [N_test, S]`, `test_target :: [N_test, E]` (int32); the test split
      is the last `round(test_fraction * N)` examples of a seeded permutation.
    """
    if not 1 <= echo_length <= source_length:
        raise ValueError(f"need 1 <= echo_length <= source_length, got {echo_length}.")
    rng = np.random.default_rng(seed)
    source = rng.integers(0, vocab_size, size=(num_examples, source_length), dtype=np.int32)
    order = rng.permutation(num_examples)
    num_test = round(test_fraction * num_examples)
    train, test = order[: num_examples - num_test], order[num_examples - num_test :]
    return {
        "train_source": source[train],
        "train_target": source[train, :echo_length],
        "test_source": source[test],
        "test_target": source[test, :echo_length],
    }


def make_network(config: EchoConfig) -> Seq2SeqNetwork:
    """The encoder-decoder network for a config (source and target vocabularies equal)."""
    return Seq2SeqNetwork(
        config.vocab_size,
        config.vocab_size,
        config.hidden_size,
        config.num_layers,
        cell=config.cell,
        seed=config.seed,
    )


class _Progress(Callback):
    """Logs the training loss to stderr every `every` steps."""

    def __init__(self, every: int, stream=sys.stderr):
        self.every = every
        self.stream = stream

    def on_step(self, info: StepInfo) -> bool:
        if info.step % self.every == 0:
            print(
                f"step {info.step:5d}  nll {info.nll:.4f} nats/seq  "
                f"lr {info.learning_rate:.2e}  {info.seconds:.0f}s",
                file=self.stream,
                flush=True,
            )
        return False


def conditional_log_likelihood(network: Seq2SeqNetwork, echo_length: int):
    """`batch -> [B]` log p(target | source) on the network's variables (MAP)."""

    def log_likelihood(batch):
        source, target = batch
        return EncoderDecoder(network, source, echo_length).log_prob(target)

    return log_likelihood


def conditional_log_likelihood_of_draws(network: Seq2SeqNetwork, echo_length: int):
    """`(batch, params) -> [K, B]`: log p(target_b | source_b, w_k) for `K` weight draws
    (params leaves `[K] + core`, given a `[K, 1]` batch dim so that the `B` sources
    broadcast against them)."""

    def log_likelihood(batch, params):
        source, target = batch
        per_draw = tf.nest.map_structure(lambda p: p[:, None], params)  # :: [K, 1] + core
        return EncoderDecoder(network, source, echo_length, params=per_draw).log_prob(target)

    return log_likelihood


def train(
    network: Seq2SeqNetwork,
    data: dict[str, np.ndarray],
    config: EchoConfig,
    callbacks=(),
) -> FitResult:
    """Fit `network` on the training split: `fit_map` (maximum likelihood, or MAP with a
    prior) or `fit_variational` (the result's `surrogate` is the posterior)."""
    import tf_keras

    source, target = data["train_source"], data["train_target"]
    dataset = (
        tf.data.Dataset.from_tensor_slices((source, target))
        .shuffle(len(source), seed=config.seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(config.batch_size, drop_remainder=True)
    )
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        config.learning_rate, config.decay_steps or config.num_steps
    )
    optimizer = tf_keras.optimizers.Adam(learning_rate=schedule)
    common = dict(
        num_examples=len(source),
        num_steps=config.num_steps,
        optimizer=optimizer,
        clip_norm=config.clip_norm,
        callbacks=callbacks,
    )
    if config.method == "variational":
        return fit_variational(
            network,
            dataset,
            prior=GaussianPrior(1.0 if config.prior_scale is None else config.prior_scale),
            posterior_init_scale=config.posterior_init_scale,
            seed=config.seed,
            log_likelihood_fn=conditional_log_likelihood_of_draws(network, config.echo_length),
            **common,
        )
    return fit_map(
        network,
        dataset,
        prior=None if config.prior_scale is None else GaussianPrior(config.prior_scale),
        log_likelihood_fn=conditional_log_likelihood(network, config.echo_length),
        **common,
    )


def evaluate(
    network: Seq2SeqNetwork,
    source: np.ndarray,
    target: np.ndarray,
    batch_size: int = 1000,
    *,
    surrogate: MeanFieldPosterior | None = None,
    num_draws: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Greedy-decoding accuracies and the exact held-out NLL on `(source, target)`.

    With a `surrogate` (a variational fit): decoding with the posterior mean, and the NLL
    of the posterior predictive over `num_draws` weight draws (seeded by `seed`).

    Returns:
      `token_accuracy`, `sequence_accuracy` (fractions in [0, 1]),
      `test_nll_nats_per_sequence` and `test_nll_nats_per_token`, `num_sequences`.
    """
    echo_length = target.shape[-1]
    mean = draws = None
    if surrogate is not None:
        mean = surrogate.mean()
        draws = surrogate.sample(num_draws, seed=(seed, 1))
    score_draws = conditional_log_likelihood_of_draws(network, echo_length)

    @tf.function
    def decode_and_score(source, target):
        dist = EncoderDecoder(network, source, echo_length, params=mean)
        if draws is None:
            return greedy_decode(dist), dist.log_prob(target)
        log_p = score_draws((source, target), draws)  # :: [S, B]
        return greedy_decode(dist), tf.reduce_logsumexp(log_p, 0) - np.log(num_draws)

    decoded, log_probs = [], []
    for start in range(0, len(source), batch_size):
        tokens, log_prob = decode_and_score(
            source[start : start + batch_size], target[start : start + batch_size]
        )
        decoded.append(tokens.numpy())
        log_probs.append(log_prob.numpy())
    decoded = np.concatenate(decoded)
    nll = -float(np.mean(np.concatenate(log_probs)))
    correct = decoded == target
    return {
        "token_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=-1).mean()),
        "test_nll_nats_per_sequence": nll,
        "test_nll_nats_per_token": nll / echo_length,
        "num_sequences": len(source),
        "decoded": decoded,
    }


def run(config: EchoConfig, progress_every: int | None = 100) -> dict:
    """Data, training and evaluation for one config; returns the results dict."""
    start = time.perf_counter()
    data = make_echo_data(
        config.num_examples,
        config.source_length,
        config.echo_length,
        config.vocab_size,
        config.test_fraction,
        config.seed,
    )
    network = make_network(config)
    callbacks = [_Progress(progress_every)] if progress_every else []
    fit = train(network, data, config, callbacks)
    train_seconds = time.perf_counter() - start
    metrics = evaluate(
        network,
        data["test_source"],
        data["test_target"],
        config.eval_batch_size,
        surrogate=getattr(fit, "surrogate", None),
        num_draws=config.eval_draws,
        seed=config.seed,
    )
    decoded = metrics.pop("decoded")
    examples = [
        {"source": s.tolist(), "target": t.tolist(), "decoded": d.tolist()}
        for s, t, d in zip(
            data["test_source"][:5], data["test_target"][:5], decoded[:5], strict=True
        )
    ]
    return {
        "task": f"echo the first {config.echo_length} of {config.source_length} tokens",
        "method": config.method,
        "config": dataclasses.asdict(config),
        **metrics,
        "final_train_nll_nats_per_sequence": float(fit.trace["nll"][-1]),
        "steps_run": fit.steps_run,
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "examples": examples,
    }


def parse_args(argv=None) -> argparse.Namespace:
    defaults = EchoConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-length", type=int, default=defaults.source_length)
    parser.add_argument("--echo-length", type=int, default=defaults.echo_length)
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size)
    parser.add_argument("--num-examples", type=int, default=defaults.num_examples)
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=defaults.cell)
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--num-steps", type=int, default=None)
    parser.add_argument(
        "--prior-scale", type=float, default=None, help="Gaussian prior scale (MAP); default ML"
    )
    parser.add_argument(
        "--method",
        choices=["map", "variational"],
        default=defaults.method,
        help="maximum likelihood / MAP (default) or a mean-field variational posterior",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--results", default=None, help="also write the results JSON here")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    parser.add_argument("--progress-every", type=int, default=100)
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> EchoConfig:
    """Defaults, then `--tiny`, then explicit flags."""
    config = EchoConfig(
        source_length=args.source_length,
        echo_length=args.echo_length,
        vocab_size=args.vocab_size,
        num_examples=args.num_examples,
        cell=args.cell,
        method=args.method,
        seed=args.seed,
    )
    if args.tiny:
        config = dataclasses.replace(config, **TINY)
    overrides = {
        "hidden_size": args.hidden_size,
        "num_layers": args.num_layers,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "num_steps": args.num_steps,
        "prior_scale": args.prior_scale,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def main(argv=None) -> dict:
    """Run the experiment from command-line arguments; returns the results dict."""
    args = parse_args(argv)
    config = config_from_args(args)
    use_probseq_threads(config.batch_size, [config.hidden_size] * config.num_layers)
    print(f"config: {json.dumps(dataclasses.asdict(config))}", file=sys.stderr)
    results = run(config, progress_every=args.progress_every)
    if args.results:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"{results['task']} ({results['method']}): token accuracy "
            f"{results['token_accuracy']:.4%}, "
            f"sequence accuracy {results['sequence_accuracy']:.4%}, held-out NLL "
            f"{results['test_nll_nats_per_sequence']:.4f} nats/sequence "
            f"({results['num_sequences']} test sequences, {results['wall_seconds']:.0f}s)"
        )
        for example in results["examples"]:
            print(
                f"  source {example['source']} -> decoded {example['decoded']} "
                f"(target {example['target']})"
            )
    return results


if __name__ == "__main__":
    main()
