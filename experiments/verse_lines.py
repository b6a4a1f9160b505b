"""Lines of verse as variable-length sequences: a character model that ends lines itself.

Every non-empty line of the complete works of Shakespeare (the `shakespeare` corpus,
train / valid / test from its contiguous 90/5/5 split of the text) is one sequence that
ends with an end token. The end token is the newline character, which no line contains,
so a line is scored as "its characters, then a newline": the same characters, counted
the same way, as a character model scoring the line followed by its newline from a zero
state. That makes the comparison with the main job's fixed-window model exact.

1. **Data.** `probseq.data.parse_sequences` cuts each split into lines;
   `bucketed_batches` groups lines of similar length (seeded, resumable).
2. **Model.** `LSTMAutoregressive(net, num_steps, eos=EOS, lengths=...)`: a distribution
   over lines that end at their first EOS (or at `num_steps` characters); padding is
   never read or scored.
3. **Fit.** `fit_map` by maximum likelihood on batches of lines within a time budget
   (5 minutes by default), Adam with warm-up and cosine decay to the end of the budget.
4. **Evaluate.** `evaluate_sequences` on the test lines: NLL per line, bits per character
   with the EOS counted as a character; the same lines under the main job's model
   (`--window-run`, default `runs/shakespeare_char_rnn` from `make demo`) if it exists.
5. **Sample.** Lines drawn at temperature 0.8 until their EOS.

Run it::

    python experiments/verse_lines.py                  # 5-minute budget
    python experiments/verse_lines.py --json           # one JSON object on stdout
    python experiments/verse_lines.py --tiny           # seconds-long smoke test

Progress goes to stderr; results to stdout and `--results` (default in the run dir).
Rerunning with the same `--run-dir` resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import numpy as np
import tensorflow as tf

import probseq
from probseq.cli.config import TrainConfig
from probseq.cli.reporting import TimeBudgetCallback
from probseq.cli.train import learning_rate_schedule
from probseq.data import bucketed_batches, load_corpus, parse_sequences
from probseq.evaluation import evaluate_sequences
from probseq.inference import Callback, fit_map
from probseq.machine import describe_machine

TINY = dict(hidden_size=16, num_layers=1, batch_size=16, max_steps=8, max_lines=400)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="shakespeare", help="corpus name or text file")
    parser.add_argument("--run-dir", default="runs/verse_lines")
    parser.add_argument("--window-run", default="runs/shakespeare_char_rnn",
                        help="the main job's run dir, scored on the same test lines")  # fmt: skip
    parser.add_argument("--budget-minutes", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=20_000)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--max-length", type=int, default=200, help="characters per line")
    parser.add_argument("--max-lines", type=int, default=None, help="use only N lines/split")
    parser.add_argument("--num-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tiny", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        for key, value in TINY.items():
            setattr(args, key, value)
    return args


class _Progress(Callback):
    """One line every `every` steps: the batch's mean NLL per line (batches are bucketed
    by length, so this moves with the lengths drawn) and the time so far."""

    def __init__(self, every: int, enabled: bool):
        self.every, self.enabled = every, enabled
        self.started = time.perf_counter()

    def on_step(self, info) -> None:
        if self.enabled and info.step % self.every == 0:
            seconds = time.perf_counter() - self.started
            print(f"step {info.step}: batch NLL {info.nll:.2f} nats/line, {seconds:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip


def _lines(corpus, split: str, limit: int | None) -> list[str]:
    lines = parse_sequences(corpus.text(split))
    return lines[:limit] if limit else lines


def _encode(vocabulary, lines: list[str], max_length: int) -> list[np.ndarray]:
    return [vocabulary.encode(line[:max_length]).astype(np.int32) for line in lines]


def main(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    corpus = load_corpus(args.corpus)
    vocabulary = corpus.vocabulary
    eos = vocabulary.id_of("\n")
    rows = {
        split: _encode(vocabulary, _lines(corpus, split, args.max_lines), args.max_length)
        for split in ("train", "valid", "test")
    }
    num_steps = args.max_length + 1  # the longest line plus its EOS
    net = probseq.LSTMNetwork(
        len(vocabulary), args.hidden_size, args.num_layers, seed=(args.seed, 0)
    )
    config = TrainConfig(
        learning_rate=args.learning_rate, warmup_steps=min(100, args.max_steps // 4),
        max_steps=args.max_steps, budget_minutes=args.budget_minutes,
    )  # fmt: skip
    import tf_keras

    time_progress = tf.Variable(0.0, trainable=False)
    optimizer = tf_keras.optimizers.Adam(learning_rate_schedule(config, time_progress))
    optimizer.build(net.trainable_variables)
    checkpoint = tf.train.Checkpoint(network=net, optimizer=optimizer, time_progress=time_progress)
    manager = tf.train.CheckpointManager(checkpoint, str(Path(args.run_dir) / "checkpoints"), 2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start_step = int(optimizer.iterations.numpy())
    data = bucketed_batches(rows["train"], args.batch_size, seed=args.seed, start_batch=start_step)

    def log_likelihood(batch):
        lines = probseq.LSTMAutoregressive(net, num_steps, eos=eos, lengths=batch["lengths"])
        return lines.log_prob(batch["tokens"])

    remaining = max(args.max_steps - start_step, 0)
    fit = fit_map(
        probseq.LSTMAutoregressive(net, num_steps, eos=eos),
        data,
        num_examples=len(rows["train"]),
        num_steps=remaining,
        prior=None,
        optimizer=optimizer,
        clip_norm=5.0,
        initial_step=start_step,
        log_likelihood_fn=log_likelihood,
        callbacks=[
            TimeBudgetCallback(args.budget_minutes, progress=time_progress),
            _Progress(100 if not args.tiny else 2, not args.no_progress),
        ],
    )
    manager.save(checkpoint_number=int(optimizer.iterations.numpy()))
    train_seconds = time.perf_counter() - started

    test = evaluate_sequences(net, rows["test"], eos=eos, num_steps=num_steps)
    valid = evaluate_sequences(net, rows["valid"], eos=eos, num_steps=num_steps)
    samples = _complete_lines(net, num_steps, eos, vocabulary, args)
    results = {
        "experiment": "verse_lines",
        "corpus": corpus.name,
        "eos": "the newline character, counted as a character of every line",
        "steps": int(optimizer.iterations.numpy()),
        "steps_this_invocation": fit.steps_run,
        "train_seconds_this_invocation": train_seconds,
        "num_train_lines": len(rows["train"]),
        "num_test_lines": test.num_sequences,
        "test_nll_nats_per_line": test.nll_nats_per_sequence,
        "test_bits_per_char": test.bits_per_token,
        "test_num_chars_with_eos": test.num_tokens,
        "valid_bits_per_char": valid.bits_per_token,
        "window_model_test_bits_per_char": None,
        "window_model": None,
        "samples": samples,
        "config": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "machine": describe_machine(),
    }
    window_run = Path(args.window_run)
    if (window_run / "config.json").exists():
        window = probseq.load(window_run)
        if window.vocabulary == vocabulary and window.method == "map":
            scored = evaluate_sequences(window.network, rows["test"], eos=eos, num_steps=num_steps)
            results["window_model_test_bits_per_char"] = scored.bits_per_token
            results["window_model_test_nll_nats_per_line"] = scored.nll_nats_per_sequence
            results["window_model"] = f"{window_run} ({window.checkpoint.rsplit('/', 1)[-1]})"
        else:
            results["window_model"] = f"{window_run}: a different vocabulary or method; skipped"
    else:
        results["window_model"] = f"{window_run} not found (run `make demo` first)"
    path = Path(args.results or Path(args.run_dir) / "results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(results))
    else:
        _print_summary(results, path)
    return results


def _complete_lines(net, num_steps, eos, vocabulary, args) -> list[str]:
    """Lines sampled at temperature 0.8 that ended with their EOS (not cut at num_steps)."""
    dist = probseq.LSTMAutoregressive(net, num_steps, eos=eos, temperature=0.8)
    draws = dist.sample(args.num_samples, seed=(args.seed, 7)).numpy()
    lines = []
    for row in draws:
        ends = np.flatnonzero(row == eos)
        if ends.size:
            lines.append(vocabulary.decode(row[: ends[0]]))
    return lines


def _print_summary(results: dict, path: Path) -> None:
    minutes = results["train_seconds_this_invocation"] / 60
    print(f"verse_lines on {results['corpus']}: {results['steps']} steps, "
          f"{minutes:.1f} min in this invocation")  # fmt: skip
    print(f"held-out test, {results['num_test_lines']:,} lines: "
          f"{results['test_nll_nats_per_line']:.2f} nats/line, "
          f"{results['test_bits_per_char']:.4f} bits/char (the newline counted)")  # fmt: skip
    if results["window_model_test_bits_per_char"] is not None:
        print(f"same lines under the main job's window model: "
              f"{results['window_model_test_bits_per_char']:.4f} bits/char")  # fmt: skip
    else:
        print(f"window model: {results['window_model']}")
    print("sampled lines (temperature 0.8, each until its end token):")
    for line in results["samples"][:10]:
        print(f"  {line}")
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main(parse_args())
