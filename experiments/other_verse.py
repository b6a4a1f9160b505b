"""How a Shakespeare model carries over to English verse that is not Shakespeare's
(issue 14): Milton's *Paradise Lost* (1667), all twelve books, scored by a trained run
as one stream (static) and with dynamic evaluation, next to the classical compressors
compressing the poem alone (PPMd where 7-Zip is installed).

    python experiments/other_verse.py                       # the main job's run
    python experiments/other_verse.py --run-dir runs/X --json

The poem comes from PyPI (`probseq.data.paradise_lost_text`: the brotli==1.2.1 sdist's
Canterbury-corpus copy, sha256-checked). Characters outside the run's vocabulary are
replaced by a space (their number is reported). The run's own test split (one stream)
is scored too, for the gap. Writes `other_verse.json` in the run dir.
"""

from __future__ import annotations

if __name__ == "__main__":  # before TensorFlow is imported: no C++ log noise
    from probseq.cli.quiet import quiet_tensorflow_logs

    quiet_tensorflow_logs()

import argparse
import json
import sys
import time
from pathlib import Path

from probseq.cli.runs import load_run
from probseq.data import paradise_lost_text
from probseq.evaluation_settings import add_dynamic_arguments, dynamic_settings_from
from probseq.files import atomic_write_text
from probseq.machine import cpu_info, describe_machine

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default="runs/shakespeare_char_rnn")
    parser.add_argument("--cache-dir", default=None)
    add_dynamic_arguments(parser)
    parser.add_argument("--max-chars", type=int, default=None, help="score only the start")
    parser.add_argument("--json", action="store_true", help="print the results JSON only")
    args = parser.parse_args(argv)
    run = load_run(args.run_dir)
    poem = paradise_lost_text(args.cache_dir)[: args.max_chars]
    settings = dynamic_settings_from(args)
    started = time.perf_counter()
    common = dict(on_unknown="replace", replacement=" ")
    static = run.evaluate_text(poem, mode="stream", **common)
    dynamic = run.evaluate_text(poem, mode="dynamic", dynamic=settings, **common)
    own = run.evaluate_text(run.corpus().text("test"), mode="stream")
    seconds = time.perf_counter() - started
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compressors import compressors

    found, missing = compressors()
    data = poem.encode("utf-8")
    alone = {name: 8 * size(data) / len(poem) for name, size in found.items()}
    results = {
        "run_dir": str(Path(args.run_dir).resolve()),
        "text": "Paradise Lost (Milton, 1667), Project Gutenberg 1992 edition",
        "num_chars": len(poem),
        "num_unknown_replaced": static.get("num_unknown_skipped", 0),
        "machine": cpu_info(),
        "model_seconds": seconds,
        "poem_bits_per_char_static": static["bits_per_char"],
        "poem_bits_per_char_dynamic": dynamic["bits_per_char"],
        "own_test_bits_per_char_static": own["bits_per_char"],
        "static_gap_bits_per_char": static["bits_per_char"] - own["bits_per_char"],
        "compressors_poem_alone_bits_per_char": alone,
        "compressors_missing": missing,
        "dynamic": dynamic["dynamic"],
    }
    atomic_write_text(Path(args.run_dir) / "other_verse.json", json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(f"Paradise Lost, {len(poem):,} characters, scored by {args.run_dir}")
    print(f"machine: {describe_machine(results['machine'])}")
    gap = results["static_gap_bits_per_char"]
    print(
        f"static (one stream): {static['bits_per_char']:.4f} bits/char "
        f"(own test split {own['bits_per_char']:.4f}; gap {gap:+.4f})"
    )
    print(f"dynamic evaluation: {dynamic['bits_per_char']:.4f} bits/char")
    for name, bits in alone.items():
        print(f"{name}, the poem alone: {bits:.4f} bits/char")
    for name, why in missing.items():
        print(f"{name}: not measured ({why})")
    return results


if __name__ == "__main__":
    main()
