"""Conformance of `RecurrentAutoregressive` over heads x cells x {no padding, lengths}."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import bernstein_radius

import probseq
from probseq.distributions import RecurrentAutoregressive, heads
from probseq.nn import cell_initial_state, dense_step

CELLS = ("lstm", "gru", "rnn")
CONTINUOUS = {
    "normal": heads.Normal(),
    "student_t": heads.StudentT(),
    "mixture_normal": heads.Mixture(2),
    "mixture_logistic": heads.Mixture(2, "logistic"),
}
DISCRETE = {
    "bernoulli": heads.Bernoulli(),
    "poisson": heads.Poisson(),
    "negative_binomial": heads.NegativeBinomial(),
}
HEADS = {**CONTINUOUS, **DISCRETE, "normal_vector": heads.Normal(event_size=2)}


def _net(head, cell="lstm", seed=1, hidden=6, layers=1) -> probseq.RealValuedNetwork:
    net = probseq.RealValuedNetwork(
        head.input_size, hidden, layers, head.num_params, cell=cell, seed=(seed, 0)
    )
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (seed, i), stddev=0.3))
    return net


def _reference_log_prob(dist, x) -> np.ndarray:
    """Step by step with `dense_step` and the head (an independent path), `[N]`."""
    params, head, cell = dist.network.params, dist.head, dist.network.cell_type
    x = tf.convert_to_tensor(x, dist.dtype)
    state = cell_initial_state(params, [x.shape[0]], cell=cell)
    total, previous = 0.0, None
    for t in range(dist.num_steps):
        out, state = dense_step(params, previous, state, cell=cell)
        total += head.distribution(out).log_prob(x[:, t])
        previous = head.features(x[:, t], tf.float32)
    return np.asarray(total)


# ------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", list(HEADS))
def test_shapes_and_the_reference(name):
    head = HEADS[name]
    dist = RecurrentAutoregressive(_net(head, layers=2), 4, head)
    assert dist.event_shape == [4, *head.event_shape] and dist.batch_shape == []
    x = dist.sample([3, 2], seed=(1, 2))
    assert x.shape == [3, 2, 4, *head.event_shape] and x.dtype == head.dtype
    assert dist.log_prob(x).shape == [3, 2]
    flat = tf.reshape(x, [6, 4, *head.event_shape])
    np.testing.assert_allclose(dist.log_prob(flat), _reference_log_prob(dist, flat), rtol=1e-5)


def test_batch_shape_from_params_and_lengths():
    head = heads.Normal()
    net = _net(head)
    draws = tf.nest.map_structure(
        lambda v: v + tf.random.stateless_normal([3, *v.shape], (5, 5), stddev=0.1), net.params
    )
    dist = RecurrentAutoregressive(net, 4, head, params=draws, lengths=[2, 4, 1])
    assert dist.batch_shape == [3]
    x = dist.sample(5, seed=(2, 3))
    assert x.shape == [5, 3, 4] and dist.log_prob(x).shape == [5, 3]
    assert np.all(x.numpy()[:, 0, 2:] == 0.0) and np.all(x.numpy()[:, 2, 1:] == 0.0)
    for i in range(3):  # each batch member is the distribution of its own draw
        own = tf.nest.map_structure(lambda p, i=i: p[i], draws)
        single = RecurrentAutoregressive(net, 4, head, params=own, lengths=[2, 4, 1][i])
        np.testing.assert_allclose(dist.log_prob(x)[:, i], single.log_prob(x[:, i]), rtol=1e-5)
    assert dist[1:].batch_shape == [2]
    wide = RecurrentAutoregressive(net, 4, head, params=draws, lengths=[[2], [4]])
    assert wide.batch_shape == [2, 3] and wide.sample(seed=(1, 1)).shape == [2, 3, 4]


# ------------------------------------------------------------------ normalization
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_heads_integrate_to_one(name, cell):
    head = CONTINUOUS[name]
    net = _net(head, cell)
    grid = np.linspace(-12.0, 12.0, 2401).astype(np.float32)
    one = RecurrentAutoregressive(net, 1, head).log_prob(grid[:, None]).numpy()
    assert np.trapezoid(np.exp(one), grid) == pytest.approx(1.0, abs=2e-3)
    coarse = np.linspace(-12.0, 12.0, 481).astype(np.float32)
    pairs = np.stack(np.meshgrid(coarse, coarse, indexing="ij"), -1).reshape(-1, 2)
    two = np.exp(RecurrentAutoregressive(net, 2, head).log_prob(pairs).numpy())
    total = np.trapezoid(np.trapezoid(two.reshape(481, 481), coarse, axis=1), coarse)
    assert total == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("cell", CELLS)
def test_bernoulli_sequences_sum_to_one(cell):
    head = heads.Bernoulli()
    dist = RecurrentAutoregressive(_net(head, cell), 4, head)
    every = np.array(np.meshgrid(*[[0, 1]] * 4, indexing="ij")).reshape(4, -1).T
    assert np.exp(dist.log_prob(every).numpy()).sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_count_heads_sum_to_one(name):
    head = DISCRETE[name]
    dist = RecurrentAutoregressive(_net(head), 2, head)
    counts = np.arange(80, dtype=np.float32)
    pairs = np.stack(np.meshgrid(counts, counts, indexing="ij"), -1).reshape(-1, 2)
    assert np.exp(dist.log_prob(pairs).numpy()).sum() == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------- sampling


@pytest.mark.slow
def test_bernoulli_sample_frequencies_match_exp_log_prob():
    head, n = heads.Bernoulli(), 100_000
    dist = RecurrentAutoregressive(_net(head, "gru"), 3, head)
    samples = dist.sample(n, seed=(7, 7)).numpy()
    codes = samples @ np.array([4, 2, 1])
    freqs = np.bincount(codes, minlength=8) / n
    every = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)])
    probs = np.exp(dist.log_prob(every).numpy().astype(np.float64))
    assert np.all(np.abs(freqs - probs) <= bernstein_radius(probs, n, 1e-9 / 8))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_samples_match_the_first_step_distribution(name):
    """The first value's sample mean and the probability of `x_1 <= 0` agree with the
    head's distribution (Bernstein bound on the indicator: valid for any seed)."""
    head, n = CONTINUOUS[name], 50_000
    net = _net(head)
    dist = RecurrentAutoregressive(net, 3, head)
    first = dist.sample(n, seed=(3, 9)).numpy()[:, 0]
    params = net.params
    out, _ = dense_step(params, None, cell_initial_state(params, [1], cell=net.cell_type))
    p = float(head.distribution(out).cdf(0.0)[0])
    assert abs(np.mean(first <= 0.0) - p) <= bernstein_radius(p, n, 1e-9)


