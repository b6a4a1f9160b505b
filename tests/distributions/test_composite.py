"""Distributions, networks and heads are composite tensors (TFP's `AutoCompositeTensor`).

Contract (issue 12, TFP conformance): an instance is a valid `tf.function` argument that
does not retrace for new parameter values of the same shape, `tf.nest` flattens it (with
`expand_composites=True`) and rebuilds an equal distribution; the cell is part of the
identity, so two networks with equal shapes but different equations never share a trace.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.distributions import RecurrentAutoregressive, heads
from probseq.nn import Cell, LSTMState, RealValuedNetwork, Seq2SeqNetwork, register_cell

tfd = tfp.distributions
V, H, T = 5, 6, 4


class _Counted:
    """A `tf.function` of `(dist, x) -> dist.log_prob(x)` that counts its traces."""

    def __init__(self):
        self.traces = 0
        self.fn = tf.function(self._log_prob)

    def _log_prob(self, dist, x):
        self.traces += 1
        return dist.log_prob(x)


def _tokens(seed=(1, 1), shape=(3, T)):
    return tf.random.stateless_uniform(shape, seed, 1, V, tf.int32)


def _token_distributions(seed):
    """Same shapes, new values: a fresh network, temperature, prefix, lengths."""
    net = probseq.LSTMNetwork(V, H, num_layers=2, seed=seed)
    s2s = Seq2SeqNetwork(V, V, H, seed=seed)
    temperature = tf.constant(0.5 + seed)
    prefix = _tokens((seed, 9), (3, 2))
    return {
        "plain": probseq.LSTMAutoregressive(net, T),
        "prefix_temperature": probseq.LSTMAutoregressive(
            net, T, prefix=prefix, temperature=temperature
        ),
        "eos": probseq.LSTMAutoregressive(net, T, eos=0),
        "lengths": probseq.LSTMAutoregressive(net, T, lengths=tf.constant([4, 2, seed])),
        "frozen": probseq.LSTMAutoregressive(net.frozen(), T),
        "encoder_decoder": probseq.EncoderDecoder(s2s, prefix, T, temperature=temperature),
    }


@pytest.mark.parametrize("kind", list(_token_distributions(1)))
def test_token_distributions_pass_through_tf_function_without_retracing(kind):
    counted = _Counted()
    x = _tokens()
    for seed in (1, 2, 3):
        dist = _token_distributions(seed)[kind]
        np.testing.assert_allclose(counted.fn(dist, x), dist.log_prob(x), rtol=1e-6)
    assert counted.traces == 1


@pytest.mark.parametrize("name", ["normal", "student_t", "mixture", "bernoulli", "poisson"])
def test_real_valued_distributions_pass_through_tf_function_without_retracing(name):
    head = {
        "normal": heads.Normal(),
        "student_t": heads.StudentT(),
        "mixture": heads.Mixture(num_components=2, family="logistic"),
        "bernoulli": heads.Bernoulli(),
        "poisson": heads.Poisson(),
    }[name]
    counted = _Counted()
    values = None
    for seed in (1, 2):
        net = RealValuedNetwork(1, H, output_size=head.num_params, seed=seed)
        dist = RecurrentAutoregressive(net, T, head, lengths=tf.constant([T, 2]))
        if values is None:
            values = dist.sample(seed=(4, 4))
        np.testing.assert_allclose(counted.fn(dist, values), dist.log_prob(values), rtol=1e-5)
    assert counted.traces == 1


def test_a_new_shape_or_setting_retraces():
    counted = _Counted()
    net = probseq.LSTMNetwork(V, H, seed=1)
    x = _tokens()
    counted.fn(probseq.LSTMAutoregressive(net, T), x)
    counted.fn(probseq.LSTMAutoregressive(probseq.LSTMNetwork(V, H + 1, seed=1), T), x)
    counted.fn(probseq.LSTMAutoregressive(net, T, eos=0), x)
    assert counted.traces == 3


def _update_without_forget_bias(a, r, state):
    i, f, o, u = tf.split(a + r, 4, axis=-1)
    c = tf.sigmoid(f) * state.c + tf.sigmoid(i) * tf.tanh(u)
    return LSTMState(c, tf.sigmoid(o) * tf.tanh(c))


def test_the_cell_is_part_of_the_identity():
    """Equal shapes, different equations: a shared trace would be a silent wrong answer."""
    cell = register_cell(
        Cell("composite_test_lstm", 4, _update_without_forget_bias, lambda z: LSTMState(z, z)),
        replace=True,
    )
    lstm = probseq.LSTMNetwork(V, H, seed=1)
    custom = probseq.LSTMNetwork(V, H, seed=1, cell=cell)
    counted = _Counted()
    x = _tokens()
    for net in (lstm, custom):
        dist = probseq.LSTMAutoregressive(net, T)
        np.testing.assert_allclose(counted.fn(dist, x), dist.log_prob(x), rtol=1e-6)
    assert counted.traces == 2
    a = probseq.LSTMAutoregressive(lstm, T).log_prob(x)
    b = probseq.LSTMAutoregressive(custom, T).log_prob(x)
    assert np.abs(a - b).max() > 1e-3


def test_a_cell_cannot_take_a_registered_name():
    impostor = Cell("lstm", 4, _update_without_forget_bias, lambda z: LSTMState(z, z))
    with pytest.raises(ValueError, match="different cell is registered as 'lstm'"):
        probseq.LSTMNetwork(V, H, cell=impostor)


def test_unregistered_cell_objects_are_registered_by_the_network():
    cell = Cell("composite_test_unregistered", 4, _update_without_forget_bias, LSTMState._make)
    net = probseq.LSTMNetwork(V, H, seed=1, cell=cell)
    assert probseq.nn.get_cell("composite_test_unregistered") is cell
    rebuilt = tf.nest.pack_sequence_as(
        net, tf.nest.flatten(net, expand_composites=True), expand_composites=True
    )
    assert rebuilt.cell_type is cell


def test_tf_nest_flattens_and_rebuilds_an_equal_distribution():
    net = probseq.LSTMNetwork(V, H, seed=1)
    temperature = tf.Variable(0.7)
    dist = probseq.LSTMAutoregressive(net, T, temperature=temperature, eos=0)
    flat = tf.nest.flatten(dist, expand_composites=True)
    # each variable once (XLA refuses a variable passed twice), and nothing else
    assert sorted(map(id, flat)) == sorted(map(id, [*net.trainable_variables, temperature]))
    assert dist.params is None and dist.params_in_use is net.params
    rebuilt = tf.nest.pack_sequence_as(dist, flat, expand_composites=True)
    assert type(rebuilt) is type(dist) and rebuilt.eos == 0
    x = _tokens()
    np.testing.assert_array_equal(rebuilt.log_prob(x), dist.log_prob(x))
    np.testing.assert_array_equal(rebuilt.sample(2, seed=(3, 3)), dist.sample(2, seed=(3, 3)))


def test_gradients_through_a_distribution_argument_equal_eager():
    net = probseq.LSTMNetwork(V, H, seed=1)
    temperature = tf.Variable(0.8)
    dist = probseq.LSTMAutoregressive(net, T, temperature=temperature)
    x = _tokens()
    variables = [*net.trainable_variables, temperature]
    counted = _Counted()
    with tf.GradientTape() as tape:
        graph = tf.reduce_sum(counted.fn(dist, x))
    with tf.GradientTape() as eager_tape:
        eager = tf.reduce_sum(dist.log_prob(x))
    pairs = zip(tape.gradient(graph, variables), eager_tape.gradient(eager, variables), strict=True)
    for g, e in pairs:
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)


def test_a_variable_change_is_seen_by_the_same_trace():
    net = probseq.LSTMNetwork(V, H, seed=1)
    dist = probseq.LSTMAutoregressive(net, T)
    x = _tokens()
    counted = _Counted()
    before = counted.fn(dist, x).numpy()
    net.params["output"]["bias"].assign_add(tf.range(V, dtype=tf.float32))
    after = counted.fn(dist, x).numpy()
    np.testing.assert_allclose(after, dist.log_prob(x), rtol=1e-6)
    assert np.abs(after - before).max() > 1e-2 and counted.traces == 1


def test_heads_are_values_and_a_user_head_gets_its_own_spec():
    assert heads.Mixture(num_components=2) == heads.Mixture(num_components=2)
    assert hash(heads.Normal()) == hash(heads.Normal())

    @dataclasses.dataclass(frozen=True)
    class Laplace(heads.EmissionHead):
        name = "laplace"
        params_per_coordinate = 2
        reparameterized = True

        def _scalar_distribution(self, raw):
            return tfd.Laplace(raw[..., 0], self._scale(raw[..., 1]))

    head = Laplace(min_scale=1e-3)
    net = RealValuedNetwork(1, H, output_size=2, seed=1)
    dist = RecurrentAutoregressive(net, T, head)
    x = dist.sample(2, seed=(1, 2))
    np.testing.assert_allclose(_Counted().fn(dist, x), dist.log_prob(x), rtol=1e-5)
    rebuilt = tf.nest.pack_sequence_as(
        head, tf.nest.flatten(head, expand_composites=True), expand_composites=True
    )
    assert rebuilt == head


def test_network_params_argument_is_checked():
    net = probseq.LSTMNetwork(V, H, seed=1)
    same = probseq.LSTMNetwork(V, H, params=net.params)
    assert same.params["output"]["bias"] is net.params["output"]["bias"]
    assert not same.is_frozen and net.frozen().is_frozen
    with pytest.raises(
        ValueError, match=r"params\['layer_0'\]\['input_kernel'\] must have shape \[\.\.\., 6, 24\]"
    ):
        probseq.LSTMNetwork(V + 1, H, params=net.params)
    with pytest.raises(ValueError, match="same structure as LSTMNetwork's params"):
        probseq.LSTMNetwork(V, H, params={"layer_0": net.params["layer_0"]})


@pytest.mark.parametrize("jit_compile", [False, True])
def test_sampling_a_distribution_argument(jit_compile):
    net = probseq.LSTMNetwork(V, H, seed=1)
    dist = probseq.LSTMAutoregressive(net, T, eos=0, temperature=tf.constant(0.9))
    sample = tf.function(lambda d: d.sample(3, seed=(5, 6)), jit_compile=jit_compile)
    drawn = sample(dist)
    assert drawn.shape == [3, T]
    if not jit_compile:  # XLA lowers the stateless RNG its own way (see ARCHITECTURE.md)
        np.testing.assert_array_equal(drawn, dist.sample(3, seed=(5, 6)))
    assert np.isfinite(dist.log_prob(drawn)).all()
