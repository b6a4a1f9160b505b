"""`validate_args` errors, constructor argument checks, and no assertions when off."""

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import randomized_network

import probseq

V, H, T = 3, 4, 4
NET = randomized_network(V, H, seed=90, dtype=tf.float32)
VALID = [[0, 1, 2, 1], [2, 2, 0, 0]]


def _dist(**kwargs):
    return probseq.LSTMAutoregressive(NET, T, validate_args=True, **kwargs)


# ----------------------------------------------------------------- token values
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([[0, 1, 2, 3]], "tokens must be < vocab_size=3"),
        ([[0, 1, 2, 7], [0, 0, 0, 0]], "tokens must be < vocab_size=3"),
        ([[0, -1, 2, 1]], "tokens must be >= 0"),
    ],
)
def test_out_of_range_tokens_raise(bad, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _dist().log_prob(tf.constant(bad, tf.int32))


@pytest.mark.parametrize("validate_args", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        lambda: [[0.0, 1.0, 2.0, 1.5]],
        lambda: tf.constant([[0.0, 1.0, 2.0, 1.5]]),
        lambda: np.array([[0.0, 1.0, 2.0, 1.5]], np.float32),
        lambda: np.array([[0.0, 1.0, 2.0, 1.5]]),
        lambda: tf.constant(VALID, tf.float32),  # integer-valued floats too
    ],
    ids=["list", "tensor_float32", "numpy_float32", "numpy_float64", "integer_valued"],
)
def test_float_tokens_are_refused_statically(make, validate_args):
    """Regression (issue 11, defect 4): with the default validate_args=False a float 1.5
    was truncated to token 1 and a real-valued series scored as tokens. A float dtype is
    a static property: refused always, with no run-time assertion."""
    dist = probseq.LSTMAutoregressive(NET, T, validate_args=validate_args)
    with pytest.raises(TypeError, match="must be integer token ids, got dtype float"):
        dist.log_prob(make())


@pytest.mark.parametrize("validate_args", [False, True])
def test_static_length_mismatch_raises_value_error(validate_args):
    """A statically known wrong length is a ValueError, with or without validate_args."""
    dist = probseq.LSTMAutoregressive(NET, T, validate_args=validate_args)
    with pytest.raises(ValueError, match=r"length num_steps=4"):
        dist.log_prob(tf.zeros([2, 3], tf.int32))
    with pytest.raises(ValueError, match="num_steps=4"):
        dist.log_prob(tf.zeros([5], tf.int32))


def test_dynamic_length_mismatch_raises_with_validate_args():
    dist = _dist()
    log_prob = tf.function(dist.log_prob, input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(log_prob(tf.constant(VALID)), dist.log_prob(VALID), rtol=1e-6)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="last axis of the tokens must have length num_steps=4"
    ):
        log_prob(tf.zeros([2, 5], tf.int32))


def test_out_of_range_tokens_raise_inside_tf_function():
    log_prob = tf.function(_dist().log_prob)
    with pytest.raises(tf.errors.InvalidArgumentError, match="tokens must be < vocab_size=3"):
        log_prob(tf.constant([[0, 1, 2, 3]]))


def test_validation_passes_valid_values_and_samples():
    dist = _dist(prefix=[[1], [2]], temperature=0.5)
    x = dist.sample(3, seed=(1, 2))
    assert np.all(np.isfinite(dist.log_prob(x)))
    np.testing.assert_allclose(
        dist.log_prob(x),
        probseq.LSTMAutoregressive(NET, T, prefix=[[1], [2]], temperature=0.5).log_prob(x),
        rtol=1e-6,
    )


# ------------------------------------------------------------------ temperature
@pytest.mark.parametrize("temperature", [0.0, -1.0, [1.0, -0.5], [[0.5], [0.0]]])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be positive"):
        _dist(temperature=temperature).log_prob(VALID)


def test_non_positive_temperature_variable_raises_at_use():
    temperature = tf.Variable(1.5)
    dist = _dist(temperature=temperature)
    dist.log_prob(VALID)  # fine while positive
    temperature.assign(-2.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be positive"):
        dist.log_prob(VALID)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be positive"):
        dist.sample(seed=(1, 1))


# ----------------------------------------------------------------------- prefix
@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ([0, 3], "prefix must be < vocab_size=3"),
        ([[0, 1], [1, 5]], "prefix must be < vocab_size=3"),
        ([-1], "prefix must be >= 0"),
    ],
)
def test_out_of_range_prefix_raises(prefix, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _dist(prefix=prefix).log_prob(VALID[0])


@pytest.mark.parametrize(
    ("prefix", "error", "message"),
    [
        ([0.5, 1.0], TypeError, "prefix must be integer tokens"),
        (1, ValueError, r"prefix must have shape \[..., P\]"),
        (np.zeros([2, 0], np.int32), ValueError, "prefix must hold at least one token"),
    ],
)
def test_malformed_prefix_raises(prefix, error, message):
    with pytest.raises(error, match=message):
        probseq.LSTMAutoregressive(NET, T, prefix=prefix)


# ----------------------------------------------------------------------- params
def _params_with(path, value):
    params = tf.nest.map_structure(tf.convert_to_tensor, NET.params)
    outer, inner = path
    params[outer] = dict(params[outer], **{inner: value})
    return params


def test_params_with_missing_key_raise():
    params = tf.nest.map_structure(tf.convert_to_tensor, NET.params)
    del params["output"]
    with pytest.raises(ValueError, match=r"same structure as network\.params"):
        probseq.LSTMAutoregressive(NET, T, params=params)


def test_params_with_extra_layer_raise():
    params = tf.nest.map_structure(tf.convert_to_tensor, NET.params)
    params["layer_1"] = params["layer_0"]
    with pytest.raises(ValueError, match=r"same structure as network\.params"):
        probseq.LSTMAutoregressive(NET, T, params=params)


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        (("layer_0", "bias"), [4 * H + 1]),
        (("layer_0", "recurrent_kernel"), [H, 4 * H, 1]),
        (("output", "kernel"), [H, V + 1]),
        (("layer_0", "input_kernel"), [4 * H]),
    ],
)
def test_params_with_wrong_core_shape_raise(path, shape):
    params = _params_with(path, tf.zeros(shape))
    with pytest.raises(ValueError, match=rf"params\['{path[0]}'\]\['{path[1]}'\] must have shape"):
        probseq.LSTMAutoregressive(NET, T, params=params)


