"""`benchmarks/compressors.py`: bits per test character of classical compressors."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_compressors_on_a_small_corpus(tmp_path, capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        compressors = importlib.import_module("compressors")
    finally:
        sys.path.remove(str(BENCHMARKS))
    text = tmp_path / "corpus.txt"
    lines = [
        f"Line {i}: to be, or not to be, that is the question number {i % 37}.\n"
        for i in range(3000)
    ]
    text.write_text("".join(lines))
    result = compressors.main(["--corpus", str(text), "--json"])
    assert json.loads(capsys.readouterr().out) == result
    rows = result["compressors"]
    assert {"bzip2", "xz"} <= set(rows)
    assert set(rows) | set(result["missing"]) == {"bzip2", "xz", "zstd", "ppmd"}
    for row in rows.values():
        # The test split repeats the training text's phrases: reading it first must help.
        assert 0 < row["given_train_bits_per_char"] < row["test_alone_bits_per_char"] < 8
    assert result["test_chars"] > 0 and result["train_chars"] > 10 * result["test_chars"]
    compressors.main(["--corpus", str(text)])
    table = capsys.readouterr().out
    assert "bits per test character" in table and "bzip2" in table
    for name in result["missing"]:
        assert f"{name:<10} not measured:" in table
