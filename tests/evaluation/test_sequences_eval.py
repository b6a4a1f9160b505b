"""`evaluate_sequences`: variable-length held-out sequences, each scored on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.evaluation import evaluate_sequences

V, EOS = 5, 0
ROWS = [[1, 2, 3], [4], [2, 2, 2, 2, 1, 3], [3, 1], [1, 1, 1, 1, 1, 1, 1]]


@pytest.fixture(scope="module")
def net():
    net = probseq.LSTMNetwork(V, 8, seed=(4, 0))
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (4, i), stddev=0.5))
    return net


@pytest.mark.parametrize("eos", [None, EOS])
def test_each_sequence_is_scored_like_its_own_distribution(net, eos):
    result = evaluate_sequences(net, ROWS, eos=eos, batch_size=2)
    expected = []
    for row in ROWS:
        row = row + ([] if eos is None else [EOS])
        expected.append(float(probseq.LSTMAutoregressive(net, len(row)).log_prob(row)))
    np.testing.assert_allclose(result.log_likelihoods, expected, rtol=1e-5)
    tokens = sum(map(len, ROWS)) + (len(ROWS) if eos is not None else 0)
    assert result.num_tokens == tokens and result.num_sequences == len(ROWS)
    assert result.nll_nats_per_token == pytest.approx(-sum(expected) / tokens)
    assert result.bits_per_token == pytest.approx(result.nll_nats_per_token / math.log(2))
    report = result.as_dict()
    assert report["eos_counted_as_token"] == (eos is not None)
    # A ragged tensor and a distribution with the same eos give the same numbers.
    dist = probseq.LSTMAutoregressive(net, result.num_steps, eos=eos)
    again = evaluate_sequences(dist, tf.ragged.constant(ROWS))
    np.testing.assert_allclose(again.log_likelihoods, result.log_likelihoods, rtol=1e-6)


def test_a_sequence_of_num_steps_tokens_scores_no_eos(net):
    result = evaluate_sequences(net, [[1, 2, 3]], eos=EOS, num_steps=3)
    np.testing.assert_allclose(
        result.log_likelihoods, probseq.LSTMAutoregressive(net, 3).log_prob([1, 2, 3]), rtol=1e-6
    )
    assert result.num_tokens == 3


def test_bad_sequences_are_named(net):
    with pytest.raises(ValueError, match="sequence 1 holds token ids outside"):
        evaluate_sequences(net, [[1], [7]])
    with pytest.raises(ValueError, match="contains the end token"):
        evaluate_sequences(net, [[1, 0, 2]], eos=EOS)
    with pytest.raises(ValueError, match="more than num_steps=2"):
        evaluate_sequences(net, [[1, 2, 3]], num_steps=2)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_sequences(net, [[1], []])
    with pytest.raises(TypeError, match="integer token ids"):
        evaluate_sequences(net, [[1.5]])


def test_draws_give_the_posterior_predictive_of_every_sequence():
    """`params=` draws `[S] + core`: each sequence scores `log mean_s p(x | w_s)`, equal
    to scoring every draw on its own; one structure scores like a network holding it."""
    net = probseq.LSTMNetwork(5, 8, seed=3)
    draws = probseq.inference.MeanFieldPosterior(net.params, initial_scale=0.3).sample(
        4, seed=(1, 2)
    )
    rows = [np.array([1, 2, 3]), np.array([4]), np.array([2, 2, 1, 3, 1])]
    result = evaluate_sequences(net, rows, eos=0, num_steps=6, params=draws)
    per_draw = []
    for s in range(4):
        one = tf.nest.map_structure(lambda p, s=s: p[s], draws)
        held = probseq.LSTMNetwork(5, 8, params=one)
        per_draw.append(evaluate_sequences(held, rows, eos=0, num_steps=6).log_likelihoods)
        np.testing.assert_allclose(
            evaluate_sequences(net, rows, eos=0, num_steps=6, params=one).log_likelihoods,
            per_draw[-1],
            rtol=1e-6,
        )
    expected = np.log(np.mean(np.exp(np.array(per_draw)), axis=0))
    np.testing.assert_allclose(result.log_likelihoods, expected, rtol=1e-5)
    assert result.num_draws == 4 and result.as_dict()["num_draws"] == 4
