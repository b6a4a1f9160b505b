"""`evaluate` rejects bad ids, settings and models with clear errors."""

import numpy as np
import pytest
import tensorflow as tf

from probseq import LSTMAutoregressive
from probseq.evaluation import evaluate


@pytest.mark.parametrize(
    "ids, dtype_name",
    [(np.zeros(16, np.float32), "float32"), (np.zeros(16, bool), "bool"), ([0.5] * 16, "float64")],
)
def test_non_integer_ids_are_a_type_error(net, ids, dtype_name):
    with pytest.raises(TypeError, match=dtype_name):
        evaluate(net, ids, num_steps=4)


def test_ids_must_be_one_dimensional(net):
    with pytest.raises(ValueError, match=r"1-D, got shape \[2, 8\]"):
        evaluate(net, np.zeros((2, 8), np.int32), num_steps=4)
    with pytest.raises(ValueError, match="1-D"):
        evaluate(net, tf.constant(3), num_steps=1)


@pytest.mark.parametrize("mode", ["windows", "stream"])
@pytest.mark.parametrize("length", [0, 7])
def test_ids_shorter_than_a_window(net, mode, length):
    with pytest.raises(ValueError, match=rf"length {length}.*num_steps=8"):
        evaluate(net, np.zeros(length, np.int64), num_steps=8, mode=mode)


def test_out_of_range_ids_name_values_and_first_position(net):
    ids = np.array([0, 1, 2, 7, 3, 5, 7, 4], np.int64)
    with pytest.raises(ValueError, match=r"\[0, 5\).*values \{5, 7\}, first at position 3"):
        evaluate(net, ids, num_steps=4)
    with pytest.raises(ValueError, match=r"values \{-1\}, first at position 1"):
        evaluate(net, [0, -1, 0, 0], num_steps=4)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(mode="sliding"), ValueError, "mode must be one of"),
        (dict(num_steps=0), ValueError, "num_steps must be a positive integer"),
        (dict(num_steps=2.0), TypeError, "num_steps"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(mode="stream", chunk_size=-1), ValueError, "chunk_size"),
        (dict(num_streams=2), ValueError, "mode='stream' only"),
        (dict(mode="stream", num_streams=100), ValueError, "exceeds the text length"),
        (dict(temperature=0.0), ValueError, "temperature must be positive"),
        (dict(temperature=[1.0, 2.0]), ValueError, "temperature must be a scalar"),
    ],
)
def test_bad_settings(net, ids, kwargs, error, pattern):
    kwargs = {"num_steps": 4, **kwargs}
    with pytest.raises(error, match=pattern):
        evaluate(net, ids, **kwargs)


def test_bad_models(net, ids, draws):
    with pytest.raises(TypeError, match="LSTMNetwork, an LSTMAutoregressive or a params dict"):
        evaluate("net", ids)
    with pytest.raises(ValueError, match="prefix"):
        evaluate(LSTMAutoregressive(net, 4, prefix=[1, 2]), ids)
    with pytest.raises(ValueError, match="both"):
        evaluate(LSTMAutoregressive(net, 4, temperature=0.5), ids, temperature=2.0)
    with pytest.raises(ValueError, match="layer_0"):
        evaluate({"output": net.params["output"]}, ids)
    nested = tf.nest.map_structure(lambda leaf: leaf[None], draws)  # leading [1, 3]
    with pytest.raises(ValueError, match="at most one leading dim"):
        evaluate(net, ids, params=nested)
    wider = tf.nest.map_structure(lambda leaf: tf.concat([leaf, leaf], -1), net.params)
    with pytest.raises(ValueError, match="core shape"):
        evaluate(net, ids, params=wider)
