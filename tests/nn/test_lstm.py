"""The LSTM case of the functional core (`probseq.nn.cells` with cell="lstm") and `LSTMNetwork`."""

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.nn import (
    LSTMState,
    gate_step,
    init_lstm_params,
    num_layers_of,
    param_batch_ndims,
    sizes_of,
)
from probseq.nn import cell_initial_state as initial_state
from probseq.nn import cell_logits as lstm_logits
from probseq.nn import cell_start as lstm_start
from probseq.nn import cell_step as lstm_step

V, H = 3, 5


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _random_params(num_layers: int, seed: int, batch=()) -> dict:
    """float64 params with every leaf (biases too) random, optional leading batch dims."""
    rng = np.random.default_rng(seed)
    reference = init_lstm_params(V, H, num_layers, seed=(seed, 0), dtype=tf.float64)
    return tf.nest.map_structure(
        lambda p: tf.constant(0.7 * rng.standard_normal(tuple(batch) + tuple(p.shape))),
        reference,
    )


def _random_state(params: dict, batch, seed: int) -> tuple[LSTMState, ...]:
    rng = np.random.default_rng(seed)
    return tuple(
        LSTMState(
            tf.constant(rng.standard_normal(tuple(batch) + (H,))),
            tf.constant(0.5 * rng.standard_normal(tuple(batch) + (H,))),
        )
        for _ in range(num_layers_of(params))
    )


# ------------------------------------------------------------------- cell math
def test_gate_step_equations_gate_order_and_forget_bias():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 4 * H))
    c = rng.standard_normal((2, H))
    new = gate_step(tf.constant(z), tf.constant(c))
    i, f, o, u = np.split(z, 4, axis=-1)
    c_expected = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(u)
    np.testing.assert_allclose(new.c, c_expected, atol=1e-12)
    np.testing.assert_allclose(new.h, _sigmoid(o) * np.tanh(c_expected), atol=1e-12)
    # The +1 is in the equation: without it the cell state would be measurably different.
    assert np.max(np.abs(new.c.numpy() - (_sigmoid(f) * c + _sigmoid(i) * np.tanh(u)))) > 1e-2


def test_gate_step_forget_bias_on_zero_preactivations():
    """z = 0: c' = sigmoid(1) c + 0.5 tanh(0) = sigmoid(1) c, h' = 0.5 tanh(c')."""
    c = tf.constant([[1.0, -2.0, 0.5]], tf.float64)
    new = gate_step(tf.zeros([1, 12], tf.float64), c)
    np.testing.assert_allclose(new.c, _sigmoid(1.0) * c.numpy(), atol=1e-12)
    np.testing.assert_allclose(new.h, 0.5 * np.tanh(_sigmoid(1.0) * c.numpy()), atol=1e-12)


