"""`probseq train --sequences lines`: one sequence per line, ended by the newline (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import probseq
from probseq.cli.main import main
from probseq.evaluation import evaluate_sequences

FLAGS = ["--sequences", "lines", "--hidden-size", "8", "--num-layers", "1", "--batch-size",
         "8", "--max-line-length", "40", "--eval-every", "3", "--checkpoint-every", "3",
         "--eval-chars", "500", "--sample-length", "30", "--budget-minutes", "none",
         "--warmup-steps", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    words = ["the ", "king ", "and ", "queen ", "of ", "rome ", "speak ", "thou "]
    lines = ["".join(rng.choice(words, size=rng.integers(1, 7))).strip() for _ in range(2000)]
    path = tmp_path_factory.mktemp("lines") / "verse.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train(run: Path, corpus: Path, *extra: str) -> int:
    return main(["train", "--corpus", str(corpus), "--run-dir", str(run), *FLAGS, *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus) -> Path:
    path = tmp_path_factory.mktemp("runs") / "lines"
    assert _train(path, corpus, "--max-steps", "6") == 0
    return path


def test_a_line_run_reports_per_line_metrics(run, corpus, capsys):
    config = json.loads((run / "config.json").read_text())
    assert config["sequences"] == "lines" and config["max_line_length"] == 40
    valid = json.loads((run / "metrics.json").read_text())["valid"]
    assert valid["mode"] == "lines" and valid["eos_counted_as_char"] is True
    model = probseq.load(run)
    lines = [line for line in corpus.read_text().splitlines() if line][1800:]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # The same numbers as scoring the test lines directly, each with its newline.
    rows = [model.encode(line) for line in model.corpus().text("test").splitlines() if line]
    direct = evaluate_sequences(model.network, rows, eos=model.eos, num_steps=41)
    assert result["num_lines"] == len(rows) and 50 <= len(rows) <= len(lines)
    assert result["bits_per_char"] == pytest.approx(direct.bits_per_token, rel=1e-6)
    assert result["num_chars"] == sum(len(r) + 1 for r in rows)
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    report = capsys.readouterr().out
    assert "lines, each from a zero state and ended by the newline" in report
    assert "NLL per line:" in report


def test_sampled_lines_end_at_their_newline(run, capsys):
    capsys.readouterr()
    assert main(["sample", str(run), "--prime", "the ", "--num-samples", "3", "--seed", "2"]) == 0
    texts = capsys.readouterr().out.split("\n" + "-" * 40 + "\n")
    assert len(texts) == 3
    for text in texts:
        text = text.rstrip("\n")
        assert text.startswith("the ") and "\n" not in text and len(text) <= 4 + 41


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, corpus):
    # A constant learning rate: the cosine schedule depends on max_steps, which differs
    # between the two halves of the resumed run.
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    constant = ["--lr-schedule", "constant"]
    assert _train(straight, corpus, "--max-steps", "6", *constant) == 0
    assert _train(resumed, corpus, "--max-steps", "3", *constant) == 0
    assert _train(resumed, corpus, "--max-steps", "6", *constant) == 0
    a, b = probseq.load(straight).network, probseq.load(resumed).network
    for x, y in zip(a.trainable_variables, b.trainable_variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)


def test_clear_errors_for_what_line_runs_do_not_do(run, tmp_path, corpus, capsys):
    capsys.readouterr()
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert "line model" in capsys.readouterr().err
    flat = tmp_path / "flat.txt"
    flat.write_text("no line breaks at all " * 500, encoding="utf-8")
    assert _train(tmp_path / "flat", flat) == 2
    assert "needs a corpus with line breaks" in capsys.readouterr().err


def test_a_variational_line_run_reports_the_posterior_predictive(tmp_path, corpus, capsys):
    """Line runs fit variationally too (issue 17: one loop, log_likelihood_fn of the
    weight draws); evaluate gives the posterior predictive of every line."""
    run = tmp_path / "vi_lines"
    vi = ["--method", "variational", "--eval-draws", "3"]
    assert _train(run, corpus, "--max-steps", "4", *vi) == 0
    valid = json.loads((run / "metrics.json").read_text())["valid"]
    assert valid["mode"] == "lines" and valid["num_draws"] == 3
    assert np.isfinite(valid["plug_in_bits_per_char"])
    model = probseq.load(run)
    rows = [model.encode(line) for line in model.corpus().text("test").splitlines() if line]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--seed", "4"]) == 0
    result = json.loads(capsys.readouterr().out)
    draws = model.surrogate.sample(3, seed=(4, 1))
    direct = evaluate_sequences(model.network, rows, eos=model.eos, num_steps=41, params=draws)
    assert result["method"] == "variational" and result["num_draws"] == 3
    assert result["bits_per_char"] == pytest.approx(direct.bits_per_token, rel=1e-6)
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    report = capsys.readouterr().out
    assert "posterior predictive NLL per line:" in report and "posterior draws:" in report
    assert main(["sample", str(run), "--prime", "the ", "--num-samples", "2"]) == 0
    for text in capsys.readouterr().out.split("\n" + "-" * 40 + "\n"):
        assert "\n" not in text.rstrip("\n")
    assert _train(run, corpus, "--max-steps", "6", *vi) == 0  # resumes
    assert json.loads((run / "metrics.json").read_text())["step"] == 6