def test_params_with_inconsistent_batch_dims_raise():
    params = _params_with(("output", "bias"), tf.zeros([2, V]))
    with pytest.raises(ValueError, match="same leading batch shape"):
        probseq.LSTMAutoregressive(NET, T, params=params)


# -------------------------------------------------------------------- num_steps
@pytest.mark.parametrize("num_steps", [0, -3])
def test_num_steps_must_be_positive(num_steps):
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        probseq.LSTMAutoregressive(NET, num_steps)


@pytest.mark.parametrize("num_steps", [4.0, "4", True, None, tf.constant(4)])
def test_num_steps_must_be_a_python_int(num_steps):
    with pytest.raises(TypeError, match="num_steps must be a Python int"):
        probseq.LSTMAutoregressive(NET, num_steps)


def test_numpy_integer_num_steps_is_accepted():
    dist = probseq.LSTMAutoregressive(NET, np.int64(T))
    assert dist.event_shape.as_list() == [T]


# ------------------------------------------------------- validate_args=False
def _string_values(attr_value) -> list[str]:
    return [v.decode() for v in attr_value.tensor.string_val]


def _assert_messages(dist, x) -> list[str]:
    """Messages of every `Assert` op in the traced graph of `dist.log_prob(x)`.

    TensorFlow itself may add shape asserts (e.g. inside `SparseSoftmaxCrossEntropyWithLogits`
    when static shapes are unknown); the distribution's own checks are recognised by their
    messages, which all start with "<distribution name>: ". In graph mode the checks become
    `AssertGuard` conds whose `Assert` lives in a branch function of the graph's library,
    together with its message constants.
    """
    graph_def = tf.function(dist.log_prob).get_concrete_function(x).graph.as_graph_def()
    messages = []
    for nodes in [graph_def.node, *(f.node_def for f in graph_def.library.function)]:
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            if node.op != "Assert":
                continue
            strings = []
            for name in node.input:
                source = by_name.get(name.lstrip("^").split(":")[0])
                if source is not None and source.op == "Const" and "value" in source.attr:
                    strings += _string_values(source.attr["value"])
            messages.append(" ".join(strings) or f"<Assert {node.name}>")
    return messages


def test_no_assertions_without_validate_args():
    x = tf.constant(VALID)
    temperature = tf.Variable(0.7)
    kwargs = {"prefix": [[1, 2], [0, 0]], "temperature": temperature}
    unchecked = probseq.LSTMAutoregressive(NET, T, name="Unchecked", **kwargs)
    assert unchecked._sample_control_dependencies(x) == []
    assert unchecked._parameter_control_dependencies(is_init=True) == []
    assert unchecked._parameter_control_dependencies(is_init=False) == []
    messages = _assert_messages(unchecked, x)
    assert [m for m in messages if "Unchecked: " in m or m.startswith("<Assert")] == []
    np.testing.assert_allclose(
        unchecked.log_prob(x),
        probseq.LSTMAutoregressive(NET, T, validate_args=True, **kwargs).log_prob(x),
        rtol=1e-6,
    )


def test_assertion_detection_finds_the_validate_args_checks():
    """The graph inspection above can fail: with validate_args=True it sees every check."""
    checked = probseq.LSTMAutoregressive(
        NET, T, prefix=[[1, 2]], temperature=tf.Variable(0.7), validate_args=True, name="Checked"
    )
    messages = " | ".join(_assert_messages(checked, tf.constant(VALID, tf.int32)))
    for expected in [
        "Checked: tokens must be >= 0",
        "Checked: tokens must be < vocab_size=3",
        # (the length check is static here: a known wrong length raises ValueError)
        "Checked: temperature must be positive",
    ]:
        assert expected in messages


@pytest.mark.parametrize("validate_args", [False, True])
def test_bool_tokens_are_a_clear_type_error(validate_args):
    dist = probseq.LSTMAutoregressive(NET, T, validate_args=validate_args)
    with pytest.raises(TypeError, match="tokens must be integers"):
        dist.log_prob(tf.constant([[True, False, True, False]]))
