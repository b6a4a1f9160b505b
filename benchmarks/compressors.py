"""Classical compressors on a corpus's test split: the baselines a character model should
beat, in bits per test character.

Two numbers per compressor, on the corpus's own contiguous split (`probseq.data`):

- `test_alone`: `8 * size(compress(test)) / |test|`;
- `given_train`: `8 * (size(compress(train + test)) - size(compress(train))) / |test|`,
  the cost of the test text to a compressor that has read the training text first
  (what a language model trained on the training split is compared with).

`|test|` counts characters (the corpus is read as UTF-8; sizes are in bytes of the
compressed UTF-8). Compressors: bzip2 and xz (Python's `bz2` / `lzma`, always present),
zstd (the `zstd` program, level 19 with a 128 MiB window, if installed) and 7-Zip's PPMd
(order 8, 1 GiB model: the `7zz` or `7z` program of Debian's `7zip` / `p7zip-full`
package, if installed). The results say which were found.

    python benchmarks/compressors.py                   # the Shakespeare corpus
    python benchmarks/compressors.py --corpus FILE --json
"""

from __future__ import annotations

import argparse
import bz2
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _bzip2(data: bytes) -> int:
    return len(bz2.compress(data, compresslevel=9))


def _xz(data: bytes) -> int:
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def _program(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _zstd(program: str) -> Callable[[bytes], int]:
    def size(data: bytes) -> int:
        out = subprocess.run(
            [program, "-19", "--long=27", "-q", "-c"],
            input=data,
            capture_output=True,
            check=True,
        )
        return len(out.stdout)

    return size


def _ppmd(program: str) -> Callable[[bytes], int]:
    def size(data: bytes) -> int:
        with tempfile.TemporaryDirectory(prefix="probseq-7z-") as tmp:
            source, archive = Path(tmp) / "text.txt", Path(tmp) / "text.7z"
            source.write_bytes(data)
            subprocess.run(
                [
                    program,
                    "a",
                    "-t7z",
                    "-m0=PPMd:o=8:mem=1g",
                    "-bd",
                    "-bso0",
                    str(archive),
                    str(source),
                ],
                check=True,
                capture_output=True,
            )
            return archive.stat().st_size

    return size


def compressors() -> tuple[dict[str, Callable[[bytes], int]], dict[str, str]]:
    """The compressors found here, and why each missing one is missing."""
    found: dict[str, Callable[[bytes], int]] = {"bzip2": _bzip2, "xz": _xz}
    missing = {}
    zstd = _program("zstd")
    if zstd:
        found["zstd"] = _zstd(zstd)
    else:
        missing["zstd"] = "no zstd program (Debian package zstd)"
    sevenzip = _program("7zz", "7z", "7za")
    if sevenzip:
        found["ppmd"] = _ppmd(sevenzip)
    else:
        missing["ppmd"] = "no 7zz/7z program (Debian package 7zip or p7zip-full)"
    return found, missing


def measure(train: str, test: str) -> dict:
    """Bits per test character of every compressor found (see the module docstring)."""
    train_bytes, test_bytes = train.encode("utf-8"), test.encode("utf-8")
    found, missing = compressors()
    rows = {}
    for name, size in found.items():
        start = time.perf_counter()
        alone = size(test_bytes)
        both = size(train_bytes + test_bytes)
        first = size(train_bytes)
        rows[name] = dict(
            test_alone_bits_per_char=8 * alone / len(test),
            given_train_bits_per_char=8 * (both - first) / len(test),
            seconds=time.perf_counter() - start,
        )
    return dict(compressors=rows, missing=missing, test_chars=len(test), train_chars=len(train))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="shakespeare", help="corpus name or text file")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from probseq.data.corpora import load_corpus
    from probseq.machine import describe_machine

    corpus = load_corpus(args.corpus, cache_dir=args.cache_dir)
    result = dict(
        corpus=corpus.name, machine=describe_machine(), **measure(corpus.train, corpus.test)
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(
        f"{corpus.name}: {result['train_chars']:,} training and {result['test_chars']:,} test "
        "characters; bits per test character"
    )
    print(f"  {'compressor':<10} {'test alone':>11} {'given train':>12} {'seconds':>8}")
    for name, row in result["compressors"].items():
        print(
            f"  {name:<10} {row['test_alone_bits_per_char']:>11.3f} "
            f"{row['given_train_bits_per_char']:>12.3f} {row['seconds']:>8.1f}"
        )
    for name, why in result["missing"].items():
        print(f"  {name:<10} not measured: {why}")
    return result


if __name__ == "__main__":
    main()