def _np_step(params, token, state):
    """numpy reference of one stacked step for unbatched params; token None = no input."""
    params = tf.nest.map_structure(np.asarray, params)
    x, new = None, []
    for index in range(num_layers_of(params)):
        layer = params[f"layer_{index}"]
        c, h = (np.asarray(s) for s in state[index])
        if index == 0:
            wx = 0.0 if token is None else layer["input_kernel"][token]
        else:
            wx = x @ layer["input_kernel"]
        i, f, o, u = np.split(wx + h @ layer["recurrent_kernel"] + layer["bias"], 4, axis=-1)
        c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(u)
        x = _sigmoid(o) * np.tanh(c)
        new.append((c, x))
    return x @ params["output"]["kernel"] + params["output"]["bias"], new


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_lstm_step_matches_numpy(num_layers):
    params = _random_params(num_layers, seed=num_layers)
    state = _random_state(params, [4], seed=1)
    tokens = np.array([0, 2, 1, 2])
    logits, new = lstm_step(params, tf.constant(tokens), state)
    expected, expected_state = _np_step(params, tokens, state)
    np.testing.assert_allclose(logits, expected, atol=1e-12)
    for got, want in zip(new, expected_state, strict=True):
        np.testing.assert_allclose(got.c, want[0], atol=1e-12)
        np.testing.assert_allclose(got.h, want[1], atol=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_start_is_zero_state_and_no_input(num_layers):
    params = _random_params(num_layers, seed=10 + num_layers)
    logits, state = lstm_start(params)
    zero = initial_state(params, [])
    expected, expected_state = _np_step(params, None, zero)
    np.testing.assert_allclose(logits, expected, atol=1e-12)
    assert logits.shape.as_list() == [V]
    for got, want in zip(state, expected_state, strict=True):
        np.testing.assert_allclose(got.h, want[1], atol=1e-12)
    # Reading token 0 is not the same as reading nothing.
    with_zero, _ = _np_step(params, 0, zero)
    assert np.max(np.abs(logits.numpy() - with_zero)) > 1e-3


def test_initial_state_is_zero_with_requested_shape():
    params = _random_params(2, seed=3)
    state = initial_state(params, [2, 3])
    assert len(state) == 2
    for layer in state:
        assert layer.c.shape.as_list() == [2, 3, H]
        assert layer.h.dtype == tf.float64
        assert not np.any(layer.c.numpy()) and not np.any(layer.h.numpy())


def test_structure_helpers():
    params = _random_params(3, seed=4, batch=[2, 1])
    assert num_layers_of(params) == 3
    assert param_batch_ndims(params) == 2
    assert sizes_of(params) == (V, H)


# --------------------------------------------------------- teacher forcing
def _iterate_steps(params, tokens, state):
    """`lstm_logits` by hand: `lstm_step` over the time axis (last axis of tokens)."""
    outputs = []
    for t in range(tokens.shape[-1]):
        logits, state = lstm_step(params, tokens[..., t], state)
        outputs.append(logits)
    return tf.stack(outputs, axis=-2), state


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("time_major", [False, True])
def test_lstm_logits_equals_iterating_lstm_step(num_layers, time_major):
    params = _random_params(num_layers, seed=20 + num_layers)
    tokens = tf.constant(np.random.default_rng(5).integers(0, V, size=(2, 3, 6)), tf.int32)
    state = _random_state(params, [2, 3], seed=6)
    logits, final = lstm_logits(params, tokens, state, time_major=time_major)
    expected, expected_final = _iterate_steps(params, tokens, state)
    if time_major:
        expected = tf.transpose(expected, [2, 0, 1, 3])
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, atol=1e-12)
    for got, want in zip(final, expected_final, strict=True):
        np.testing.assert_allclose(got.c, want.c, atol=1e-12)
        np.testing.assert_allclose(got.h, want.h, atol=1e-12)


def test_lstm_logits_with_batched_params_equals_iterating_lstm_step():
    params = _random_params(2, seed=30, batch=[2])
    tokens = tf.constant(np.random.default_rng(7).integers(0, V, size=(2, 4, 5)), tf.int32)
    state = _random_state(params, [2, 4], seed=8)
    logits, _ = lstm_logits(params, tokens, state)
    expected, _ = _iterate_steps(params, tokens, state)
    np.testing.assert_allclose(logits, expected, atol=1e-12)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_batched_params_equal_separate_calls(num_layers):
    """A stack of 2 param sets gives, per member, exactly the separate unbatched result."""
    members = [_random_params(num_layers, seed=40 + s) for s in range(2)]
    stacked = tf.nest.map_structure(lambda *p: tf.stack(p), *members)
    tokens = tf.constant(np.random.default_rng(9).integers(0, V, size=(2, 3, 4)), tf.int32)
    state = _random_state(stacked, [2, 3], seed=10)
    logits, final = lstm_logits(stacked, tokens, state)
    step_logits, _ = lstm_step(stacked, tokens[..., 0], state)
    start_logits, _ = lstm_start(stacked)
    assert logits.shape.as_list() == [2, 3, 4, V]
    for m, params in enumerate(members):
        member_state = tf.nest.map_structure(lambda s, m=m: s[m], state)
        alone, alone_final = lstm_logits(params, tokens[m], member_state)
        np.testing.assert_allclose(logits[m], alone, atol=1e-12)
        np.testing.assert_allclose(final[-1].h[m], alone_final[-1].h, atol=1e-12)
        alone_step, _ = lstm_step(params, tokens[m, :, 0], member_state)
        np.testing.assert_allclose(step_logits[m], alone_step, atol=1e-12)
        np.testing.assert_allclose(start_logits[m], lstm_start(params)[0], atol=1e-12)
    # The members really differ (otherwise the comparison above proves little).
    assert np.max(np.abs(logits[0].numpy() - logits[1].numpy())) > 1e-3


def test_lstm_logits_xla_matches_eager():
    params = _random_params(2, seed=50, batch=[2])
    tokens = tf.constant(np.random.default_rng(11).integers(0, V, size=(2, 3, 6)), tf.int32)
    state = _random_state(params, [2, 3], seed=12)
    eager, _ = lstm_logits(params, tokens, state)
    compiled = tf.function(lambda p, x, s: lstm_logits(p, x, s)[0], jit_compile=True)
    np.testing.assert_allclose(compiled(params, tokens, state), eager, atol=1e-10)


