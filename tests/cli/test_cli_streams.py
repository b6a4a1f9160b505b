"""`probseq train --sequences streams`: truncated BPTT with the state carried across
batches, exact resume, locked dropout and decoupled weight decay (issue 14)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.cli.config import ConfigError, TrainConfig
from probseq.cli.main import main
from probseq.cli.tasks import StreamsTask
from probseq.data import load_corpus
from probseq.distributions.kernel import token_log_probs
from probseq.nn import LSTMNetwork, cell_initial_state, get_cell

FLAGS = ["--sequences", "streams", "--hidden-size", "8", "--num-layers", "2", "--batch-size",
         "4", "--num-steps", "10", "--eval-every", "3", "--checkpoint-every", "2",
         "--eval-chars", "300", "--sample-length", "20", "--budget-minutes", "none",
         "--lr-schedule", "constant", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    words = ["to ", "be ", "or ", "not ", "that ", "is ", "the ", "question\n"]
    path = tmp_path_factory.mktemp("streams") / "text.txt"
    path.write_text("".join(rng.choice(words, size=3000)), encoding="utf-8")
    return path


def _train(run: Path, corpus: Path, *extra: str) -> int:
    return main(["train", "--corpus", str(corpus), "--run-dir", str(run), *FLAGS, *extra])


def _carried(run: Path) -> list[np.ndarray]:
    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("carried"))
    return [reader.get_tensor(n) for n in names]


def test_resume_continues_with_the_same_batches_and_state(tmp_path, corpus):
    """Five steps straight, or two then three after a restart (the restart between two
    checkpoints: it resumes from the one at step 2): the same weights and the same
    carried state, bit for bit up to float reordering."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(straight, corpus, "--max-steps", "5") == 0
    assert _train(resumed, corpus, "--max-steps", "2") == 0
    assert _train(resumed, corpus, "--max-steps", "5") == 0
    a, b = probseq.load(straight).network, probseq.load(resumed).network
    for x, y in zip(a.trainable_variables, b.trainable_variables, strict=True):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7)
    state_a, state_b = _carried(straight), _carried(resumed)
    assert len(state_a) == 4 and state_a[0].shape == (4, 8)  # 2 layers x (c, h), [B, H]
    assert np.abs(state_a[0]).max() > 0  # carried, not reset
    for x, y in zip(state_a, state_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    config = json.loads((straight / "config.json").read_text())
    assert config["sequences"] == "streams"


def test_the_loss_reads_each_stream_on_from_the_state_it_left(corpus):
    """Batch j+1 of the task starts from the state that batch j ended in (and the first
    batch of an epoch from zeros): the task's log-likelihood of two consecutive batches
    equals a direct pass over both chunks of every stream in one go."""
    config = TrainConfig(corpus=str(corpus), hidden_size=6, num_layers=1, batch_size=3,
                         num_steps=7, sequences="streams")  # fmt: skip
    corpus_ = load_corpus(str(corpus))
    network = LSTMNetwork(len(corpus_.vocabulary), 6, 1, seed=3)
    task = StreamsTask(config, corpus_, network)
    batches = list(task.dataset(0).take(2).as_numpy_iterator())
    total = sum(task.log_likelihood_fn(b, seed=tf.constant([1, 2])) for b in batches)
    joined = np.concatenate([batches[0]["windows"], batches[1]["windows"][:, 1:]], axis=1)
    zero = cell_initial_state(network.params, [3], cell=get_cell("lstm"))
    direct, _ = token_log_probs(
        network.params, joined[:, :-1], tf.transpose(joined[:, 1:]), zero, cell=get_cell("lstm")
    )
    np.testing.assert_allclose(total.numpy(), tf.reduce_sum(direct, 0).numpy(), rtol=1e-5)
    # a later run starting at batch 2 resumes there (contiguous_batches' own contract)
    again = next(iter(task.dataset(1)))
    np.testing.assert_array_equal(again["windows"].numpy(), batches[1]["windows"])
    # state_reset=1: every batch from zeros (each stream's state dropped before it)
    reset = StreamsTask(dataclasses.replace(config, state_reset=1.0), corpus_, network)
    second = reset.log_likelihood_fn(batches[1], seed=tf.constant([1, 3]))
    alone, _ = token_log_probs(
        network.params, batches[1]["windows"][:, :-1], tf.transpose(batches[1]["windows"][:, 1:]),
        zero, cell=get_cell("lstm"),
    )  # fmt: skip
    np.testing.assert_allclose(second.numpy(), tf.reduce_sum(alone, 0).numpy(), rtol=1e-5)


def test_dropout_and_weight_decay_train_and_are_recorded(tmp_path, corpus, capsys):
    run = tmp_path / "regularized"
    extra = ["--dropout", "0.25", "--weight-decay", "0.1", "--cell", "lnlstm"]
    assert _train(run, corpus, "--max-steps", "3", *extra) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["dropout"] == 0.25 and config["weight_decay"] == 0.1
    assert config["cell"] == "lnlstm"
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["valid_bits_per_char"])
    # windows with dropout: a different loss per step seed, none at evaluation
    windows = tmp_path / "windows_dropout"
    flags = ["windows" if f == "streams" else f for f in FLAGS]
    assert main(["train", "--corpus", str(corpus), "--run-dir", str(windows), *flags,
                 "--max-steps", "2", "--dropout", "0.5"]) == 0  # fmt: skip
    model = probseq.load(windows)
    text = model.corpus().text("test")[:200]
    assert model.evaluate_text(text) == model.evaluate_text(text)  # deterministic


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(sequences="streams", method="variational"), "use method='map'"),
        (dict(dropout=0.1, method="variational"), "use method='map'"),
        (dict(dropout=0.1, sequences="lines"), "not 'lines'"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(state_reset=0.5), "state_reset applies to sequences='streams'"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings)


