"""`probseq train --method variational`, evaluate on a variational run, and `compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from probseq.cli.main import main

from .test_cli import TINY_FLAGS


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    words = ["to ", "be ", "or ", "not ", "that ", "is ", "the ", "question "]
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text("".join(rng.choice(words, size=4000)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_file) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for method in ("map", "variational"):
        out[method] = root / method
        args = ["train", "--corpus", str(corpus_file), "--run-dir", str(out[method]),
                "--no-progress", *TINY_FLAGS, "--max-steps", "4", "--method", method,
                "--prior-scale", "1.0", "--eval-draws", "3", "--kl-annealing-steps", "2",
                "--num-draws-per-step", "2"]  # fmt: skip
        assert main(args) == 0
    return out


def test_variational_run_reports_predictive_metrics(runs):
    metrics = json.loads((runs["variational"] / "metrics.json").read_text())
    assert metrics["step"] == 4
    valid = metrics["valid"]
    assert valid["num_draws"] == 3
    assert valid["bits_per_char"] == pytest.approx(valid["predictive_bits_per_char"])
    # The ELBO is a bound: its bits/char are at least the expected NLL's.
    assert valid["elbo_bound_bits_per_char"] >= valid["expected_nll_bits_per_char"] - 1e-9
    history = metrics["history"]
    assert {"kl", "elbo"} <= set(history[-1])


@pytest.mark.parametrize("mode", ["windows", "stream"])
def test_evaluate_variational_json(runs, capsys, mode):
    capsys.readouterr()
    args = ["evaluate", str(runs["variational"]), "--split", "valid", "--mode", mode,
            "--draws", "5", "--seed", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_draws"] == 5 and result["method"] == "variational"
    for key in ("bits_per_char", "nll_nats_per_char", "nll_nats_per_window", "num_chars"):
        assert key in result
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["bits_per_char"] == result["bits_per_char"]  # same seed, same draws


def test_sample_from_the_posterior_predictive_is_seeded(runs, capsys):
    capsys.readouterr()
    args = ["sample", str(runs["variational"]), "--prime", "to ", "--length", "20",
            "--num-samples", "2", "--seed", "5"]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("to ") and first.count("\nto ") == 1


def test_compare_prints_an_arviz_table(runs, capsys):
    capsys.readouterr()
    args = ["compare", str(runs["map"]), str(runs["variational"]), "--split", "valid",
            "--draws", "8", "--json"]  # fmt: skip
    assert main(args) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == {str(runs["map"]), str(runs["variational"])}
    for row in table.values():
        assert {"elpd_loo", "se", "weight", "elpd_method"} <= set(row)
    assert table[str(runs["map"])]["elpd_method"] == "plug_in"
    assert table[str(runs["variational"])]["elpd_method"] == "psis_loo"
    assert sum(row["weight"] for row in table.values()) == pytest.approx(1.0)
    assert main(args[:-1]) == 0
    assert "elpd" in capsys.readouterr().out


def test_compare_needs_two_runs_and_variational_needs_a_prior(runs, tmp_path, capsys):
    assert main(["compare", str(runs["map"])]) == 2
    assert "at least two" in capsys.readouterr().err
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--method", "variational",
                 "--prior-scale", "none"])  # fmt: skip
    assert code == 2
    assert "needs a prior" in capsys.readouterr().err