def test_seeded_sampling_in_eager_tf_function_and_xla():
    head = heads.StudentT()
    dist = RecurrentAutoregressive(_net(head, "rnn"), 6, head, lengths=[6, 3])
    eager = dist.sample(4, seed=(5, 6))
    # The same draws; real values agree up to float rounding (graph kernels may differ).
    graph = tf.function(lambda: dist.sample(4, seed=(5, 6)))()
    np.testing.assert_allclose(graph, eager, rtol=1e-5, atol=1e-6)
    xla = tf.function(lambda: dist.sample(4, seed=(5, 6)), jit_compile=True)
    np.testing.assert_array_equal(xla(), xla())
    x = tf.constant(eager)
    log_prob = dist.log_prob(x)
    np.testing.assert_allclose(tf.function(dist.log_prob)(x), log_prob, rtol=1e-6)
    np.testing.assert_allclose(tf.function(dist.log_prob, jit_compile=True)(x), log_prob, 1e-5)


# ------------------------------------------------------------- lengths, gradients
@pytest.mark.parametrize("name", ["normal", "poisson", "normal_vector"])
def test_padded_batch_scores_like_the_unpadded_sequences(name):
    head = HEADS[name]
    net = _net(head, "gru")
    full = RecurrentAutoregressive(net, 5, head).sample(3, seed=(1, 1))
    junk = tf.tensor_scatter_nd_update(
        full, [[0, 4], [1, 2], [1, 3], [1, 4]], tf.fill([4, *head.event_shape], 99.0)
    )
    lengths = [4, 2, 5]
    with tf.GradientTape(persistent=True) as tape:
        padded = RecurrentAutoregressive(net, 5, head, lengths=lengths).log_prob(junk)
        rows = [
            RecurrentAutoregressive(net, length, head).log_prob(full[i, :length])
            for i, length in enumerate(lengths)
        ]
        a, b = tf.reduce_sum(padded), tf.add_n(rows)
    np.testing.assert_allclose(padded, tf.stack(rows), rtol=1e-6, atol=1e-6)
    for g, w in zip(tape.gradient(a, net.trainable_variables),
                    tape.gradient(b, net.trainable_variables), strict=True):  # fmt: skip
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=5e-6)  # float32 summation order


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_reach_every_variable(cell):
    head = heads.Mixture(2)
    net = _net(head, cell, layers=2)
    dist = RecurrentAutoregressive(net, 4, head)
    x = dist.sample(3, seed=(4, 4))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob(x))
    grads = tape.gradient(loss, net.trainable_variables)
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_fit_map_learns_a_sine_wave():
    head = heads.Normal()
    net = probseq.RealValuedNetwork(1, 16, 1, head.num_params, seed=2)
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, 64)
    t = np.arange(20)
    series = (np.sin(phases[:, None] + 0.5 * t) + 0.05).astype(np.float32)
    dist = RecurrentAutoregressive(net, 20, head)
    before = float(tf.reduce_mean(dist.log_prob(series)))
    data = tf.data.Dataset.from_tensor_slices(series).repeat().batch(16)
    probseq.inference.fit_map(
        dist, data, num_examples=64, num_steps=150, learning_rate=0.02, prior=None
    )
    after = float(tf.reduce_mean(dist.log_prob(series)))
    assert after > before + 20.0  # nats per 20-step series


# --------------------------------------------------------------------------- errors
def test_bad_arguments_are_named():
    head = heads.Normal()
    net = _net(head)
    with pytest.raises(ValueError, match="reads 3 parameters"):
        RecurrentAutoregressive(net, 3, heads.StudentT())
    with pytest.raises(TypeError, match="EmissionHead"):
        RecurrentAutoregressive(net, 3, "normal")
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
        RecurrentAutoregressive(net, 3, head).log_prob(np.zeros([2, 4], np.float32))
    bern = heads.Bernoulli()
    with pytest.raises(TypeError, match="integer values"):
        RecurrentAutoregressive(_net(bern), 3, bern).log_prob(np.zeros([3], np.float32))
    with pytest.raises(ValueError, match="num_components"):
        heads.Mixture(0)
    with pytest.raises(ValueError, match="event_size"):
        heads.Normal(event_size=0)
    assert RecurrentAutoregressive(net, 3, head).experimental_default_event_space_bijector()
