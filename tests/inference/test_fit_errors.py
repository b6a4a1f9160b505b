"""Fitting refuses what it cannot fit, and names bad data as the cause of a NaN loss.

Regressions (issue 11): `fit_map` on a distribution built with `params=` ran, decayed
network variables the model never reads and returned a normal-looking trace while
`log_prob` never changed (defect 2); with `jit_compile=True` an out-of-range token gave
a NaN loss and the advice to lower the learning rate (defect 4).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.inference import MeanFieldPosterior, fit_map

V, H, T = 3, 8, 5


def _data(tokens) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensors(tf.constant(tokens, tf.int32)).repeat()


@pytest.mark.parametrize("source", ["tensors", "posterior_draws"])
def test_fit_map_refuses_a_distribution_that_reads_explicit_params(source):
    net = probseq.LSTMNetwork(V, H, seed=1)
    if source == "tensors":
        params = tf.nest.map_structure(tf.convert_to_tensor, net.params)
    else:
        params = MeanFieldPosterior(net.params).sample(2, seed=(1, 2))
    dist = probseq.LSTMAutoregressive(net, T, params=params)
    assert dist.trainable_variables  # the network's, which the model does not read
    before = [v.numpy().copy() for v in net.trainable_variables]
    with pytest.raises(ValueError, match=r"does not depend on \d+ of the \d+ trainable"):
        fit_map(dist, _data([[0, 1, 2, 1, 0]]), num_examples=10, num_steps=3)
    for old, variable in zip(before, net.trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old)  # nothing was changed


def test_fit_map_still_fits_a_network_distribution():
    net = probseq.LSTMNetwork(V, H, seed=1)
    dist = probseq.LSTMAutoregressive(net, T)
    data = _data([[0, 1, 2, 1, 0], [2, 2, 1, 0, 0]])
    before = float(tf.reduce_mean(dist.log_prob([[0, 1, 2, 1, 0], [2, 2, 1, 0, 0]])))
    fit_map(dist, data, num_examples=2, num_steps=30, learning_rate=0.05, prior=None)
    after = float(tf.reduce_mean(dist.log_prob([[0, 1, 2, 1, 0], [2, 2, 1, 0, 0]])))
    assert after > before + 1.0


@pytest.mark.parametrize("jit_compile", [False, True])
def test_out_of_range_tokens_are_named_as_bad_data(jit_compile):
    net = probseq.LSTMNetwork(V, H, seed=1)
    dist = probseq.LSTMAutoregressive(net, T)
    bad = _data([[0, 1, 2, 7, 0]])
    if jit_compile:
        # XLA clamps the gather and turns the label into NaN: the loop diagnoses the batch.
        with pytest.raises(ValueError, match=r"token ids outside \[0, vocab_size=3\).*max 7"):
            fit_map(dist, bad, num_examples=1, num_steps=2, jit_compile=True)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError):
            fit_map(dist, bad, num_examples=1, num_steps=2)
