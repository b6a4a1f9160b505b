"""Cell-generic functional core (`probseq.nn.cells`): every cell against plain numpy."""

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.nn import (
    CELL_NAMES,
    HiddenState,
    LSTMState,
    Seq2SeqNetwork,
    cell_encode,
    cell_hidden,
    cell_initial_state,
    cell_layer,
    cell_logits,
    cell_start,
    cell_step,
    get_cell,
    init_cell_params,
    init_lstm_params,
)

V, H = 4, 3
GATES = {"lstm": 4, "lnlstm": 4, "gru": 3, "rnn": 1}
LSTM_LIKE = ("lstm", "lnlstm")  # cells whose state is (c, h)


# ----------------------------------------------------------- numpy reference
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _layer_norm(x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)


def np_cell(cell: str, x_proj: np.ndarray, h_proj: np.ndarray, state: tuple) -> tuple:
    """The documented equations, written out: `x_proj = x Wx + b`, `h_proj = h Wh`."""
    hidden = state[-1].shape[-1]

    def block(z, index):
        return z[..., index * hidden : (index + 1) * hidden]

    if cell == "lstm":
        c, _ = state
        z = x_proj + h_proj
        i, f, o, u = (block(z, n) for n in range(4))
        c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(u)
        return (c, _sigmoid(o) * np.tanh(c))
    if cell == "lnlstm":  # each gate's h Wh and the new cell normalized over the units
        c, _ = state
        z = x_proj + np.concatenate([_layer_norm(block(h_proj, n)) for n in range(4)], -1)
        i, f, o, u = (block(z, n) for n in range(4))
        c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(u)
        return (c, _sigmoid(o) * np.tanh(_layer_norm(c)))
    (h,) = state
    if cell == "gru":
        r = _sigmoid(block(x_proj, 0) + block(h_proj, 0))
        z = _sigmoid(block(x_proj, 1) + block(h_proj, 1))
        n = np.tanh(block(x_proj, 2) + r * block(h_proj, 2))
        return ((1.0 - z) * n + z * h,)
    return (np.tanh(x_proj + h_proj),)


def np_step(cell: str, params: dict, token, state: list) -> tuple[np.ndarray, list]:
    """One step of the stack for unbatched numpy params; `token=None` reads nothing."""
    new_state, x = [], None
    for index in range(len(state)):
        layer = params[f"layer_{index}"]
        if index == 0:
            x_proj = layer["bias"] + (0.0 if token is None else layer["input_kernel"][token])
        else:
            x_proj = x @ layer["input_kernel"] + layer["bias"]
        new = np_cell(cell, x_proj, state[index][-1] @ layer["recurrent_kernel"], state[index])
        new_state.append(new)
        x = new[-1]
    return x @ params["output"]["kernel"] + params["output"]["bias"], new_state


def _np(structure):
    return tf.nest.map_structure(lambda t: np.asarray(t, np.float64), structure)


def _random_params(cell: str, num_layers: int, seed: int, batch=()) -> dict:
    rng = np.random.default_rng(seed)
    reference = init_cell_params(V, H, num_layers, cell=cell, seed=(seed, 1), dtype=tf.float64)
    return tf.nest.map_structure(
        lambda p: tf.constant(0.8 * rng.standard_normal(tuple(batch) + tuple(p.shape))),
        reference,
    )


