"""A user-defined cell travels with its network: every consumer uses its equations.

Regression (issue 12): evaluation kernels guessed the cell from the gate width, so a
second 4-gate cell (e.g. a peephole or layer-norm LSTM) was silently evaluated with the
LSTM's equations.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.evaluation import evaluate, posterior_predictive, stream_log_prob
from probseq.inference import MeanFieldPosterior
from probseq.nn import Cell, LSTMState, get_cell, register_cell

V, H, T = 4, 6, 7


def _no_forget_bias_update(a, r, state):
    """The LSTM without its +1 forget bias: same shapes, different equations."""
    i, f, o, u = tf.split(a + r, 4, axis=-1)
    c = tf.sigmoid(f) * state.c + tf.sigmoid(i) * tf.tanh(u)
    return LSTMState(c, tf.sigmoid(o) * tf.tanh(c))


NO_FORGET_BIAS = Cell("lstm_no_forget_bias", 4, _no_forget_bias_update, lambda z: LSTMState(z, z))


@pytest.fixture(scope="module")
def networks():
    register_cell(NO_FORGET_BIAS, replace=True)
    custom = probseq.LSTMNetwork(V, H, seed=(2, 0), cell="lstm_no_forget_bias")
    lstm = probseq.LSTMNetwork(V, H, seed=(2, 0))
    pairs = zip(custom.trainable_variables, lstm.trainable_variables, strict=True)
    for i, (a, b) in enumerate(pairs):
        noise = tf.random.stateless_normal(a.shape, seed=(5, i), stddev=0.7)
        a.assign(b + noise)
        b.assign(a)
    return custom, lstm


def test_registry():
    assert get_cell(NO_FORGET_BIAS) is NO_FORGET_BIAS  # usable without registering
    with pytest.raises(ValueError, match="already registered"):
        register_cell(Cell("lstm", 4, _no_forget_bias_update, lambda z: LSTMState(z, z)))
    with pytest.raises(ValueError, match="registered"):
        probseq.LSTMNetwork(V, H, cell="no_such_cell")


def test_every_consumer_uses_the_networks_cell(networks):
    custom, lstm = networks
    assert custom.cell == "lstm_no_forget_bias" and custom.cell_type is NO_FORGET_BIAS
    ids = tf.random.stateless_uniform([5 * T], (1, 1), 0, V, tf.int32).numpy()
    windows = ids.reshape(5, T)
    own = probseq.LSTMAutoregressive(custom, T).log_prob(windows).numpy()
    other = probseq.LSTMAutoregressive(lstm, T).log_prob(windows).numpy()
    assert np.abs(own - other).max() > 1e-2  # same weights, different equations
    result = evaluate(custom, ids, num_steps=T)
    np.testing.assert_allclose(result.nll_nats_per_window, -own.mean(), rtol=1e-5)
    whole = probseq.LSTMAutoregressive(custom, ids.size).log_prob(ids).numpy()
    stream = evaluate(custom, ids, num_steps=T, mode="stream")
    np.testing.assert_allclose(stream.nll_nats_per_char * ids.size, -whole, rtol=1e-5)
    graph = stream_log_prob(custom.params, ids, tf.constant(1.0), cell=custom.cell_type)
    np.testing.assert_allclose(graph.numpy(), whole, rtol=1e-5)
    with pytest.raises(ValueError, match="pass only one"):
        evaluate(custom, ids, num_steps=T, cell="lstm")
    frozen = custom.frozen()
    np.testing.assert_allclose(
        probseq.LSTMAutoregressive(frozen, T).log_prob(windows), own, rtol=1e-6
    )


def test_posterior_predictive_uses_the_surrogates_cell(networks):
    custom, _ = networks
    ids = tf.random.stateless_uniform([4 * T], (2, 2), 0, V, tf.int32).numpy()
    surrogate = MeanFieldPosterior(custom.params, initial_scale=1e-4, cell=custom.cell_type)
    result = posterior_predictive(surrogate, ids, num_draws=2, seed=1, num_steps=T)
    plug_in = evaluate(custom, ids, num_steps=T)
    np.testing.assert_allclose(
        result.plug_in.nll_nats_per_window, plug_in.nll_nats_per_window, rtol=1e-5
    )
