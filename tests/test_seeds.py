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


def test_fit_map_honours_its_seed():
    """Issue 12 first made fit_map stop taking a seed it dropped; issue 17 makes both
    fitting routines honour one: a likelihood with a `seed` keyword gets
    `fold_in(seed, step)` (tests/inference/test_fit_loop.py), so the same seed gives the
    same fit, and a distribution's log_prob, which draws nothing, is not changed by it."""
    data = tf.data.Dataset.from_tensors(tf.constant([[0, 1, 2, 1]], tf.int32)).repeat()

    def fit(seed, noisy):
        net = probseq.LSTMNetwork(3, 4, seed=0)
        dist = probseq.LSTMAutoregressive(net, 4)

        def log_likelihood(batch, seed):  # e.g. dropout: randomness from the step's seed
            return dist.log_prob(batch) + noisy * tf.random.stateless_normal([], seed)

        fn = log_likelihood if noisy else None
        return probseq.inference.fit_map(
            dist, data, num_examples=2, num_steps=3, seed=seed, log_likelihood_fn=fn
        ).trace["loss"]

    np.testing.assert_array_equal(fit(1, noisy=1.0), fit(1, noisy=1.0))
    assert not np.allclose(fit(1, noisy=1.0), fit(2, noisy=1.0))
    np.testing.assert_array_equal(fit(1, noisy=0.0), fit(2, noisy=0.0))
