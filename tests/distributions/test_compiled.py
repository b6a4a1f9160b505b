"""eager = `tf.function` = XLA for `log_prob`; gradients reach every variable."""

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import all_sequences, perturbed_params, randomized_network

import probseq

V, H, T = 3, 4, 4
ALL = all_sequences(V, T)
NET = randomized_network(V, H, seed=60, dtype=tf.float32)
NET2 = randomized_network(V, H, num_layers=2, seed=61, dtype=tf.float32)

CASES = {
    "two_layers_prefix_temperature": lambda: probseq.LSTMAutoregressive(
        NET2, T, prefix=[[0, 1], [2, 2], [1, 0]], temperature=[[0.5], [2.0]]
    ),
    "batched_params": lambda: probseq.LSTMAutoregressive(
        NET, T, params=perturbed_params(NET, [2, 1], seed=62), prefix=[[1], [2], [0]]
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_log_prob_eager_equals_tf_function_equals_xla(case):
    dist = CASES[case]()
    x = tf.constant(ALL.reshape((len(ALL),) + (1,) * dist.batch_shape.rank + (T,)))
    eager = dist.log_prob(x).numpy()
    graph = tf.function(dist.log_prob)(x).numpy()
    xla = tf.function(dist.log_prob, jit_compile=True)(x).numpy()
    assert eager.shape == graph.shape == xla.shape == (len(ALL), *dist.batch_shape.as_list())
    np.testing.assert_allclose(graph, eager, rtol=0, atol=1e-5)
    np.testing.assert_allclose(xla, eager, rtol=0, atol=1e-5)


def test_distribution_built_inside_xla_function():
    """Constructing the distribution under `jit_compile=True` (temperature as an input)."""
    x = tf.constant(ALL)

    @tf.function(jit_compile=True)
    def log_prob(temperature):
        return probseq.LSTMAutoregressive(NET2, T, prefix=[2], temperature=temperature).log_prob(x)

    eager = probseq.LSTMAutoregressive(NET2, T, prefix=[2], temperature=0.7).log_prob(x)
    np.testing.assert_allclose(log_prob(tf.constant(0.7)), eager, rtol=0, atol=1e-5)


def _assert_useful_gradients(variables, grads):
    assert len(grads) == len(variables)
    for variable, grad in zip(variables, grads, strict=True):
        assert grad is not None, variable.name
        grad = tf.convert_to_tensor(grad).numpy()
        assert grad.shape == tuple(variable.shape), variable.name
        assert np.all(np.isfinite(grad)), variable.name
        assert np.any(grad != 0.0), variable.name


def _loss_and_variables(num_layers: int):
    net = randomized_network(V, H, num_layers=num_layers, seed=63 + num_layers, dtype=tf.float32)
    temperature = tf.Variable(0.8, name="temperature")
    dist = probseq.LSTMAutoregressive(net, T, prefix=[[1, 0], [2, 2]], temperature=temperature)
    x = tf.constant(ALL[::7].reshape(-1, 1, T))  # :: [12, 1, T] -> log_prob [12, 2]

    def loss():
        return -tf.reduce_sum(dist.log_prob(x))

    return loss, list(net.trainable_variables) + [temperature], dist


def _gradients(loss, variables):
    with tf.GradientTape() as tape:
        value = loss()
    return value, tape.gradient(value, variables)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gradients_reach_every_variable_and_the_temperature(num_layers):
    loss, variables, _ = _loss_and_variables(num_layers)
    assert len(variables) == 3 * num_layers + 2 + 1
    value, grads = _gradients(loss, variables)
    assert np.isfinite(value.numpy())
    _assert_useful_gradients(variables, grads)


@pytest.mark.parametrize(
    "jit_compile",
    [
        pytest.param(False, id="tf_function"),
        pytest.param(True, id="xla", marks=pytest.mark.slow),  # ~5 s of XLA compilation
    ],
)
def test_compiled_gradients_reach_every_variable_and_agree_with_eager(jit_compile):
    loss, variables, _ = _loss_and_variables(1)  # 2 layers: eager test above, XLA log_prob
    eager_value, eager = _gradients(loss, variables)
    compiled = tf.function(lambda: _gradients(loss, variables), jit_compile=jit_compile)
    value, grads = compiled()
    np.testing.assert_allclose(value, eager_value, rtol=1e-5)
    _assert_useful_gradients(variables, grads)
    for variable, a, b in zip(variables, eager, grads, strict=True):
        np.testing.assert_allclose(
            tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-4, err_msg=variable.name
        )


def test_temperature_gradient_matches_finite_difference():
    net = randomized_network(V, H, seed=70, dtype=tf.float64)
    x = tf.constant(ALL[::5])

    def total(temperature):
        dist = probseq.LSTMAutoregressive(net, T, prefix=[0], temperature=temperature)
        return tf.reduce_sum(dist.log_prob(x))

    temperature = tf.Variable(tf.constant(0.9, tf.float64))
    with tf.GradientTape() as tape:
        value = total(temperature)
    grad = tape.gradient(value, temperature).numpy()
    eps = 1e-6
    numeric = (total(0.9 + eps) - total(0.9 - eps)).numpy() / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)
    assert abs(grad) > 1e-3


def test_gradients_reach_explicit_params():
    """Gradients flow to an explicit (batched) params structure, e.g. posterior draws."""
    params = tf.nest.map_structure(tf.Variable, perturbed_params(NET2, [2], seed=71))
    dist = probseq.LSTMAutoregressive(NET2, T, params=params)
    leaves = tf.nest.flatten(params)
    unused = list(NET2.trainable_variables)
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(dist.log_prob(ALL[::9].reshape(-1, 1, T)))
    grads = tape.gradient(value, leaves + unused)
    _assert_useful_gradients(leaves, grads[: len(leaves)])
    # ... and not to the network's own variables, which these params replace.
    assert all(g is None for g in grads[len(leaves) :])


def test_trainable_variables_of_the_distribution():
    _, variables, dist = _loss_and_variables(2)
    assert {id(v) for v in dist.trainable_variables} == {id(v) for v in variables}
