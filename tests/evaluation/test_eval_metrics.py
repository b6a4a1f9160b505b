"""Unit conversions in `probseq.evaluation.metrics`."""

import math

import numpy as np
import pytest
import tensorflow as tf

from probseq.evaluation import bits_per_char, log_mean_exp, nats_to_bits, perplexity


def test_nats_to_bits_scalar_array_tensor():
    assert nats_to_bits(math.log(2.0)) == pytest.approx(1.0)
    assert isinstance(nats_to_bits(1.0), float)
    np.testing.assert_allclose(nats_to_bits(np.log([2.0, 4.0, 8.0])), [1.0, 2.0, 3.0])
    value = nats_to_bits(tf.constant([math.log(4.0)], tf.float32))
    assert tf.is_tensor(value)
    np.testing.assert_allclose(value.numpy(), [2.0], rtol=1e-6)


def test_bits_per_char_matches_text8_reference():
    # The reference: 76.14 nats per 64-character window is 1.716 bits/char.
    assert bits_per_char(76.14 / 64) == pytest.approx(1.716, abs=5e-4)


def test_perplexity_is_exp_and_overflows_quietly():
    assert perplexity(math.log(27.0)) == pytest.approx(27.0)
    np.testing.assert_allclose(perplexity(np.array([0.0, 1.0])), [1.0, math.e])
    assert perplexity(1e6) == math.inf
    np.testing.assert_allclose(perplexity(tf.constant(0.5)).numpy(), math.exp(0.5), rtol=1e-6)


def test_log_mean_exp_numpy():
    assert log_mean_exp(np.log([1.0, 3.0])) == pytest.approx(math.log(2.0))
    x = np.array([[-1000.0, 0.0], [-1000.0, math.log(3.0)]])  # large negative: no underflow
    np.testing.assert_allclose(log_mean_exp(x, axis=0), [-1000.0, math.log(2.0)])
    np.testing.assert_allclose(log_mean_exp(x, axis=1), [math.log(0.5), math.log(1.5)], 1e-12)
    assert log_mean_exp(np.array([-np.inf, -np.inf])) == -np.inf
    with pytest.raises(ValueError, match="empty"):
        log_mean_exp(np.array([]))


def test_log_mean_exp_tensor_matches_numpy():
    x = np.random.default_rng(0).normal(size=(4, 3)) * 50
    value = log_mean_exp(tf.constant(x), axis=0)
    np.testing.assert_allclose(value.numpy(), log_mean_exp(x, axis=0), rtol=1e-12)
