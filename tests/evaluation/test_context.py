"""`evaluate(..., context=k)`: windows scored after `k` characters of warm-up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.distributions import LSTMAutoregressive
from probseq.evaluation import evaluate


@pytest.fixture(scope="module")
def net():
    return probseq.nn.LSTMNetwork(7, 8, 1, seed=1)


def test_context_windows_equal_the_distribution_with_that_prefix(net):
    ids = np.random.default_rng(0).integers(0, 7, 103)
    result = evaluate(net, ids, num_steps=10, context=5, batch_size=4)  # 3 batches, padded
    assert result.num_windows == 9 and result.context == 5
    assert result.num_dropped_chars == 103 - 5 - 90 and result.num_chars == 90
    want = []
    for w in range(9):
        start = 5 + 10 * w
        prefixed = LSTMAutoregressive(net, 10, prefix=ids[start - 5 : start].astype(np.int32))
        want.append(float(prefixed.log_prob(ids[start : start + 10].astype(np.int32))))
    np.testing.assert_allclose(result.window_log_prob_nats, want, rtol=1e-5, atol=1e-4)
    plain = evaluate(net, ids, num_steps=10)
    assert plain.context == 0 and plain.num_windows == 10
    assert result.as_dict()["context"] == 5


def test_context_with_posterior_draws(net):
    ids = np.random.default_rng(1).integers(0, 7, 60)
    two = tf.nest.map_structure(lambda p: tf.stack([tf.convert_to_tensor(p)] * 2), net.params)
    with_draws = evaluate(net, ids, num_steps=10, context=3, params=two)
    single = evaluate(net, ids, num_steps=10, context=3)
    np.testing.assert_allclose(
        with_draws.window_log_prob_nats, single.window_log_prob_nats, rtol=1e-5
    )


def test_context_errors(net):
    ids = np.zeros(30, np.int64)
    with pytest.raises(ValueError, match="context applies to mode='windows' only"):
        evaluate(net, ids, num_steps=10, mode="stream", context=3)
    with pytest.raises(ValueError, match="shorter than context=25 \\+ one window of num_steps=10"):
        evaluate(net, ids, num_steps=10, context=25)
    with pytest.raises(ValueError, match="context must be an int >= 0"):
        evaluate(net, ids, num_steps=10, context=-1)


def test_probseq_evaluate_context_flag(tmp_path, capsys):
    from probseq.cli.main import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be: that is the question. " * 200)
    flags = [
        "--hidden-size",
        "8",
        "--num-layers",
        "1",
        "--num-steps",
        "8",
        "--batch-size",
        "4",
        "--max-steps",
        "2",
        "--eval-chars",
        "200",
        "--sample-length",
        "5",
        "--budget-minutes",
        "none",
        "--no-progress",
    ]
    assert main(["train", "--corpus", str(corpus), "--run-dir", str(tmp_path / "r"), *flags]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r"), "--context", "20"]) == 0
    out = capsys.readouterr().out
    assert "windows of 8 chars, each scored after reading the 20 chars before it" in out
    assert main(["evaluate", str(tmp_path / "r"), "--context", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["context"] == 20 and result["mode"] == "windows"
    assert main(["evaluate", str(tmp_path / "r"), "--context", "5", "--mode", "stream"]) == 2
    assert "context applies to mode='windows' only" in capsys.readouterr().err
