"""The one seed rule (`probseq.seeds`), as every sampler applies it (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.distributions import RecurrentAutoregressive, heads
from probseq.seeds import split, stateless_seed


def test_an_int_means_the_pair_s_0():
    np.testing.assert_array_equal(stateless_seed(7), [7, 0])
    np.testing.assert_array_equal(stateless_seed((7, 0)), [7, 0])
    np.testing.assert_array_equal(stateless_seed(np.array([7, 0], np.int64)), [7, 0])
    assert not np.array_equal(stateless_seed(7, salt="a"), stateless_seed(7))
    assert split(7, 3).shape == [3, 2]
    huge = 2**100 + 5  # TFP's joint distributions pass ints like this to their parts
    np.testing.assert_array_equal(stateless_seed(huge), [5, 0])
    np.testing.assert_array_equal(stateless_seed(-1), [2**31 - 1, 2**31 - 1])
    with pytest.raises(TypeError, match="seed must be"):
        stateless_seed(True)


def test_every_sampler_gives_the_same_result_for_an_int_and_its_pair():
    """TFP alone treats an int seed as stateful (a new draw each call)."""
    net = probseq.LSTMNetwork(5, 8, seed=3)
    token = probseq.LSTMAutoregressive(net, 6)
    np.testing.assert_array_equal(token.sample(4, seed=11), token.sample(4, seed=11))
    np.testing.assert_array_equal(token.sample(4, seed=11), token.sample(4, seed=(11, 0)))
    seq2seq = probseq.EncoderDecoder(probseq.Seq2SeqNetwork(4, 4, 6, seed=1), [[1, 2]], 3)
    np.testing.assert_array_equal(seq2seq.sample(3, seed=5), seq2seq.sample(3, seed=5))
    head = heads.Normal()
    real = RecurrentAutoregressive(probseq.RealValuedNetwork(1, 4, output_size=2, seed=1), 3, head)
    np.testing.assert_array_equal(real.sample(2, seed=9), real.sample(2, seed=(9, 0)))
    posterior = probseq.inference.MeanFieldPosterior(net.params)
    a, b = posterior.sample(2, seed=4), posterior.sample(2, seed=(4, 0))
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_array_equal(x, y)
    weights = probseq.LSTMNetwork(5, 8, seed=3).params["output"]["kernel"]
    np.testing.assert_array_equal(weights, net.params["output"]["kernel"])  # init: (3, 0)


def test_fit_map_takes_no_seed():
    net = probseq.LSTMNetwork(3, 4, seed=0)
    data = tf.data.Dataset.from_tensors(tf.zeros([2, 4], tf.int32)).repeat()
    with pytest.raises(TypeError, match="seed"):
        probseq.inference.fit_map(
            probseq.LSTMAutoregressive(net, 4), data, num_examples=2, num_steps=1, seed=1
        )