def _random_state(cell: str, num_layers: int, batch, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    kind, size = (LSTMState, 2) if cell in LSTM_LIKE else (HiddenState, 1)
    return tuple(
        kind(*(tf.constant(rng.standard_normal(tuple(batch) + (H,))) for _ in range(size)))
        for _ in range(num_layers)
    )


def _np_state_of(state: tuple, index) -> list:
    return [tuple(np.asarray(s)[index] for s in layer) for layer in state]


# ------------------------------------------------------------------ the tests
def test_cell_registry():
    assert CELL_NAMES == ("lstm", "lnlstm", "gru", "rnn")
    for name, gates in GATES.items():
        assert get_cell(name).num_gates == gates
        assert get_cell(get_cell(name)) is get_cell(name)
    with pytest.raises(ValueError, match="cell must be one of"):
        get_cell("transformer")


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_single_update_matches_numpy_equations(cell):
    rng = np.random.default_rng(3)
    x_proj = rng.standard_normal((2, GATES[cell] * H))
    h_proj = rng.standard_normal((2, GATES[cell] * H))
    state = tuple(rng.standard_normal((2, H)) for _ in range(2 if cell in LSTM_LIKE else 1))
    tf_state = (LSTMState if cell in LSTM_LIKE else HiddenState)(*map(tf.constant, state))
    new = get_cell(cell).update(tf.constant(x_proj), tf.constant(h_proj), tf_state)
    expected = np_cell(cell, x_proj, h_proj, state)
    assert len(new) == len(expected)
    for got, want in zip(new, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_gru_is_reset_after_and_rnn_ignores_nothing():
    """Distinguish reset-after from reset-before: with r = 0 the recurrent candidate vanishes."""
    h = tf.constant([[0.5, -0.3, 0.9]], tf.float64)
    # r -> 0 (huge negative), z = 0, x_n = 0, h Un = large: reset-after gives n = tanh(0) = 0.
    x_proj = tf.constant([[-50.0] * H + [-50.0] * H + [0.0] * H], tf.float64)
    h_proj = tf.constant([[0.0] * H + [0.0] * H + [5.0] * H], tf.float64)
    new = get_cell("gru").update(x_proj, h_proj, HiddenState(h))
    np.testing.assert_allclose(new.h, np.zeros((1, H)), atol=1e-12)  # z ~ 0 -> h' = n = 0
    rnn = get_cell("rnn").update(tf.zeros([1, H], tf.float64), h_proj[:, :H] + 1.0, None)
    np.testing.assert_allclose(rnn.h, np.tanh(np.ones((1, H))), rtol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_cell_logits_matches_numpy(cell, num_layers):
    params = _random_params(cell, num_layers, seed=10 + num_layers)
    tokens = np.array([[0, 3, 1, 2, 2], [1, 1, 0, 3, 2]], np.int32)
    state = _random_state(cell, num_layers, [2], seed=5)
    logits, final = cell_logits(params, tokens, state, cell=cell)
    assert logits.shape == (2, 5, V)
    np_params = _np(params)
    for b in range(2):
        np_state = _np_state_of(state, b)
        for t in range(5):
            expected, np_state = np_step(cell, np_params, int(tokens[b, t]), np_state)
            np.testing.assert_allclose(logits[b, t], expected, rtol=1e-10, atol=1e-12)
        for layer, np_layer in zip(final, np_state, strict=True):
            for got, want in zip(layer, np_layer, strict=True):
                np.testing.assert_allclose(got[b], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_cell_start_and_step_match_numpy(cell):
    params = _random_params(cell, 2, seed=21)
    np_params = _np(params)
    logits, state = cell_start(params, cell=cell)
    expected, np_state = np_step(cell, np_params, None, [(np.zeros(H),) * len(state[0])] * 2)
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-12)
    logits, state = cell_step(params, tf.constant(2), state, cell=cell)
    expected, np_state = np_step(cell, np_params, 2, np_state)
    np.testing.assert_allclose(logits, expected, rtol=1e-10, atol=1e-12)
    for layer, np_layer in zip(state, np_state, strict=True):
        assert type(layer) is (LSTMState if cell in LSTM_LIKE else HiddenState)
        for got, want in zip(layer, np_layer, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_batched_params_match_separate_calls(cell):
    """Params batch [2]: tokens `[2, 3, T]`, each member equals the unbatched computation."""
    params = _random_params(cell, 2, seed=31, batch=[2])
    tokens = np.random.default_rng(0).integers(0, V, size=(2, 3, 6)).astype(np.int32)
    state = _random_state(cell, 2, [2, 3], seed=7)
    logits, final = cell_logits(params, tokens, state, cell=cell)
    step_logits, step_state = cell_step(params, tokens[..., 0], state, cell=cell)
    start_logits, _ = cell_start(params, cell=cell)
    assert start_logits.shape == (2, V)
    for p in range(2):
        member = tf.nest.map_structure(lambda x, p=p: x[p], params)
        member_state = tf.nest.map_structure(lambda s, p=p: s[p], state)
        want, want_final = cell_logits(member, tokens[p], member_state, cell=cell)
        np.testing.assert_allclose(logits[p], want, rtol=1e-10, atol=1e-12)
        for got, ref in zip(tf.nest.flatten(final), tf.nest.flatten(want_final), strict=True):
            np.testing.assert_allclose(got[p], ref, rtol=1e-10, atol=1e-12)
        want_step, _ = cell_step(member, tokens[p, :, 0], member_state, cell=cell)
        np.testing.assert_allclose(step_logits[p], want_step, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            start_logits[p], cell_start(member, cell=cell)[0], rtol=1e-10, atol=1e-12
        )
    assert tf.nest.flatten(step_state)[0].shape == (2, 3, H)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("time_major", [False, True])
def test_teacher_forcing_equals_iterated_steps(cell, time_major):
    params = _random_params(cell, 2, seed=41)
    tokens = tf.constant([[3, 0, 2, 1], [2, 2, 0, 0], [1, 3, 3, 0]])
    state = cell_initial_state(params, [3], cell=cell)
    logits, final = cell_logits(params, tokens, state, cell=cell, time_major=time_major)
    hidden, hidden_final = cell_hidden(params, tokens, state, cell=cell, time_major=time_major)
    encoded = cell_encode(params, tokens, state, cell=cell)
    if time_major:
        logits = tf.transpose(logits, [1, 0, 2])
        hidden = tf.transpose(hidden, [1, 0, 2])
    step_state = state
    for t in range(4):
        step_logits, step_state = cell_step(params, tokens[:, t], step_state, cell=cell)
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(hidden[:, t], step_state[-1].h, rtol=1e-10, atol=1e-12)
    for a, b, c, d in zip(
        *(tf.nest.flatten(s) for s in (final, hidden_final, encoded, step_state)), strict=True
    ):
        for other in (b, c, d):
            np.testing.assert_allclose(a, other, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [(4, 2), 7])
def test_lstm_path_equals_the_lstm_core(seed):
    params = init_cell_params(V, H, 2, cell="lstm", seed=seed)
    reference = init_lstm_params(V, H, 2, seed=seed)
    for got, want in zip(tf.nest.flatten(params), tf.nest.flatten(reference), strict=True):
        np.testing.assert_array_equal(got, want)
    tokens = tf.constant([[1, 2, 3, 0]])
    got, _ = cell_logits(params, tokens, cell_initial_state(params, [1]), cell="lstm")
    want, _ = cell_logits(params, tokens, cell_initial_state(params, [1]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_init_shapes_seeds_and_head(cell):
    gates = GATES[cell]
    params = init_cell_params(V, H, 2, cell=cell, output_size=7, seed=3)
    again = init_cell_params(V, H, 2, cell=cell, output_size=7, seed=3)
    other = init_cell_params(V, H, 2, cell=cell, output_size=7, seed=4)
    assert params["layer_0"]["input_kernel"].shape == (V, gates * H)
    assert params["layer_1"]["input_kernel"].shape == (H, gates * H)
    assert params["layer_1"]["recurrent_kernel"].shape == (H, gates * H)
    assert params["output"]["kernel"].shape == (H, 7)
    for a, b in zip(tf.nest.flatten(params), tf.nest.flatten(again), strict=True):
        np.testing.assert_array_equal(a, b)  # an int seed is reproducible
    assert not np.array_equal(params["output"]["kernel"], other["output"]["kernel"])
    kernel = np.asarray(params["layer_0"]["recurrent_kernel"])  # [H, G*H]
    # Orthonormal rows across all gates (Keras' Orthogonal initializer).
    np.testing.assert_allclose(kernel @ kernel.T, np.eye(H), atol=1e-5)
    assert "output" not in init_cell_params(V, H, cell=cell, output=False, seed=1)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_the_cell_is_stated_and_defaults_to_lstm(cell):
    """Issue 12: a cell was guessed from the gate width; now it is stated (default lstm)."""
    params = _random_params(cell, 2, seed=71)
    tokens = tf.constant([[1, 0, 3]])
    state = cell_initial_state(params, [1], cell=cell)
    assert type(state[0]) is (LSTMState if cell in LSTM_LIKE else HiddenState)
    if cell in LSTM_LIKE:
        default, _ = cell_logits(params, tokens, state)
        explicit, _ = cell_logits(params, tokens, state, cell="lstm")
        np.testing.assert_array_equal(default, explicit)
    else:  # the default is the LSTM, whose gate width these params do not have
        with pytest.raises(ValueError, match="cell 'lstm' needs 4"):
            cell_logits(params, tokens, state)


def test_params_of_the_wrong_cell_are_rejected():
    params = init_cell_params(V, H, cell="gru", seed=1)
    with pytest.raises(ValueError, match="cell 'lstm' needs 4"):
        cell_logits(params, tf.constant([[1, 2]]), None, cell="lstm")
    odd = {"layer_0": {"recurrent_kernel": tf.zeros([H, 2 * H])}}
    with pytest.raises(ValueError, match=f"gate width {2 * H} for hidden size {H}"):
        cell_initial_state(odd, [1])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_cell_layer_runs_on_continuous_inputs_and_differentiates(cell):
    params = init_cell_params(V, H, cell=cell, seed=(1, 1), dtype=tf.float64)
    inputs = tf.constant(np.random.default_rng(2).standard_normal((6, 2, GATES[cell] * H)))
    state = cell_initial_state(params, [2], cell=cell)[0]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs, final = cell_layer(inputs, params["layer_0"]["recurrent_kernel"], state, cell=cell)
        loss = tf.reduce_sum(outputs[-1])
    assert outputs.shape == (6, 2, H)
    np.testing.assert_allclose(outputs[-1], final.h)
    grad = tape.gradient(loss, inputs)
    assert np.all(np.isfinite(grad)) and np.any(grad[0] != 0.0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_reach_every_param(cell):
    params = tf.nest.map_structure(tf.Variable, _random_params(cell, 2, seed=51))
    with tf.GradientTape() as tape:
        logits, _ = cell_logits(
            params, tf.constant([[1, 2, 3]]), cell_initial_state(params, [1], cell=cell), cell=cell
        )
        loss = tf.reduce_sum(tf.nn.log_softmax(logits)[..., 0])
    grads = tape.gradient(loss, tf.nest.flatten(params))
    assert all(g is not None and np.any(np.asarray(g) != 0.0) for g in grads)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_xla_matches_eager(cell):
    params = _random_params(cell, 2, seed=61, batch=[2])
    tokens = tf.constant(np.random.default_rng(1).integers(0, V, size=(2, 3, 5)), tf.int32)
    state = cell_initial_state(params, [2, 3], cell=cell)

    @tf.function(jit_compile=True)
    def run(params, tokens):
        return cell_logits(params, tokens, state, cell=cell)[0]

    np.testing.assert_allclose(
        run(params, tokens),
        cell_logits(params, tokens, state, cell=cell)[0],
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_seq2seq_network_module(cell):
    net = Seq2SeqNetwork(5, 7, 6, num_layers=2, cell=cell, seed=3)
    again = Seq2SeqNetwork(5, 7, 6, num_layers=2, cell=cell, seed=3)
    gates = GATES[cell]
    assert net.params["encoder"]["layer_0"]["input_kernel"].shape == (5, gates * 6)
    assert "output" not in net.params["encoder"]
    assert net.params["decoder"]["layer_0"]["input_kernel"].shape == (7, gates * 6)
    assert net.params["decoder"]["output"]["kernel"].shape == (6, 7)
    assert len(net.trainable_variables) == 2 * 3 + 2 * 3 + 2
    assert net.cell == cell and net.vocab_size == 7
    for a, b in zip(tf.nest.flatten(net.params), tf.nest.flatten(again.params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        net.params["encoder"]["layer_0"]["recurrent_kernel"],
        net.params["decoder"]["layer_0"]["recurrent_kernel"],
    )
    assert repr(net).startswith("Seq2SeqNetwork(source_vocab_size=5")
    assert probseq.nn.Seq2SeqNetwork is Seq2SeqNetwork


def test_seq2seq_network_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden_size"):
        Seq2SeqNetwork(5, 5, 0)
    with pytest.raises(ValueError, match="cell must be one of"):
        Seq2SeqNetwork(5, 5, 4, cell="lstmx")