# ------------------------------------------------------------------ network
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_network_attributes_and_params_structure(num_layers):
    net = probseq.LSTMNetwork(V, H, num_layers=num_layers, seed=1)
    assert (net.vocab_size, net.hidden_size, net.num_layers) == (V, H, num_layers)
    assert net.dtype == tf.float32
    assert sorted(net.params) == sorted([f"layer_{i}" for i in range(num_layers)] + ["output"])
    for index in range(num_layers):
        layer = net.params[f"layer_{index}"]
        assert sorted(layer) == ["bias", "input_kernel", "recurrent_kernel"]
        rows = V if index == 0 else H
        assert layer["input_kernel"].shape.as_list() == [rows, 4 * H]
        assert layer["recurrent_kernel"].shape.as_list() == [H, 4 * H]
        assert layer["bias"].shape.as_list() == [4 * H]
        np.testing.assert_array_equal(layer["bias"], 0.0)  # the +1 lives in the equation
    assert net.params["output"]["kernel"].shape.as_list() == [H, V]
    assert net.params["output"]["bias"].shape.as_list() == [V]
    leaves = tf.nest.flatten(net.params)
    assert all(isinstance(v, tf.Variable) and v.trainable for v in leaves)
    assert {id(v) for v in net.trainable_variables} == {id(v) for v in leaves}
    assert len(net.trainable_variables) == 3 * num_layers + 2
    assert param_batch_ndims(net.params) == 0


@pytest.mark.parametrize("num_layers", [1, 2])
def test_recurrent_kernel_is_orthogonal(num_layers):
    net = probseq.LSTMNetwork(V, 6, num_layers=num_layers, seed=2, dtype=tf.float64)
    for index in range(num_layers):
        kernel = net.params[f"layer_{index}"]["recurrent_kernel"].numpy()  # [H, 4H]
        # Orthonormal rows across all four gates (Keras' Orthogonal initializer).
        np.testing.assert_allclose(kernel @ kernel.T, np.eye(6), atol=1e-12)
        blocks = np.split(kernel, 4, axis=-1)
        assert not np.allclose(blocks[0], blocks[1])


def test_input_and_output_kernels_are_glorot_bounded_and_nonzero():
    from probseq.nn.cells import INPUT_TABLE_SCALE

    net = probseq.LSTMNetwork(V, H, num_layers=2, seed=3)
    for kernel, scale in [
        (net.params["layer_0"]["input_kernel"], INPUT_TABLE_SCALE),
        (net.params["layer_1"]["input_kernel"], 1.0),
        (net.params["output"]["kernel"], 1.0),
    ]:
        limit = scale * np.sqrt(6.0 / sum(kernel.shape))
        values = kernel.numpy()
        assert np.all(np.abs(values) <= limit)
        assert np.std(values) > 0.1 * limit


@pytest.mark.parametrize(
    ("seed", "same_seed", "other_seed"),
    [((7, 0), tf.constant([7, 0]), (7, 1)), (7, 7, 8)],
    ids=["pair_and_tensor", "python_int"],
)
def test_seeded_init_is_reproducible(seed, same_seed, other_seed):
    """Same seed, same weights -- also for two networks built in the same process."""
    first = probseq.LSTMNetwork(V, H, num_layers=2, seed=seed)
    second = probseq.LSTMNetwork(V, H, num_layers=2, seed=same_seed)
    other = probseq.LSTMNetwork(V, H, num_layers=2, seed=other_seed)
    for path, a, b, c in zip(
        _paths(first.params),
        *(tf.nest.flatten(n.params) for n in [first, second, other]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b, err_msg=f"params{path} differ for the same seed")
        if "bias" not in path:  # biases are zero for every seed
            assert not np.array_equal(a, c), path


def _paths(params: dict) -> list[str]:
    """Leaf paths in `tf.nest.flatten` order (sorted keys)."""
    return [f"[{key!r}][{sub!r}]" for key in sorted(params) for sub in sorted(params[key])]


def test_float64_network():
    net = probseq.LSTMNetwork(V, H, seed=1, dtype=tf.float64)
    assert net.dtype == tf.float64
    assert all(v.dtype == tf.float64 for v in tf.nest.flatten(net.params))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": 0, "hidden_size": H},
        {"vocab_size": V, "hidden_size": -1},
        {"vocab_size": V, "hidden_size": 2.5},
        {"vocab_size": V, "hidden_size": H, "num_layers": 0},
        {"vocab_size": True, "hidden_size": H},
    ],
)
def test_network_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        probseq.LSTMNetwork(**kwargs)
