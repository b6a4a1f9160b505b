"""The LSTMAutoregressive contract for every cell: `LSTMNetwork(cell="lstm"|"lnlstm"|"gru"|"rnn")`.

Normalization by enumeration (plain, prefix, temperatures, batched params, 2 layers,
Mixture), log_prob against a plain-numpy implementation of each cell's equations,
sampling frequencies within a bound that holds for any seed, seeds (eager = tf.function,
XLA deterministic), shapes, validate_args, gradients, composition, and evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.evaluation import evaluate
from probseq.nn import CELL_NAMES

tfd = tfp.distributions
V, H, T = 3, 4, 4
ALL = np.array(np.meshgrid(*[range(V)] * T, indexing="ij")).reshape(T, -1).T  # [81, T]


def _network(cell: str, num_layers: int = 1, seed: int = 0, dtype=tf.float64):
    """A network whose weights are perturbed away from the (near-uniform) init."""
    net = probseq.LSTMNetwork(V, H, num_layers, seed=(seed, 1), dtype=dtype, cell=cell)
    rng = np.random.default_rng(seed)
    for variable in net.trainable_variables:
        variable.assign_add(0.8 * rng.standard_normal(variable.shape))
    return net


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _layer_norm(x, eps=1e-5):
    mean = x.mean()
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean() + eps)


def _np_cell(cell: str, a: np.ndarray, r: np.ndarray, state: tuple) -> tuple:
    """The documented equations: `a = x Wx + b`, `r = h Wh`."""
    hidden = state[-1].shape[-1]

    def block(z, i):
        return z[i * hidden : (i + 1) * hidden]

    if cell == "lstm":
        z = a + r
        c = _sigmoid(block(z, 1) + 1.0) * state[0] + _sigmoid(block(z, 0)) * np.tanh(block(z, 3))
        return (c, _sigmoid(block(z, 2)) * np.tanh(c))
    if cell == "lnlstm":  # each gate's h Wh and the new cell normalized over the units
        z = a + np.concatenate([_layer_norm(block(r, i)) for i in range(4)])
        c = _sigmoid(block(z, 1) + 1.0) * state[0] + _sigmoid(block(z, 0)) * np.tanh(block(z, 3))
        return (c, _sigmoid(block(z, 2)) * np.tanh(_layer_norm(c)))
    if cell == "gru":
        reset = _sigmoid(block(a, 0) + block(r, 0))
        update = _sigmoid(block(a, 1) + block(r, 1))
        candidate = np.tanh(block(a, 2) + reset * block(r, 2))
        return ((1.0 - update) * candidate + update * state[0],)
    return (np.tanh(a + r),)


def _np_log_prob(cell: str, params: dict, x, prefix=(), temperature: float = 1.0) -> float:
    """log p(x | prefix) by stepping the numpy cells: no token first, then prefix, then x."""
    params = tf.nest.map_structure(lambda p: np.asarray(p, np.float64), params)
    layers = sum(1 for k in params if k.startswith("layer_"))
    zeros = np.zeros(H)
    state = [(zeros, zeros) if cell in ("lstm", "lnlstm") else (zeros,) for _ in range(layers)]

    def step(token, state):
        new, x_in = [], None
        for i in range(layers):
            layer = params[f"layer_{i}"]
            if i == 0:
                a = layer["bias"] + (0.0 if token is None else layer["input_kernel"][token])
            else:
                a = x_in @ layer["input_kernel"] + layer["bias"]
            s = _np_cell(cell, a, state[i][-1] @ layer["recurrent_kernel"], state[i])
            new.append(s)
            x_in = s[-1]
        return x_in @ params["output"]["kernel"] + params["output"]["bias"], new

    logits, state = step(None, state)
    for token in prefix:
        logits, state = step(token, state)
    total = 0.0
    for token in x:
        z = logits / temperature
        total += z[token] - (z.max() + np.log(np.exp(z - z.max()).sum()))
        logits, state = step(token, state)
    return total


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize(
    "case", ["plain", "prefix", "temperatures", "two_layers", "batched_params", "mixture"]
)
def test_normalizes_exactly(cell, case):
    net = _network(cell, num_layers=2 if case == "two_layers" else 1)
    kwargs = {}
    if case == "prefix":
        kwargs["prefix"] = [[0, 2], [1, 1]]
    if case == "temperatures":
        kwargs["temperature"] = [0.5, 2.0]
    if case == "batched_params":
        rng = np.random.default_rng(5)
        kwargs["params"] = tf.nest.map_structure(
            lambda v: v.numpy() + 0.5 * rng.standard_normal((2, *v.shape)), net.params
        )
    dist = probseq.LSTMAutoregressive(net, T, **kwargs)
    if case == "mixture":
        other = probseq.LSTMAutoregressive(_network(cell, seed=9), T)
        dist = tfd.Mixture(tfd.Categorical(probs=np.array([0.3, 0.7])), [dist, other])
    x = ALL.reshape((len(ALL),) + (1,) * dist.batch_shape.rank + (T,))
    log_prob = dist.log_prob(x)
    np.testing.assert_allclose(tf.reduce_logsumexp(log_prob, 0), 0.0, atol=1e-10)
    # Not trivially uniform: the check above would be vacuous for a constant model.
    assert np.all((tf.reduce_max(log_prob, 0) - tf.reduce_min(log_prob, 0)).numpy() > 0.5)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_log_prob_matches_numpy_equations(cell, num_layers):
    net = _network(cell, num_layers=num_layers, seed=3)
    dist = probseq.LSTMAutoregressive(net, T, prefix=[1, 2], temperature=0.8)
    got = dist.log_prob(ALL[:20]).numpy()
    want = [_np_log_prob(cell, net.params, x, prefix=[1, 2], temperature=0.8) for x in ALL[:20]]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert net.cell == cell and f"cell={cell!r}" in repr(net)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_sampling_frequencies_match_log_prob(cell):
    net = _network(cell, seed=4, dtype=tf.float32)
    dist = probseq.LSTMAutoregressive(net, T, prefix=[2], temperature=0.9)
    n = 100_000
    samples = dist.sample(n, seed=(1, 2)).numpy()
    codes = samples @ (V ** np.arange(T - 1, -1, -1))
    freq = np.bincount(codes, minlength=V**T) / n
    p = np.exp(dist.log_prob(ALL).numpy().astype(np.float64))
    # Bernstein's inequality per cell, union bound over the 81 cells: a correct sampler
    # exceeds this radius with probability <= 1e-9 whatever the seed.
    a = math.log(2 * V**T / 1e-9) / n
    radius = a / 3 + np.sqrt(a * a / 9 + 2 * a * p * (1 - p))
    assert np.all(np.abs(freq - p) <= radius)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_seeds_shapes_and_compilation(cell):
    net = _network(cell, seed=6, dtype=tf.float32)
    dist = probseq.LSTMAutoregressive(net, T, temperature=[[1.0], [0.5]], prefix=[[0], [1], [2]])
    assert dist.batch_shape == [2, 3]
    eager = dist.sample([4, 5], seed=(3, 4))
    assert eager.shape == [4, 5, 2, 3, T] and eager.dtype == tf.int32
    np.testing.assert_array_equal(eager, dist.sample([4, 5], seed=(3, 4)))
    graph = tf.function(lambda: dist.sample([4, 5], seed=(3, 4)))()
    np.testing.assert_array_equal(eager, graph)
    xla = tf.function(lambda: dist.sample([4, 5], seed=(3, 4)), jit_compile=True)
    np.testing.assert_array_equal(xla(), xla())
    log_prob = dist.log_prob(eager)
    assert log_prob.shape == [4, 5, 2, 3]
    compiled = tf.function(dist.log_prob, jit_compile=True)(eager)
    np.testing.assert_allclose(compiled, log_prob, rtol=1e-5)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_validate_args_and_gradients(cell):
    net = _network(cell, seed=7, dtype=tf.float32)
    temperature = tf.Variable(1.3)
    dist = probseq.LSTMAutoregressive(net, T, temperature=temperature, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be < vocab_size=3"):
        dist.log_prob([[0, 1, 2, 3]])
    with pytest.raises(TypeError, match="integer token ids, got dtype float"):
        dist.log_prob(np.array([[0.0, 1.5, 2.0, 1.0]]))
    with pytest.raises(ValueError, match="num_steps=4"):
        dist.log_prob([[0, 1, 2]])
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob(ALL[:10]))
    variables = [*net.trainable_variables, temperature]
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, variables)]
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in grads)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_joint_distribution_with_latent_temperature(cell):
    net = _network(cell, seed=8, dtype=tf.float32)
    joint = tfd.JointDistributionNamed(
        dict(
            temperature=tfd.LogNormal(0.0, 0.5),
            text=lambda temperature: probseq.LSTMAutoregressive(net, T, temperature=temperature),
        )
    )
    draw = joint.sample(seed=(5, 6))
    expected = tfd.LogNormal(0.0, 0.5).log_prob(draw["temperature"]) + probseq.LSTMAutoregressive(
        net, T, temperature=draw["temperature"]
    ).log_prob(draw["text"])
    np.testing.assert_allclose(joint.log_prob(draw), expected, rtol=1e-6)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("mode", ["windows", "stream"])
def test_evaluate_matches_log_prob(cell, mode):
    net = _network(cell, seed=10, dtype=tf.float32)
    ids = np.random.default_rng(0).integers(0, V, 41)
    result = evaluate(net, ids, num_steps=T, mode=mode)
    if mode == "windows":
        windows = ids[: (len(ids) // T) * T].reshape(-1, T)
        want = -np.mean(probseq.LSTMAutoregressive(net, T).log_prob(windows).numpy())
        assert result.nll_nats_per_window == pytest.approx(want, rel=1e-5)
    else:
        want = -float(probseq.LSTMAutoregressive(net, len(ids)).log_prob(ids)) / len(ids)
        assert result.nll_nats_per_char == pytest.approx(want, rel=1e-5)
