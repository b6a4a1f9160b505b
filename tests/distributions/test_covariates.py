"""Per-step covariates on `RecurrentAutoregressive` (issue 12: the input encoder reads the
previous value concatenated with known features of the step, e.g. time of day).

Checked against an independent step-by-step path (`dense_step` on the concatenated
input), for log_prob, sampling (same per-step seeds), padding, batch shapes, one-step
normalization and compilation.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.distributions import RecurrentAutoregressive, heads
from probseq.nn import cell_initial_state, dense_step
from probseq.seeds import split, stateless_seed

T, C, H = 5, 3, 6


def _net(head, cell="lstm", seed=1, layers=1):
    net = probseq.RealValuedNetwork(
        head.input_size + C, H, layers, head.num_params, cell=cell, seed=(seed, 0)
    )
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (seed, i), stddev=0.3))
    return net


def _covariates(batch=(2,), seed=(3, 3)):
    return tf.random.stateless_normal([*batch, T, C], seed)


def _step_inputs(head, previous, covariates_t, rows):
    features = tf.zeros([rows, head.input_size]) if previous is None else previous
    return tf.concat([features, covariates_t], -1)


def _reference_log_prob(dist, x, covariates) -> np.ndarray:
    """Step by step: step t reads [features(x_{t-1}) (zeros at t=0), c_t]."""
    params, head, cell = dist.network.params, dist.head, dist.network.cell_type
    rows = x.shape[0]
    state = cell_initial_state(params, [rows], cell=cell)
    total, previous = 0.0, None
    for t in range(T):
        inputs = _step_inputs(head, previous, covariates[:, t], rows)
        out, state = dense_step(params, inputs, state, cell=cell)
        total += head.distribution(out).log_prob(x[:, t])
        previous = head.features(x[:, t], tf.float32)
    return np.asarray(total)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("head", [heads.Normal(), heads.StudentT(), heads.Poisson()])
def test_log_prob_and_sampling_match_the_step_by_step_reference(head, cell):
    net = _net(head, cell)
    covariates = _covariates()
    dist = RecurrentAutoregressive(net, T, head, covariates=covariates)
    assert dist.batch_shape == [2] and dist.event_shape == [T]
    x = dist.sample(seed=(7, 1))
    np.testing.assert_allclose(
        dist.log_prob(x), _reference_log_prob(dist, x, covariates), rtol=1e-5, atol=1e-5
    )
    # the same per-step seeds give the same values, step by step
    seeds = split(stateless_seed((7, 1)), T)
    state = cell_initial_state(net.params, [2], cell=net.cell_type)
    previous, values = None, []
    for t in range(T):
        out, state = dense_step(
            net.params, _step_inputs(head, previous, covariates[:, t], 2), state, cell=cell
        )
        value = head.distribution(out).sample(seed=seeds[t])
        values.append(value)
        previous = head.features(value, tf.float32)
    np.testing.assert_allclose(x, tf.stack(values, axis=-1), rtol=1e-5, atol=1e-5)


def test_covariates_change_the_distribution_and_get_gradients():
    head = heads.Normal()
    net = _net(head)
    covariates = tf.Variable(_covariates())
    dist = RecurrentAutoregressive(net, T, head, covariates=covariates)
    x = tf.random.stateless_normal([2, T], (4, 4))
    other = RecurrentAutoregressive(net, T, head, covariates=covariates + 1.0)
    assert np.abs(dist.log_prob(x) - other.log_prob(x)).min() > 1e-3
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob(x))
    grads = tape.gradient(loss, [covariates, *net.trainable_variables])
    assert all(g is not None and np.abs(g).max() > 0 for g in grads)


def test_one_step_model_with_covariates_integrates_to_one():
    head = heads.Normal()
    net = probseq.RealValuedNetwork(1 + C, H, 1, head.num_params, seed=(2, 0))
    dist = RecurrentAutoregressive(
        net, 1, head, covariates=tf.random.stateless_normal([3, 1, C], (5, 5))
    )
    grid = np.linspace(-12.0, 12.0, 4001, dtype=np.float32)
    density = np.exp(dist.log_prob(grid[:, None, None]).numpy())  # :: [G, 3]
    np.testing.assert_allclose(np.trapezoid(density, grid, axis=0), 1.0, atol=1e-4)


def test_batch_shapes_broadcast_with_params_and_lengths():
    head = heads.Normal()
    net = _net(head)
    draws = tf.nest.map_structure(lambda p: tf.stack([p, p * 0.9]), net.params)  # [2]+core
    dist = RecurrentAutoregressive(
        net, T, head, params=draws, covariates=_covariates(batch=(3, 1)), lengths=[T, 2]
    )
    assert dist.batch_shape == [3, 2]
    assert dist.sample(4, seed=(1, 1)).shape == [4, 3, 2, T]
    assert dist.log_prob(tf.zeros([T])).shape == [3, 2]
    first = dist[0]
    assert first.batch_shape == [2] and first.covariates.shape == [1, T, C]


def test_padded_batch_with_covariates_scores_like_the_unpadded_sequences():
    head = heads.StudentT()
    net = _net(head)
    covariates = _covariates(batch=(3,))
    lengths = [T, 3, 1]
    dist = RecurrentAutoregressive(net, T, head, covariates=covariates, lengths=lengths)
    x = tf.random.stateless_normal([3, T], (8, 8))
    padded = tf.where(tf.range(T) < tf.constant(lengths)[:, None], x, 1e6)
    for row, length in enumerate(lengths):
        alone = RecurrentAutoregressive(
            net, length, head, covariates=covariates[row, :length]
        ).log_prob(x[row, :length])
        np.testing.assert_allclose(dist.log_prob(padded)[row], alone, rtol=1e-6)


def test_eager_tf_function_and_xla_agree():
    head = heads.Normal(event_size=2)
    net = _net(head)
    dist = RecurrentAutoregressive(net, T, head, covariates=_covariates())
    x = dist.sample(3, seed=(2, 2))
    eager = dist.log_prob(x)
    for jit in (False, True):
        fn = tf.function(lambda d, x: d.log_prob(x), jit_compile=jit)
        np.testing.assert_allclose(fn(dist, x), eager, rtol=1e-5)
    graph = tf.function(lambda d: d.sample(3, seed=(2, 2)))(dist)
    np.testing.assert_allclose(graph, x, rtol=1e-5, atol=1e-6)


def test_new_covariates_do_not_retrace():
    head = heads.Normal()
    net = _net(head)
    fn = tf.function(lambda d, x: d.log_prob(x))
    x = tf.zeros([2, T])
    for seed in (1, 2, 3):
        fn(RecurrentAutoregressive(net, T, head, covariates=_covariates(seed=(seed, 0))), x)
    assert fn.experimental_get_tracing_count() == 1


def test_bad_covariates_are_named():
    head = heads.Normal()
    net = _net(head)
    with pytest.raises(ValueError, match=r"covariates must have shape \[\.\.\., num_steps=5, C\]"):
        RecurrentAutoregressive(net, T, head, covariates=tf.zeros([2, T + 1, C]))
    with pytest.raises(TypeError, match="covariates must be floats"):
        RecurrentAutoregressive(net, T, head, covariates=tf.zeros([2, T, C], tf.int32))
    with pytest.raises(ValueError, match=r"input features per step \+ 2 covariates"):
        RecurrentAutoregressive(net, T, head, covariates=tf.zeros([2, T, 2]))
    with pytest.raises(ValueError, match="input_size=4"):
        RecurrentAutoregressive(net, T, head)  # the network expects covariates
