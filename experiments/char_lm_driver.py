"""Shared driver of the character-LM experiment scripts in this directory
(`shakespeare_char_rnn.py`, `text8_lstm.py`): their common flags, `--tiny` settings and
the train / evaluate / sample sequence through the `probseq` command's own functions.

It lives next to the scripts (not in the package): it is how these scripts are written,
not an API. A script run as `python experiments/NAME.py` imports it by name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from probseq.cli.config import resolve_config
from probseq.cli.runs import evaluate_run, sample_run
from probseq.cli.train import train
from probseq.evaluation_settings import add_dynamic_arguments, dynamic_settings_from
from probseq.files import atomic_write_text
from probseq.machine import cpu_info, describe_machine, matmul_gflops
from probseq.nn.measured import measured_xla
from probseq.nn.threads import use_probseq_threads

__all__ = ["TINY_OVERRIDES", "add_experiment_arguments", "run_char_lm_experiment"]

# Settings of the `--tiny` smoke runs (seconds on a laptop CPU).
TINY_OVERRIDES = dict(
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


# Flags that override a script's settings when given.
_OVERRIDABLE = (
    "max_steps",
    "hidden_size",
    "num_layers",
    "batch_size",
    "learning_rate",
    "num_steps",
    "sequences",
    "dropout",
    "state_reset",
    "weight_decay",
    "cell",
    "warmup_steps",
    "precision",
)


def add_experiment_arguments(parser: argparse.ArgumentParser, *, corpus: str, run_dir: str):
    """The flags every char-LM experiment script shares."""
    parser.add_argument("--corpus", default=corpus, help="corpus name or text file/dir")
    parser.add_argument("--run-dir", default=run_dir, help="run directory (resumed if present)")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="training budget")
    parser.add_argument("--max-steps", type=int, default=None, help="total optimizer steps")
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--num-steps", type=int, default=None, help="characters per batch row")
    parser.add_argument(
        "--sequences",
        choices=("windows", "streams"),
        default=None,
        help="windows (each from a zero state) or streams (state carried: truncated BPTT)",
    )
    parser.add_argument("--dropout", type=float, default=None, help="locked dropout rate")
    parser.add_argument(
        "--state-reset", type=float, default=None, help="streams: P(reset a stream's state)"
    )
    parser.add_argument("--weight-decay", type=float, default=None, help="decoupled (AdamW)")
    parser.add_argument("--cell", choices=("lstm", "lnlstm", "gru", "rnn"), default=None)
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="matmul precision of training (auto: bf16 where the CPU has bf16 instructions "
        "and a quick probe measures it faster; the choice is printed and recorded)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="corpus cache directory")
    parser.add_argument("--sample-length", type=int, default=500)
    parser.add_argument("--prime", default="The ")
    parser.add_argument("--results", default=None, help="results JSON (default: in run dir)")
    parser.add_argument("--tiny", action="store_true", help="tiny settings for smoke tests")
    parser.add_argument("--skip-stream", action="store_true", help="no streaming evaluation")
    parser.add_argument(
        "--skip-dynamic", action="store_true", help="no dynamic evaluation (it takes minutes)"
    )
    add_dynamic_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--json", action="store_true", help="print the results JSON (only) on stdout"
    )


def run_char_lm_experiment(
    name: str, args: argparse.Namespace, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Train (or resume) within the budget, evaluate on the test split, sample, report.

    Prints held-out NLL per window, per character, bits per character (windows and
    stream) and a primed sample; writes the results JSON and returns it.
    """
    overrides = dict(overrides, corpus=args.corpus, seed=args.seed)
    overrides["budget_minutes"] = args.budget_minutes
    if args.cache_dir:
        overrides["cache_dir"] = args.cache_dir
    if args.tiny:
        overrides.update(TINY_OVERRIDES)
    for field in _OVERRIDABLE:
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    config = resolve_config(overrides=overrides)
    # The thread set-up measured on this machine for this shape (cached), not guessed.
    hidden = [config.hidden_size] * config.num_layers
    threads = use_probseq_threads(config.batch_size, hidden, measure=not args.tiny)
    xla = _measured_xla(config, hidden, measure=not args.tiny)
    config = dataclasses.replace(config, jit_compile=xla["train"]["jit_compile"])
    started = time.perf_counter()
    metrics = train(
        config,
        args.run_dir,
        explicit={"budget_minutes", "max_steps", "jit_compile"},
        progress=not args.no_progress,
    )
    train_minutes = (time.perf_counter() - started) / 60
    jit = {mode: choice["jit_compile"] for mode, choice in xla.items()}
    windows = evaluate_run(
        args.run_dir, split="test", mode="windows", jit_compile=jit["eval_windows"]
    )
    stream = None
    if not args.skip_stream:
        stream = evaluate_run(
            args.run_dir, split="test", mode="stream", jit_compile=jit["eval_stream"]
        )
    dynamic = None
    if not args.skip_dynamic:
        settings = dynamic_settings_from(args)
        if args.tiny:  # a smoke test: 64 streams of long segments, seconds not minutes
            settings = dataclasses.replace(
                settings, num_streams=64, segment_length=200, rms_segments=20
            )
        dynamic = evaluate_run(args.run_dir, split="test", mode="dynamic", dynamic=settings)
    prime = args.prime if all(ch in _vocabulary(args.run_dir) for ch in args.prime) else ""
    sample = sample_run(
        args.run_dir, prime=prime, length=args.sample_length, temperature=0.8, seed=1
    )[0]
    machine = dict(cpu_info(), fp32_matmul_gflops=round(matmul_gflops(), 1))
    machine["bf16_matmul_gflops"] = round(matmul_gflops(dtype="bfloat16"), 1)
    results = {
        "experiment": name,
        "run_dir": str(Path(args.run_dir).resolve()),
        "machine": machine,
        "threads": threads,
        "xla": xla,
        "corpus": config.corpus,
        "config": metrics["config"],
        "steps": metrics["step"],
        "train_minutes": _train_minutes(metrics),
        "train_minutes_this_invocation": train_minutes,
        "valid_bits_per_char": metrics["valid_bits_per_char"],
        "test_bits_per_char_windows": windows["bits_per_char"],
        "test_bits_per_char_stream": None if stream is None else stream["bits_per_char"],
        "test_bits_per_char_dynamic": None if dynamic is None else dynamic["bits_per_char"],
        "test_windows": windows,
        "test_stream": stream,
        "test_dynamic": dynamic,
        "sample_temperature_0.8": sample,
    }
    path = Path(args.results or Path(args.run_dir) / "results.json")
    atomic_write_text(path, json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_summary(name, results, path)
    return results


def _measured_xla(config, hidden: list[int], *, measure: bool) -> dict[str, dict]:
    """Whether XLA pays, per mode, at this run's shapes on this machine (measured once,
    cached: `probseq.nn.measured.measured_xla`); `measure=False`: the modes' defaults."""
    from probseq.nn.measured import XLA_MODES

    shapes = {  # batch rows of each mode: the training batch, evaluate's, one stream
        "train": config.batch_size,
        "eval_windows": 256,
        "eval_stream": 1,
    }
    from probseq.machine import choose_precision

    # the precision training will run in (auto: the cached probe); evaluation is fp32
    train_precision = choose_precision(config.precision)[0] if measure else "fp32"
    chosen = {}
    for mode, batch in shapes.items():
        if measure:
            precision = train_precision if mode == "train" else "fp32"
            jit, reason = measured_xla(
                mode, batch, hidden, num_steps=config.num_steps, precision=precision
            )
        else:
            jit, reason = XLA_MODES[mode], "default, not measured"
        chosen[mode] = {"jit_compile": jit, "reason": reason}
    return chosen


def _train_minutes(metrics: dict[str, Any]) -> float:
    """Minutes of training of the whole run (over every invocation that trained it)."""
    return float(metrics["train_seconds_total"]) / 60


def _vocabulary(run_dir):
    from probseq.cli.rundir import RunDir

    return RunDir(run_dir).load_vocabulary()


def _print_summary(name: str, results: dict[str, Any], path: Path) -> None:
    windows, stream = results["test_windows"], results["test_stream"]
    print()
    print(
        f"{name} on {results['corpus']}: {results['steps']} steps, "
        f"{results['train_minutes_this_invocation']:.1f} min of training in this invocation"
    )
    machine = results["machine"]
    print(
        f"machine: {describe_machine(machine)}; matmul {machine['fp32_matmul_gflops']:.0f} "
        f"GFLOP/s fp32, {machine['bf16_matmul_gflops']:.0f} bf16 (a time budget buys fewer "
        "steps on a slower or busier machine)"
    )
    print(f"training precision: {results['config']['precision']}; threads: {results['threads']}")
    for mode, choice in results["xla"].items():
        print(f"XLA for {mode}: {'on' if choice['jit_compile'] else 'off'} ({choice['reason']})")
    print(
        f"held-out test, {windows['num_steps']}-char windows: "
        f"NLL {windows['nll_nats_per_window']:.2f} nats/window, "
        f"{windows['nll_nats_per_char']:.4f} nats/char, {windows['bits_per_char']:.4f} bits/char"
    )
    if stream is not None:
        print(
            f"held-out test, one stream: {stream['nll_nats_per_char']:.4f} nats/char, "
            f"{stream['bits_per_char']:.4f} bits/char, perplexity {stream['perplexity']:.3f}"
        )
    dynamic = results["test_dynamic"]
    if dynamic is not None:
        settings = dynamic["dynamic"]
        print(
            f"held-out test, dynamic evaluation (each char scored before the model learns "
            f"from its {settings['segment_length']}-char segment; "
            f"{settings['method'].upper()} step {settings['learning_rate']:g}): "
            f"{dynamic['nll_nats_per_char']:.4f} nats/char, "
            f"{dynamic['bits_per_char']:.4f} bits/char"
        )
    print(f"sample (temperature 0.8):\n{results['sample_temperature_0.8']}")
    print(f"\nresults: {path}")
