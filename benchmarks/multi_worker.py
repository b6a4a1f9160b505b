"""Throughput of `probseq train --strategy multi-worker` with two worker processes on this
machine, next to one process, on the same global batches.

Each setting runs `probseq train` twice, for `--short` and `--long` steps, in fresh run
dirs; the difference of the two wall times over the difference of the steps is the time
per step without start-up, tracing and the final save. Both workers run on this
machine's cores: on a 2-core machine they share what one process already uses, so the
figure shows the cost of the collectives and the second process, not a speed-up (that
needs a second machine).

    python benchmarks/multi_worker.py                # the main job's model, 2 x 256 LSTM
    python benchmarks/multi_worker.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probseq.distribute import tf_config  # noqa: E402
from probseq.machine import cpu_info, describe_machine  # noqa: E402

PROBSEQ = [sys.executable, "-c", "from probseq.cli.main import console; console()"]


def _ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _corpus(directory: Path) -> Path:
    path = directory / "corpus.txt"
    path.write_text(
        (
            "To be, or not to be, that is the question: whether 'tis nobler in the "
            "mind to suffer the slings and arrows of outrageous fortune. "
        )
        * 4000
    )
    return path


def _run(workers: int, steps: int, flags: list[str], directory: Path) -> float:
    """Wall seconds of one training run with `workers` processes (1: no strategy)."""
    run_dir = directory / f"run-{workers}-{steps}-{time.monotonic_ns()}"
    base = [
        *PROBSEQ,
        "train",
        "--corpus",
        str(_corpus(directory)),
        "--run-dir",
        str(run_dir),
        "--max-steps",
        str(steps),
        *flags,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    start = time.perf_counter()
    if workers == 1:
        subprocess.run(base, env=env, check=True, capture_output=True, timeout=1800)
        return time.perf_counter() - start
    ports = _ports(workers)
    processes = []
    for index in range(workers):
        processes.append(
            subprocess.Popen(
                [*base, "--strategy", "multi-worker"],
                env={**env, "TF_CONFIG": tf_config([f"127.0.0.1:{p}" for p in ports], index)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    for process in processes:
        _, err = process.communicate(timeout=1800)
        if process.returncode:
            raise RuntimeError(err.decode()[-2000:])
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch")
    parser.add_argument("--num-steps", type=int, default=50, help="window length")
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--long", type=int, default=110)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    flags = [
        "--hidden-size",
        str(args.hidden_size),
        "--num-layers",
        str(args.num_layers),
        "--batch-size",
        str(args.batch_size),
        "--num-steps",
        str(args.num_steps),
        "--eval-every",
        "100000",
        "--checkpoint-every",
        "100000",
        "--eval-chars",
        "1000",
        "--sample-length",
        "5",
        "--budget-minutes",
        "none",
        "--no-progress",
    ]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="probseq-mw-bench-") as tmp:
        for workers in (1, 2):
            short = _run(workers, args.short, flags, Path(tmp))
            long = _run(workers, args.long, flags, Path(tmp))
            per_step = (long - short) / (args.long - args.short)
            rows[workers] = dict(
                workers=workers,
                seconds_per_step=per_step,
                chars_per_second=args.batch_size * args.num_steps / per_step,
                wall_seconds=dict(short=short, long=long),
            )
            print(
                f"{workers} process(es): {per_step * 1000:.1f} ms/step, "
                f"{rows[workers]['chars_per_second']:,.0f} chars/s",
                file=sys.stderr,
            )
    result = dict(
        machine=describe_machine(cpu_info()),
        model=f"{args.num_layers} x {args.hidden_size} LSTM, global batch {args.batch_size} "
        f"x {args.num_steps} chars",
        steps=dict(short=args.short, long=args.long),
        single=rows[1],
        two_workers=rows[2],
        two_over_single=rows[1]["seconds_per_step"] / rows[2]["seconds_per_step"],
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}\nmodel: {result['model']}")
        for name in ("single", "two_workers"):
            row = result[name]
            print(
                f"  {name:<12} {row['seconds_per_step'] * 1000:8.1f} ms/step "
                f"{row['chars_per_second']:>10,.0f} chars/s"
            )
        print(f"  two workers / one process throughput: {result['two_over_single']:.2f}x")
    return result


if __name__ == "__main__":
    main()
