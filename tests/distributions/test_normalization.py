"""Exact normalization: `log_prob` summed over all `V**T` sequences is one, in every setting."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from lstm_reference import all_sequences, perturbed_params, randomized_network

import probseq

tfd = tfp.distributions

V, H, T = 3, 5, 4
ALL = all_sequences(V, T)  # :: [81, T]
NET = randomized_network(V, H, seed=11)  # float64
NET2 = randomized_network(V, H, num_layers=2, seed=12)
NET3 = randomized_network(V, H, num_layers=3, seed=13)


def _total_log_mass(dist, num_steps: int = T, vocab_size: int = V) -> np.ndarray:
    """`log sum_x p(x)` per batch member, by enumeration."""
    batch_rank = dist.batch_shape.rank
    values = all_sequences(vocab_size, num_steps)
    values = values.reshape((len(values),) + (1,) * batch_rank + (num_steps,))
    log_prob = dist.log_prob(values)  # :: [V**T] + batch
    assert log_prob.shape.as_list() == [len(values)] + dist.batch_shape.as_list()
    return tf.reduce_logsumexp(log_prob, axis=0).numpy()


CASES = {
    "plain": lambda: probseq.LSTMAutoregressive(NET, T),
    "prefix": lambda: probseq.LSTMAutoregressive(NET, T, prefix=[2, 0, 1]),
    "batched_prefix": lambda: probseq.LSTMAutoregressive(NET, T, prefix=[[0, 0], [1, 2], [2, 1]]),
    "temperature_0.5": lambda: probseq.LSTMAutoregressive(NET, T, temperature=0.5),
    "temperature_2.0": lambda: probseq.LSTMAutoregressive(NET, T, temperature=2.0),
    "temperature_batched": lambda: probseq.LSTMAutoregressive(
        NET, T, temperature=[0.25, 0.5, 1.0, 2.0, 4.0]
    ),
    "temperature_variable": lambda: probseq.LSTMAutoregressive(
        NET, T, temperature=tf.Variable([[0.3], [3.0]], dtype=tf.float64)
    ),
    "batched_params": lambda: probseq.LSTMAutoregressive(
        NET, T, params=perturbed_params(NET, [3], seed=5, scale=1.0)
    ),
    "batched_params_prefix_temperature": lambda: probseq.LSTMAutoregressive(
        NET,
        T,
        params=perturbed_params(NET, [2, 1], seed=6, scale=1.0),
        prefix=[[1], [2], [0]],
        temperature=[[0.5], [1.7]],
    ),
    "two_layers": lambda: probseq.LSTMAutoregressive(NET2, T, prefix=[1, 1]),
    "three_layers_temperature": lambda: probseq.LSTMAutoregressive(NET3, T, temperature=0.8),
    "two_layers_batched_params": lambda: probseq.LSTMAutoregressive(
        NET2, T, params=perturbed_params(NET2, [2], seed=7, scale=1.0)
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_normalizes_exactly(case):
    dist = CASES[case]()
    total = _total_log_mass(dist)
    assert total.shape == tuple(dist.batch_shape.as_list())
    np.testing.assert_allclose(total, 0.0, rtol=0, atol=1e-10)


def test_normalizes_in_float32():
    net = randomized_network(V, H, seed=14, dtype=tf.float32)
    dist = probseq.LSTMAutoregressive(net, T, prefix=[0, 2], temperature=0.7)
    np.testing.assert_allclose(_total_log_mass(dist), 0.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("vocab_size", "num_steps"), [(3, 1), (2, 2), (2, 6), (4, 3)])
def test_normalizes_for_other_sizes(vocab_size, num_steps):
    net = randomized_network(vocab_size, 3, seed=vocab_size * 10 + num_steps)
    dist = probseq.LSTMAutoregressive(net, num_steps, prefix=[vocab_size - 1])
    np.testing.assert_allclose(
        _total_log_mass(dist, num_steps, vocab_size), 0.0, rtol=0, atol=1e-10
    )


def test_enumeration_is_not_trivially_uniform():
    """Guard for the tests above: the tiny models give far-from-uniform distributions."""
    for case in ["plain", "two_layers", "batched_params"]:
        dist = CASES[case]()
        log_prob = dist.log_prob(ALL.reshape((81,) + (1,) * dist.batch_shape.rank + (T,)))
        spread = tf.reduce_max(log_prob, 0) - tf.reduce_min(log_prob, 0)
        assert np.all(spread.numpy() > 1.0), case


def test_mixture_of_two_components_normalizes():
    first = probseq.LSTMAutoregressive(NET, T, temperature=0.6)
    second = probseq.LSTMAutoregressive(NET2, T, prefix=[2])
    mixture = tfd.Mixture(
        cat=tfd.Categorical(probs=tf.constant([0.3, 0.7], tf.float64)),
        components=[first, second],
    )
    np.testing.assert_allclose(_total_log_mass(mixture), 0.0, rtol=0, atol=1e-10)
