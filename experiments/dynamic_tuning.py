"""How the defaults of dynamic evaluation were chosen (issue 14): a trained run scored on
the start of its **validation** split (never the test split) with each setting of a grid.

    python experiments/dynamic_tuning.py --run-dir runs/sweep/streams_b128 --round 1
    python experiments/dynamic_tuning.py --run-dir runs/sweep/streams_b128 --round 2

Prints one line per setting (bits/char and seconds) after the static stream number, and
writes them to `dynamic_tuning.json` in the run dir.
"""

from __future__ import annotations

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import argparse
import dataclasses
import json
import time
from pathlib import Path

from probseq.cli.runs import load_run
from probseq.evaluation import DynamicSettings
from probseq.files import atomic_write_text
from probseq.machine import cpu_info

# (method, segment_length, learning_rate, decay) of the two rounds in
# experiments/RESULTS.md: SGD steps and RMS-scaled steps on 30,000 validation characters,
# then RMS settings around the best on 60,000.
ROUNDS = {
    1: (
        ("sgd", 50, 0.1, 0.0),
        ("sgd", 50, 0.03, 0.0),
        ("rms", 50, 3e-4, 0.01),
        ("rms", 50, 1e-3, 0.01),
        ("rms", 50, 1e-4, 0.01),
    ),
    2: (
        ("rms", 50, 3e-4, 0.01),
        ("rms", 50, 3e-4, 0.001),
        ("rms", 50, 5e-4, 0.05),
        ("rms", 25, 2e-4, 0.01),
    ),
}
CHARS = {1: 30_000, 2: 60_000}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--round", type=int, choices=sorted(ROUNDS), default=2)
    parser.add_argument("--chars", type=int, default=None, help="validation chars scored")
    args = parser.parse_args(argv)
    run = load_run(args.run_dir)
    text = run.corpus().text("valid")[: args.chars or CHARS[args.round]]
    static = run.evaluate_text(text, mode="stream")["bits_per_char"]
    print(f"static (one stream), first {len(text):,} validation chars: {static:.4f}", flush=True)
    rows = []
    for method, segment, rate, decay in ROUNDS[args.round]:
        settings = DynamicSettings(
            segment_length=segment, learning_rate=rate, decay=decay, method=method
        )
        started = time.perf_counter()
        bits = run.evaluate_text(text, mode="dynamic", dynamic=settings)["bits_per_char"]
        seconds = time.perf_counter() - started
        rows.append(dict(dataclasses.asdict(settings), bits_per_char=bits, seconds=seconds))
        print(
            f"{method} segment {segment} lr {rate:g} decay {decay:g}: {bits:.4f} ({seconds:.0f} s)",
            flush=True,
        )
    results = dict(
        run_dir=str(Path(args.run_dir).resolve()),
        chars=len(text),
        static_bits_per_char=static,
        settings=rows,
        machine=cpu_info(),
    )
    path = Path(args.run_dir) / f"dynamic_tuning_round{args.round}.json"
    atomic_write_text(path, json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
