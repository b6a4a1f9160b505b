"""`LSTMAutoregressive.log_prob` against a plain-numpy implementation of the cell equations."""

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import (
    all_sequences,
    np_first_step_probs,
    np_log_prob,
    perturbed_params,
    randomized_network,
    to_numpy,
)

import probseq

V, H, T = 3, 4, 4
ALL = all_sequences(V, T)  # :: [81, T]
NETS = {layers: randomized_network(V, H, num_layers=layers, seed=20 + layers) for layers in (1, 2)}


def _first_step_probs(dist) -> np.ndarray:
    """`p(x_1 = v)` for every v, read off the distribution with num_steps = 1."""
    return np.exp(dist.log_prob(np.arange(V)[:, None]).numpy())


@pytest.mark.parametrize("layers", [1, 2])
def test_first_step_reads_no_token(layers):
    net = NETS[layers]
    params = to_numpy(net.params)
    probs = _first_step_probs(probseq.LSTMAutoregressive(net, 1))
    # Zero state, zero input term: z = 0 Wh + b for layer 0.
    np.testing.assert_allclose(probs, np_first_step_probs(params), rtol=0, atol=1e-12)
    # The reference itself, spelled out for one layer so that the claim is explicit.
    if layers == 1:
        layer, out = params["layer_0"], params["output"]
        i, _, o, u = np.split(layer["bias"], 4)
        c = 1 / (1 + np.exp(-i)) * np.tanh(u)  # sigmoid(f + 1) * 0 drops out
        h = 1 / (1 + np.exp(-o)) * np.tanh(c)
        logits = h @ out["kernel"] + out["bias"]
        np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(), atol=1e-12)
    # Conditioning the first step on token 0 (rather than on nothing) is different.
    for token in range(V):
        with_token = np_first_step_probs(params, token)
        assert np.max(np.abs(probs - with_token)) > 1e-3
    # ... and a prefix [0] is read *after* the no-token step: p(x_1 | prefix [0]) is the
    # second step of the chain, not the first step conditioned on 0.
    after_prefix = _first_step_probs(probseq.LSTMAutoregressive(net, 1, prefix=[0]))
    assert np.max(np.abs(after_prefix - np_first_step_probs(params, 0))) > 1e-3


def test_first_step_is_uniform_for_the_fresh_init():
    """With zero biases and zero state the first step has h = 0: logits = output bias = 0."""
    net = probseq.LSTMNetwork(V, H, seed=3, dtype=tf.float64)
    np.testing.assert_allclose(
        _first_step_probs(probseq.LSTMAutoregressive(net, 1)), np.full(V, 1 / V), atol=1e-12
    )


CASES = {
    "one_layer": (1, {}),
    "two_layers": (2, {}),
    "prefix": (1, {"prefix": [2, 0, 1]}),
    "two_layers_batched_prefix": (2, {"prefix": [[0, 1], [2, 2], [1, 0]]}),
    "temperature": (1, {"temperature": 0.6}),
    "batched_temperature_and_prefix": (
        2,
        {"temperature": [[0.5], [2.5]], "prefix": [[0, 1], [2, 2], [1, 0]]},
    ),
    "batched_params": (1, {"params": [2]}),
    "batched_params_2x1_prefix_temperature": (
        2,
        {"params": [2, 1], "prefix": [[1], [0], [2]], "temperature": [[1.5], [0.4]]},
    ),
}


def _build(case):
    layers, kwargs = CASES[case]
    net = NETS[layers]
    kwargs = dict(kwargs)
    params_batch = kwargs.pop("params", None)
    reference_kwargs = dict(kwargs)
    if params_batch is not None:
        kwargs["params"] = perturbed_params(net, params_batch, seed=30, scale=0.5)
        reference = to_numpy(kwargs["params"])
        reference_kwargs["params_batch_ndims"] = len(params_batch)
    else:
        reference = to_numpy(net.params)
    return probseq.LSTMAutoregressive(net, T, **kwargs), reference, reference_kwargs


@pytest.mark.parametrize("case", list(CASES))
def test_log_prob_matches_numpy(case):
    dist, params, kwargs = _build(case)
    batch_rank = dist.batch_shape.rank
    # Every sequence, against every batch member (unit batch dims broadcast).
    x = ALL.reshape((len(ALL),) + (1,) * batch_rank + (T,))
    expected = np_log_prob(params, x, **kwargs)
    actual = dist.log_prob(x).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", ["two_layers_batched_prefix", "batched_params"])
def test_log_prob_matches_numpy_for_full_batch_values(case):
    """Values that carry the full batch shape (different x per batch member)."""
    dist, params, kwargs = _build(case)
    x = dist.sample(3, seed=(5, 6)).numpy()  # :: [3] + batch + [T]
    np.testing.assert_allclose(dist.log_prob(x), np_log_prob(params, x, **kwargs), atol=1e-10)


def test_log_prob_matches_numpy_in_float32():
    net = randomized_network(V, 6, num_layers=2, seed=40, dtype=tf.float32)
    dist = probseq.LSTMAutoregressive(net, T, prefix=[1, 2], temperature=0.8)
    expected = np_log_prob(to_numpy(net.params), ALL, prefix=[1, 2], temperature=0.8)
    np.testing.assert_allclose(dist.log_prob(ALL), expected, rtol=0, atol=2e-5)


def test_reference_comparison_detects_a_missing_forget_bias():
    """Power check: a cell without the +1 forget bias is far outside the tolerance above.

    Dropping the +1 is the same as lowering every forget-gate bias by 1.
    """
    dist, params, _ = _build("two_layers")
    without = tf.nest.map_structure(np.copy, params)
    for index in range(2):
        without[f"layer_{index}"]["bias"][H : 2 * H] -= 1.0
    assert np.max(np.abs(np_log_prob(without, ALL) - dist.log_prob(ALL).numpy())) > 1e-3
