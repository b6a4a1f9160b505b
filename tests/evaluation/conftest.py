"""Shared fixtures for the evaluation tests: a tiny network and a NumPy LSTM reference."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from probseq import LSTMNetwork
from probseq.nn import init_lstm_params

VOCAB, HIDDEN, LAYERS = 5, 8, 2


@pytest.fixture(scope="session")
def net():
    return LSTMNetwork(VOCAB, HIDDEN, num_layers=LAYERS, seed=1)


@pytest.fixture(scope="session")
def ids():
    return np.random.default_rng(0).integers(0, VOCAB, size=53)


@pytest.fixture(scope="session")
def draws():
    """`S = 3` params draws stacked on a leading dim (every leaf `[3] + core`)."""
    samples = [init_lstm_params(VOCAB, HIDDEN, LAYERS, seed=(s, 7)) for s in range(3)]
    return tf.nest.map_structure(lambda *leaves: tf.stack(leaves), *samples)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_log_prob(params, sequence, temperature=1.0):
    """Brute-force float64 log p(sequence) from the LSTM equations in `probseq.nn.cells`.

    The first step reads no token from a zero state; then teacher forcing.
    """
    p = tf.nest.map_structure(lambda v: np.asarray(v, np.float64), params)
    num_layers = sum(key.startswith("layer_") for key in p)
    hidden = p["layer_0"]["recurrent_kernel"].shape[0]
    c = [np.zeros(hidden) for _ in range(num_layers)]
    h = [np.zeros(hidden) for _ in range(num_layers)]

    def step(token):
        x = None
        for index in range(num_layers):
            layer = p[f"layer_{index}"]
            z = h[index] @ layer["recurrent_kernel"] + layer["bias"]
            if index == 0:
                z = z + (0.0 if token is None else layer["input_kernel"][token])
            else:
                z = z + x @ layer["input_kernel"]
            i, f, o, u = np.split(z, 4)
            c[index] = _sigmoid(f + 1.0) * c[index] + _sigmoid(i) * np.tanh(u)
            h[index] = _sigmoid(o) * np.tanh(c[index])
            x = h[index]
        logits = (x @ p["output"]["kernel"] + p["output"]["bias"]) / temperature
        return logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max()

    total = step(None)[sequence[0]]
    for previous, token in itertools.pairwise(sequence):
        total += step(previous)[token]
    return total


@pytest.fixture(scope="session")
def numpy_log_prob():
    """`numpy_log_prob(params, sequence, temperature=1.0)`: the brute-force reference."""
    return _numpy_log_prob
