"""Greedy decoding and beam search on `LSTMAutoregressive`, with and without an end token.

Regression (issue 12): decoding worked only for `EncoderDecoder`; an `LSTMAutoregressive`
got "decoding a network needs source and target_steps".
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import eos_canonical

import probseq
from probseq.distributions import beam_search, greedy_decode

V, T, EOS = 3, 4, 0
ALL = np.array(list(itertools.product(range(V), repeat=T)), np.int32)


def _net(cell="lstm"):
    net = probseq.LSTMNetwork(V, 6, seed=(7, 0), cell=cell)
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (7, i), stddev=0.9))
    return net


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("eos", [None, EOS])
def test_full_beam_enumerates_and_finds_the_mode(cell, eos):
    dist = probseq.LSTMAutoregressive(_net(cell), T, eos=eos, prefix=[1, 2], temperature=0.8)
    log_prob = dist.log_prob(ALL).numpy()
    valid = np.isfinite(log_prob)
    # With EOS: sequences whose first EOS is at 0, 1, 2, 3, or that have none.
    assert valid.sum() == (V**T if eos is None else 1 + 2 + 4 + 8 + 16)
    tokens, scores = beam_search(dist, beam_width=V**T)
    tokens, scores = tokens.numpy(), scores.numpy()
    alive = np.isfinite(scores)
    assert alive.sum() == valid.sum()  # every sequence of the distribution, once
    assert len({tuple(row) for row in tokens[alive]}) == alive.sum()
    np.testing.assert_array_equal(tokens[0], ALL[np.argmax(log_prob)])  # the exact mode
    np.testing.assert_allclose(scores[alive], dist.log_prob(tokens[alive]), rtol=1e-5)
    if eos is not None:
        assert np.all(eos_canonical(tokens[alive], EOS))


@pytest.mark.parametrize("eos", [None, EOS])
def test_greedy_equals_a_beam_of_one(eos):
    dist = probseq.LSTMAutoregressive(_net(), 6, eos=eos, prefix=[[1], [2]])
    greedy = greedy_decode(dist).numpy()
    tokens, scores = beam_search(dist, beam_width=1)
    np.testing.assert_array_equal(greedy, tokens.numpy()[:, 0])
    np.testing.assert_allclose(scores.numpy()[:, 0], dist.log_prob(greedy), rtol=1e-5)
    if eos is not None:
        assert np.all(eos_canonical(greedy, EOS))
    compiled = tf.function(lambda: greedy_decode(dist), jit_compile=True)()
    np.testing.assert_array_equal(compiled, greedy)


def test_length_penalty_ranks_by_score_per_token():
    dist = probseq.LSTMAutoregressive(_net("gru"), T, eos=EOS)
    tokens, scores = beam_search(dist, beam_width=8, length_penalty=1.0)
    tokens, scores = tokens.numpy(), scores.numpy()
    first = np.array([np.argmax(r == EOS) if (r == EOS).any() else T - 1 for r in tokens])
    normalized = scores / (first + 1)
    assert np.all(np.diff(normalized) <= 1e-6)
    np.testing.assert_allclose(scores, dist.log_prob(tokens), rtol=1e-5)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(dist, beam_width=2, length_penalty=-1.0)