def test_too_short_a_text_for_one_batch_is_refused(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 40, encoding="utf-8")
    capsys.readouterr()
    assert main(["train", "--corpus", str(short), "--run-dir", str(tmp_path / "r"), *FLAGS,
                 "--batch-size", "64", "--max-steps", "1"]) == 2  # fmt: skip
    assert "shorter than one batch" in capsys.readouterr().err


def test_evaluate_dynamic_reports_and_leaves_the_run_unchanged(tmp_path, corpus, capsys):
    from probseq.evaluation import DynamicSettings, dynamic_evaluate

    run = tmp_path / "dynamic"
    assert _train(run, corpus, "--max-steps", "2") == 0
    before = [v.numpy().copy() for v in probseq.load(run).network.trainable_variables]
    capsys.readouterr()
    flags = ["--dynamic", "--dynamic-lr", "0.5", "--dynamic-segment", "30", "--no-progress",
             "--dynamic-method", "sgd"]  # fmt: skip
    assert main(["evaluate", str(run), "--split", "test", *flags, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = probseq.load(run)
    ids = model.encode(model.corpus().text("test"))
    direct = dynamic_evaluate(
        model.network, ids, DynamicSettings(segment_length=30, learning_rate=0.5, method="sgd")
    )
    assert result["mode"] == "dynamic" and result["weights"] == "MAP"
    assert result["bits_per_char"] == pytest.approx(direct.bits_per_char, rel=1e-5)
    assert result["dynamic"]["learning_rate"] == 0.5
    assert main(["evaluate", str(run), "--split", "test", *flags]) == 0
    report = capsys.readouterr().out
    assert "dynamic evaluation: one stream, the MAP weights learning from each 30-char" in report
    assert "the saved model is unchanged" in report and "bits per char:" in report
    for old, variable in zip(before, probseq.load(run).network.trainable_variables, strict=True):
        np.testing.assert_array_equal(old, variable.numpy())
    assert main(["evaluate", str(run), "--dynamic", "--dynamic-lr", "-1"]) == 2
    assert "learning_rate must be a number >= 0" in capsys.readouterr().err


def test_bf16_training_ends_within_0_02_bits_of_fp32(tmp_path, corpus, capsys):
    """The same run (steps, seed) with bfloat16 matmuls and in fp32: validation bits/char
    within 0.02 of each other; the run records the precision, `auto` says what it chose."""
    steps = ["--max-steps", "60", "--eval-every", "60", "--learning-rate", "0.03"]
    results = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        assert _train(run, corpus, *steps, "--precision", precision) == 0
        assert json.loads((run / "config.json").read_text())["precision"] == precision
        results[precision] = json.loads((run / "metrics.json").read_text())
    fp32, bf16 = (results[p]["valid_bits_per_char"] for p in ("fp32", "bf16"))
    assert fp32 < 3.3  # it learned (uniform over the vocabulary: 3.8)
    assert abs(bf16 - fp32) < 0.02 and bf16 != fp32
    capsys.readouterr()
    assert _train(tmp_path / "auto", corpus, "--max-steps", "1", "--precision", "auto") == 0
    chosen = json.loads((tmp_path / "auto" / "config.json").read_text())["precision"]
    assert chosen in ("fp32", "bf16") and f"precision: {chosen} (auto: " in capsys.readouterr().err


def test_measure_setup_chooses_xla_for_training_and_keeps_an_explicit_choice(
    tmp_path, corpus, capsys, monkeypatch
):
    """`probseq train --measure-setup`: the thread set-up and XLA for training come from
    `probseq.nn.measured` (here its environment overrides, so no probe runs), are said
    on stderr and recorded in the run's config; an explicit --jit-compile stays."""
    monkeypatch.setenv("PROBSEQ_THREADS", "probseq")
    monkeypatch.setenv("PROBSEQ_XLA", "train=on")
    assert _train(tmp_path / "measured", corpus, "--max-steps", "2", "--measure-setup") == 0
    err = capsys.readouterr().err
    assert "XLA for training: on ($PROBSEQ_XLA=train=on)" in err and "threads: " in err
    assert json.loads((tmp_path / "measured" / "config.json").read_text())["jit_compile"] is True
    explicit = ["--max-steps", "2", "--measure-setup", "--jit-compile", "false"]
    assert _train(tmp_path / "explicit", corpus, *explicit) == 0
    assert "XLA for training" not in capsys.readouterr().err
    assert json.loads((tmp_path / "explicit" / "config.json").read_text())["jit_compile"] is False
