"""The `probseq` command line: train, evaluate and sample character language models.

    probseq train --corpus shakespeare --run-dir runs/shk [--config FILE] [--hidden-size N ...]
    probseq evaluate RUN_DIR [--split test | --text PATH] [--mode windows|stream|dynamic]
                     [--dynamic] [--json]
    probseq sample RUN_DIR --prime "The " --length 500 [--temperature 0.8] [--seed 1]
    probseq compare RUN_DIR RUN_DIR ... [--split test] [--draws 100]
    probseq export RUN_DIR OUT_DIR [--draws 16] [--seed 0]
    probseq forecast --csv FILE --column y --prediction-length 12 [--out DIR] [--backtest 3]

Run `probseq COMMAND --help` for every flag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from probseq.cli.config import (
    ConfigError,
    TrainConfig,
    field_choices,
    field_help,
    load_config_file,
    parse_flag,
    resolve_config,
)
from probseq.cli.forecast import add_forecast_parser, run_forecast
from probseq.cli.interrupts import run_interruptible

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `probseq` command."""
    parser = argparse.ArgumentParser(
        prog="probseq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"probseq {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train or resume a run")
    train.add_argument("--run-dir", required=True, help="run directory (resumed if it exists)")
    train.add_argument("--config", help="JSON file of settings (flags override it)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--measure-setup",
        action="store_true",
        help="choose the thread set-up and XLA for this run's shape by measuring both "
        "ways on this machine (about a minute the first time, cached per machine and "
        "shape; an explicit --jit-compile is kept) instead of fixed thresholds",
    )
    train.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi-worker"),
        default="default",
        help="default: one process; mirrored: this machine's devices; multi-worker: one "
        "process per worker, cluster from TF_CONFIG (see the README)",
    )
    defaults = TrainConfig()
    choices = field_choices()
    for name, text in field_help().items():  # one flag per TrainConfig field
        train.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=parse_flag(name),
            choices=choices[name],
            default=argparse.SUPPRESS,
            help=f"{text} (default: {getattr(defaults, name)!r})",
        )

    evaluate = commands.add_parser("evaluate", help="held-out NLL / bits per char of a run")
    evaluate.add_argument("run_dir")
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument("--split", choices=("train", "valid", "test"), default="test")
    source.add_argument("--text", help="evaluate on this text file instead of a split")
    evaluate.add_argument(
        "--mode",
        choices=("windows", "stream", "dynamic"),
        default="windows",
        help="windows (each from a zero state), stream (one sequence, state carried) or "
        "dynamic (a stream whose model learns from each segment after scoring it)",
    )
    evaluate.add_argument(
        "--dynamic",
        action="store_true",
        help="dynamic evaluation (Krause et al., 2018; same as --mode dynamic): every char "
        "scored before the model learns from it; the saved model is not changed",
    )
    from probseq.evaluation_settings import add_dynamic_arguments  # no TensorFlow

    add_dynamic_arguments(evaluate, int_type=_positive_int)
    evaluate.add_argument(
        "--no-progress", action="store_true", help="no progress bar (dynamic evaluation)"
    )
    evaluate.add_argument(
        "--num-steps", type=_positive_int, help="window length (default: the run's)"
    )
    evaluate.add_argument(
        "--on-unknown",
        choices=("error", "skip", "replace"),
        default="error",
        help="characters outside the run's vocabulary: stop with an error (default), skip "
        "them, or replace them with --replacement",
    )
    evaluate.add_argument(
        "--replacement", help="with --on-unknown replace: the symbol to use (default: space)"
    )
    evaluate.add_argument(
        "--context",
        type=int,
        default=0,
        metavar="K",
        help="windows mode: score each window after reading the K characters before it "
        "(default 0: every window from a zero state)",
    )
    evaluate.add_argument("--draws", type=_positive_int, help="posterior draws (variational runs)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of posterior draws")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    sample = commands.add_parser("sample", help="sample text from a run")
    sample.add_argument("run_dir")
    sample.add_argument("--prime", default="The ", help="priming text (may be empty)")
    sample.add_argument("--length", type=_positive_int, default=500, help="characters to generate")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--seed", type=int, default=1)
    sample.add_argument("--num-samples", type=_positive_int, default=1)
    compare = commands.add_parser(
        "compare", help="ArviZ comparison (elpd, se, weights) of runs on held-out windows"
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--split", choices=("train", "valid", "test"), default="test")
    compare.add_argument(
        "--draws", type=_positive_int, default=100, help="posterior draws (VI runs)"
    )
    compare.add_argument("--seed", type=int, default=0, help="seed of posterior draws")
    compare.add_argument("--max-chars", type=int, help="use only the first N characters")
    compare.add_argument("--ic", choices=("loo", "waic"), default="loo")
    compare.add_argument("--json", action="store_true", help="print the table as JSON")

    export = commands.add_parser(
        "export", help="write a TensorFlow SavedModel that samples and scores text"
    )
    export.add_argument("run_dir")
    export.add_argument("out_dir", help="new (or empty) directory for the SavedModel")
    export.add_argument(
        "--draws",
        type=_positive_int,
        help="variational runs: weight draws of the exported posterior predictive "
        "(default: the run's eval_draws)",
    )
    export.add_argument(
        "--seed", type=int, default=0, help="variational runs: seed of those weight draws"
    )
    add_forecast_parser(commands, _positive_int)
    return parser


def _positive_int(text: str) -> int:
    """argparse `type=` for counts: the flag's text as an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _version() -> str:
    from probseq import __version__

    return __version__


def _run_compare(args: argparse.Namespace) -> int:
    from probseq.cli.runs import compare_runs

    table, num_windows = compare_runs(
        args.run_dirs,
        split=args.split,
        num_draws=args.draws,
        seed=args.seed,
        max_chars=args.max_chars,
        ic=args.ic,
    )
    if args.json:
        print(table.to_json(orient="index"))
        return 0
    columns = [c for c in table.columns if c not in ("scale", "warning")]
    print(f"ArviZ comparison on {num_windows} held-out windows ({args.split} split), log scale:")
    print(table[columns].to_string(float_format=lambda v: f"{v:.2f}"))
    print(
        "elpd: expected log predictive density (higher is better); se: its standard error; "
        "weight: stacking weight. Point estimates (MAP) enter with their plug-in value."
    )
    return 0


def _train_overrides(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in field_help() if hasattr(args, name)}


def _run_train(args: argparse.Namespace) -> int:
    from probseq.cli.train import train

    file_values = load_config_file(args.config) if args.config else {}
    overrides = _train_overrides(args)
    config = resolve_config(file_values, overrides)
    hidden = [config.hidden_size] * config.num_layers
    threads = use_probseq_threads(config.batch_size, hidden, measure=args.measure_setup)
    if args.measure_setup:
        print(f"threads: {threads}", file=sys.stderr, flush=True)
        if "jit_compile" not in overrides and "jit_compile" not in file_values:
            from probseq.nn.measured import measured_xla

            jit, reason = measured_xla(
                "train", config.batch_size, hidden, num_steps=config.num_steps
            )
            print(f"XLA for training: {'on' if jit else 'off'} ({reason})", file=sys.stderr)
            overrides["jit_compile"] = jit
            config = resolve_config(file_values, overrides)
    from probseq.distribute import make_strategy

    strategy = make_strategy(args.strategy)  # before TensorFlow runs an op
    explicit = set(file_values) | set(overrides)
    metrics = train(
        config,
        args.run_dir,
        explicit=explicit,
        progress=not args.no_progress,
        strategy=strategy,
    )
    what = " (posterior predictive)" if metrics["config"]["method"] == "variational" else ""
    valid = metrics["valid"]
    if "nll_nats_per_line" in valid:
        per = f"{valid['nll_nats_per_line']:.2f} nats per line, the newline counted"
    else:
        window = metrics["config"]["num_steps"]
        per = f"{valid['nll_nats_per_window']:.2f} nats per {window}-char window"
    print(
        f"step {metrics['step']}: validation{what} {metrics['valid_bits_per_char']:.4f} "
        f"bits/char ({per}). Run dir: {args.run_dir}"
    )
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    if args.replacement is not None and args.on_unknown != "replace":
        raise ValueError("--replacement is used with --on-unknown replace only.")
    mode = "dynamic" if args.dynamic else args.mode
    dynamic, progress = None, None
    if mode == "dynamic":
        from probseq.evaluation_settings import dynamic_settings_from

        dynamic = dynamic_settings_from(args)
        progress = None if args.no_progress else _CharProgress("dynamic evaluation")
    try:
        result = _evaluate(args, mode, dynamic, progress)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    print(format_evaluation(result))
    return 0


class _CharProgress:
    """`progress(done, total)` as a tqdm bar of characters on stderr."""

    def __init__(self, description: str):
        self.description, self.bar = description, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, unit="char", unit_scale=True, desc=self.description,
                file=sys.stderr, leave=False,
            )  # fmt: skip
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _evaluate(args: argparse.Namespace, mode: str, dynamic, progress) -> dict:
    from probseq.cli.runs import evaluate_run

    return evaluate_run(
        args.run_dir,
        split=None if args.text else args.split,
        text_path=args.text,
        mode=mode,
        num_steps=args.num_steps,
        on_unknown=args.on_unknown,
        replacement=args.replacement,
        draws=args.draws,
        seed=args.seed,
        context=args.context,
        dynamic=dynamic,
        progress=progress,
    )


def format_evaluation(result: dict) -> str:
    """The human-readable report of `probseq evaluate` (MAP and variational runs)."""
    variational = result.get("method") == "variational"
    what = "posterior predictive " if variational else ""
    rows = [
        ("run", f"{result['run_dir']} ({result['method']}, checkpoint {result['checkpoint']})"),
        ("data", f"{result['source']} ({result['num_chars']:,} chars scored)"),
    ]
    if result.get("num_unknown_skipped"):
        verb = "replaced" if result.get("on_unknown") == "replace" else "skipped"
        rows.append(("unknown characters", f"{result['num_unknown_skipped']:,} {verb}"))
    if result["mode"] == "windows" and result.get("context"):
        mode = (
            f"windows of {result['num_steps']} chars, each scored after reading the "
            f"{result['context']} chars before it"
        )
    elif result["mode"] == "windows":
        mode = f"windows of {result['num_steps']} chars, each from a zero state"
    elif result["mode"] == "lines":
        mode = (
            f"{result['num_lines']:,} lines, each from a zero state and ended by the "
            "newline (counted as a char)"
        )
    elif result["mode"] == "dynamic":
        settings = result["dynamic"]
        streams = settings["num_streams"]
        mode = (
            "dynamic evaluation: "
            + ("one stream" if streams == 1 else f"{streams} contiguous streams")
            + f", the {result['weights']} weights learning from each "
            f"{settings['segment_length']}-char segment after scoring it "
            f"({settings.get('method', 'sgd').upper()} step {settings['learning_rate']:g}, "
            f"decay {settings['decay']:g}); the saved model is unchanged"
        )
    else:
        mode = "one stream, state carried over the whole text"
    per = "line" if result["mode"] == "lines" else "window"
    rows += [
        ("mode", mode),
        (f"{what}NLL per {per}", f"{result[f'nll_nats_per_{per}']:.4f} nats"),
        (f"{what}NLL per char", f"{result['nll_nats_per_char']:.4f} nats"),
        (f"{what}bits per char", f"{result['bits_per_char']:.4f}"),
        (f"{what}perplexity", f"{result['perplexity']:.4f}"),
    ]
    if variational and result["mode"] != "dynamic":
        seed = result.get("seed")
        seed = seed[0] if isinstance(seed, list) else seed  # the --seed given
        rows.append(("posterior draws", f"{result['num_draws']} (seed {seed})"))
        if result.get("plug_in_bits_per_char") is not None:
            plug_in = result["plug_in_bits_per_char"]
            rows.append(("plug-in bits per char (posterior mean)", f"{plug_in:.4f}"))
        if result.get("elbo_bound_bits_per_char") is not None:
            elbo = result["elbo_bound_bits_per_char"]
            rows.append(("ELBO bound, bits per char", f"{elbo:.4f}"))
    return "\n".join(f"{label + ':':<21} {value}" for label, value in rows)


def _run_sample(args: argparse.Namespace) -> int:
    from probseq.cli.runs import sample_run

    texts = sample_run(
        args.run_dir,
        prime=args.prime,
        length=args.length,
        temperature=args.temperature,
        seed=args.seed,
        num_samples=args.num_samples,
    )
    for index, text in enumerate(texts):
        if index:
            print("\n" + "-" * 40)
        print(text)
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from probseq.trained import load

    model = load(args.run_dir)
    info = model.export(args.out_dir, num_draws=args.draws, seed=args.seed)
    print(f"SavedModel written to {args.out_dir}: {info['description']}")
    print(
        "Use it without probseq: m = tf.saved_model.load(OUT_DIR); "
        'm.sample(prime=tf.constant(["The "]), length=tf.constant(200), '
        "temperature=tf.constant(0.8), seed=tf.constant([1, 0])); "
        'm.log_prob(text=tf.constant(["..."]))'
    )
    return 0


def use_probseq_threads(
    batch_size: int | None = None, hidden_sizes=None, *, measure: bool = False
) -> str | None:
    """`probseq.nn.threads.use_probseq_threads` (its old home, kept for scripts; imported
    on call so that this module loads without TensorFlow)."""
    from probseq.nn import threads

    return threads.use_probseq_threads(batch_size, hidden_sizes, measure=measure)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `probseq` console script. Returns the exit status.

    Sets `TF_CPP_MIN_LOG_LEVEL=3` before TensorFlow is imported unless the user set it
    (the console script also filters the C++ lines that ignore it, see `console`);
    Ctrl-C at any moment exits with status 130 and one line saying what was saved
    (`probseq.cli.interrupts`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    nothing = {
        "train": "interrupted before training started; no checkpoint was written.",
    }.get(args.command, "interrupted; nothing was written.")
    return run_interruptible(lambda: _dispatch(args), nothing_saved=nothing)


def _dispatch(args: argparse.Namespace) -> int:
    _quiet_tensorflow_python_logs()
    if args.command != "train":  # train decides once its config is resolved
        use_probseq_threads()
    from probseq.cli.rundir import RunDirError
    from probseq.data import CorpusError, DownloadError, UnknownCharacterError
    from probseq.distribute import WorkerLostError

    handlers = {
        "train": _run_train,
        "evaluate": _run_evaluate,
        "sample": _run_sample,
        "compare": _run_compare,
        "export": _run_export,
        "forecast": run_forecast,
    }
    try:
        with warnings.catch_warnings():
            # A command-line user gets one line per warning, not Python's source lines.
            warnings.showwarning = lambda message, *_, **__: print(
                f"probseq {args.command}: warning: {message}", file=sys.stderr
            )
            return handlers[args.command](args)
    except WorkerLostError as error:
        print(f"probseq {args.command}: error: {error}", file=sys.stderr)
        return 3
    except UnknownCharacterError as error:
        print(
            f"probseq {args.command}: error: {error.describe()}. "
            + _UNKNOWN_HINTS.get(args.command, ""),
            file=sys.stderr,
        )
        return 2
    except (
        ConfigError,
        RunDirError,
        CorpusError,
        DownloadError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
    ) as error:
        print(f"probseq {args.command}: error: {error}", file=sys.stderr)
        return 2


_UNKNOWN_HINTS = {
    "evaluate": "Pass --on-unknown skip to drop them, or --on-unknown replace "
    "[--replacement C] to score them as C.",
    "sample": "Use a --prime made of the run's characters.",
}


def _quiet_tensorflow_python_logs() -> None:
    """TensorFlow's Python warnings (retracing notices and the like) are for developers;
    unless the user asked for logs (`TF_CPP_MIN_LOG_LEVEL` below 2) they are lowered to
    errors. Its C++ log lines are filtered by the console script (`console`)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("2", "3"):
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")


def console() -> None:
    """The `probseq` console script: `main()`, then exit with its status.

    Unless the user set `TF_CPP_MIN_LOG_LEVEL`, TensorFlow's C++ log lines are filtered
    out of stderr (`probseq.cli.quiet`). After Ctrl-C the process leaves with
    `os._exit(130)` once the output is flushed
    (every file of the run is closed by then): interpreter shutdown after an interrupted
    TensorFlow import or a running tf.data pipeline can otherwise hang.
    """
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL") is None
    if quiet:
        from probseq.cli.quiet import StderrFilter

        stderr_filter = StderrFilter()
        stderr_filter.start()
    try:
        status = main()
    finally:
        if quiet:
            stderr_filter.stop()
    if status == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    console()
