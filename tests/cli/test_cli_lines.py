"""`probseq train --sequences lines`: one sequence per line, ended by the newline (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

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


def test_a_corpus_without_line_breaks_is_refused(tmp_path, capsys):
    capsys.readouterr()
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
    # exported: the posterior predictive of a line over the same draws as evaluate's
    assert main(["export", str(run), str(tmp_path / "vi_export"), "--draws", "3"]) == 0
    served = tf.saved_model.load(str(tmp_path / "vi_export"))
    expected = probseq.load(run).evaluate_text("the king of rome", num_draws=3)
    log_prob = served.log_prob(text=tf.constant(["the king of rome"])).numpy()[0]
    assert log_prob == pytest.approx(-expected["nll_nats_per_line"], rel=1e-5)


_SERVE_LINES = """
import json, sys
sys.modules["probseq"] = None  # the SavedModel serves without probseq
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
texts = m.sample(prime=tf.constant(["the ", ""]), length=tf.constant(500),
                 temperature=tf.constant(1.0), seed=tf.constant([2, 0]))
lines = json.loads(sys.argv[2])
errors = []
for bad in ["the king\\nand rome", ""]:
    try:
        m.log_prob(text=tf.constant([bad]))
        errors.append(None)
    except tf.errors.InvalidArgumentError as e:
        errors.append(e.message)
print(json.dumps({"texts": [t.decode() for t in texts.numpy()],
                  "log_prob": m.log_prob(text=tf.constant(lines)).numpy().tolist(),
                  "info": json.loads(m.info().numpy().decode()), "errors": errors}))
"""


@pytest.mark.slow
def test_an_exported_line_model_samples_and_scores_lines(run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(run), str(out)]) == 0
    assert "a line model" in capsys.readouterr().out
    lines = ["the king and queen", "of rome\n", "speak thou " * 10]  # the last is cut at 40
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(_SERVE_LINES))
    proc = subprocess.run(
        [sys.executable, str(script), str(out), json.dumps(lines)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["info"]["line_model"] is True
    model = probseq.load(run)
    for line, log_prob in zip(lines, served["log_prob"], strict=True):
        expected = model.evaluate_text(line)  # one line, scored with its end
        assert log_prob == pytest.approx(-expected["nll_nats_per_line"], rel=1e-5)
    for prime, text in zip(["the ", ""], served["texts"], strict=True):
        assert text.startswith(prime) and "\n" not in text and len(text) <= len(prime) + 41
        assert text == model.sample_text(500, prime=prime, seed=2)  # what probseq sample gives
    assert "holds a newline" in served["errors"][0] and "must not be empty" in served["errors"][1]
