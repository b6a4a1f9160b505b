"""Shakespeare char-rnn with probseq: the main job of the README (`make demo`).

The char-rnn tutorial's model (2-layer LSTM, 256 units, 50-character windows, batch 128,
Adam, gradient clipping at 5, samples primed with "The ") trained on the complete works
of Shakespeare (`--corpus shakespeare`, 90/5/5 split) within a CPU time budget. It
prints held-out NLL per window, NLL per character and bits per character on the test
split, and a primed sample; and writes a results JSON.

    python experiments/shakespeare_char_rnn.py                     # 10-minute default
    python experiments/shakespeare_char_rnn.py --budget-minutes 30 --max-steps 8000
    python experiments/shakespeare_char_rnn.py --tiny              # smoke test (seconds)

Rerunning with the same `--run-dir` resumes the run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from probseq.cli.config import resolve_config
from probseq.cli.runs import evaluate_run, sample_run
from probseq.cli.train import train

TINY = dict(
    hidden_size=16,
    num_layers=1,
    num_steps=16,
    batch_size=8,
    max_steps=6,
    warmup_steps=2,
    checkpoint_every=3,
    eval_every=3,
    eval_chars=2000,
    sample_length=20,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="shakespeare")
    parser.add_argument("--run-dir", default="runs/shakespeare_char_rnn")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-length", type=int, default=500)
    parser.add_argument("--results", default=None, help="results JSON (default: in run dir)")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    # The tutorial's settings with the training budget fitted to ~10 CPU minutes here:
    # ~2000 steps of 128 x 50 characters, cosine-decayed learning rate.
    overrides = dict(
        corpus=args.corpus,
        hidden_size=256,
        num_layers=2,
        num_steps=50,
        batch_size=128,
        learning_rate=2e-3,
        clip_norm=5.0,
        max_steps=2000,
        budget_minutes=args.budget_minutes,
        eval_every=250,
        checkpoint_every=250,
        seed=args.seed,
    )
    if args.tiny:
        overrides.update(TINY)
    for name in ("max_steps", "hidden_size", "num_layers", "batch_size", "learning_rate"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    config = resolve_config(overrides=overrides)
    started = time.perf_counter()
    metrics = train(
        config,
        args.run_dir,
        explicit={"budget_minutes", "max_steps"},
        progress=not args.no_progress,
    )
    train_minutes = (time.perf_counter() - started) / 60
    windows = evaluate_run(args.run_dir, split="test", mode="windows")
    stream = evaluate_run(args.run_dir, split="test", mode="stream")
    sample = sample_run(
        args.run_dir, prime="The ", length=args.sample_length, temperature=0.8, seed=1
    )[0]
    results = {
        "experiment": "shakespeare_char_rnn",
        "corpus": config.corpus,
        "config": metrics["config"],
        "steps": metrics["step"],
        "train_minutes_this_invocation": train_minutes,
        "valid_bits_per_char": metrics["valid_bits_per_char"],
        "test_windows": windows,
        "test_stream": stream,
        "sample_temperature_0.8": sample,
    }
    path = Path(args.results or Path(args.run_dir) / "results.json")
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print()
    print(
        f"Shakespeare char-LM ({config.corpus}), {metrics['step']} steps, "
        f"{train_minutes:.1f} min of training in this invocation"
    )
    print(
        f"held-out test, {windows['num_steps']}-char windows: "
        f"NLL {windows['nll_nats_per_window']:.2f} nats/window, "
        f"{windows['nll_nats_per_char']:.4f} nats/char, {windows['bits_per_char']:.4f} bits/char"
    )
    print(
        f"held-out test, one stream:  {stream['nll_nats_per_char']:.4f} nats/char, "
        f"{stream['bits_per_char']:.4f} bits/char, perplexity {stream['perplexity']:.3f}"
    )
    print(f"sample (temperature 0.8):\n{sample}")
    print(f"\nresults: {path}")
    return results


if __name__ == "__main__":
    main(parse_args())
    sys.exit(0)
