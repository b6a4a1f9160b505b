"""Shape contract of `LSTMAutoregressive`: batch/event shapes, sample and log_prob shapes."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from lstm_reference import perturbed_params, randomized_network

import probseq

tfd = tfp.distributions

V, H, T = 3, 4, 4

NET = randomized_network(V, H, seed=1, dtype=tf.float32)
PREFIX3 = [[0, 1], [1, 2], [2, 2]]  # batch [3], P = 2

# name -> (constructor kwargs, expected batch shape). Built lazily so params get made once.
BATCH_CONFIGS = {
    "none": (lambda: {}, []),
    "params_2": (lambda: {"params": perturbed_params(NET, [2], seed=1)}, [2]),
    "prefix_1d": (lambda: {"prefix": [1, 2]}, []),
    "prefix_3": (lambda: {"prefix": PREFIX3}, [3]),
    "temperature_scalar": (lambda: {"temperature": 0.7}, []),
    "temperature_variable_2": (lambda: {"temperature": tf.Variable([0.5, 2.0])}, [2]),
    "temperature_21_prefix_3": (
        lambda: {"temperature": [[0.5], [2.0]], "prefix": PREFIX3},
        [2, 3],
    ),
    "params_21_prefix_3": (
        lambda: {"params": perturbed_params(NET, [2, 1], seed=2), "prefix": PREFIX3},
        [2, 3],
    ),
    "params_2_temperature_21": (
        lambda: {"params": perturbed_params(NET, [2], seed=3), "temperature": [[0.5], [2.0]]},
        [2, 2],
    ),
    "params_2_prefix_3x1_temperature_2": (
        lambda: {
            "params": perturbed_params(NET, [2], seed=4),
            "prefix": [[[0, 1, 2]], [[1, 1, 1]], [[2, 0, 0]]],
            "temperature": [0.5, 1.5],
        },
        [3, 2],
    ),
}
SAMPLE_SHAPES = [(), 5, [2, 3]]


def _make(config: str, num_steps: int = T) -> tuple[probseq.LSTMAutoregressive, list[int]]:
    kwargs, batch = BATCH_CONFIGS[config]
    return probseq.LSTMAutoregressive(NET, num_steps, **kwargs()), batch


def test_public_api_and_class_contract():
    assert probseq.LSTMAutoregressive is probseq.distributions.LSTMAutoregressive
    assert probseq.LSTMNetwork is probseq.nn.LSTMNetwork
    dist = probseq.LSTMAutoregressive(NET, T)
    assert isinstance(dist, tfd.Distribution)
    assert not isinstance(dist, tfd.Autoregressive)
    assert not issubclass(probseq.LSTMAutoregressive, tfd.Autoregressive)
    assert dist.reparameterization_type == tfd.NOT_REPARAMETERIZED
    assert dist.dtype.is_integer
    assert dist.num_steps == T
    assert dist.vocab_size == V
    assert dist.name == "LSTMAutoregressive"
    assert dist.validate_args is False
    assert dist.allow_nan_stats is True
    named = probseq.LSTMAutoregressive(NET, T, validate_args=True, allow_nan_stats=False, name="x")
    assert named.name == "x"
    assert named.validate_args is True
    assert named.allow_nan_stats is False


def test_parameters_record_the_constructor_arguments():
    temperature = tf.Variable(0.5)
    dist = probseq.LSTMAutoregressive(NET, T, prefix=[1], temperature=temperature)
    params = dist.parameters
    assert params["network"] is NET
    assert params["num_steps"] == T
    assert params["temperature"] is temperature
    assert params["prefix"] == [1]


@pytest.mark.parametrize("config", list(BATCH_CONFIGS))
def test_batch_and_event_shapes(config):
    dist, batch = _make(config)
    assert dist.batch_shape.as_list() == batch
    np.testing.assert_array_equal(dist.batch_shape_tensor(), np.array(batch, np.int32))
    assert dist.event_shape.as_list() == [T]
    np.testing.assert_array_equal(dist.event_shape_tensor(), [T])


@pytest.mark.parametrize("sample_shape", SAMPLE_SHAPES, ids=str)
@pytest.mark.parametrize("config", list(BATCH_CONFIGS))
def test_sample_and_log_prob_shapes(config, sample_shape):
    dist, batch = _make(config)
    expected = [int(n) for n in np.reshape(sample_shape, [-1])]
    x = dist.sample(sample_shape, seed=(4, 2))
    assert x.dtype == dist.dtype
    assert x.shape.as_list() == expected + batch + [T]
    assert np.all((x.numpy() >= 0) & (x.numpy() < V))
    log_prob = dist.log_prob(x)
    assert log_prob.dtype == NET.dtype
    assert log_prob.shape.as_list() == expected + batch
    assert np.all(np.isfinite(log_prob)) and np.all(log_prob.numpy() < 0.0)


@pytest.mark.parametrize("config", list(BATCH_CONFIGS))
def test_log_prob_broadcasts_values_with_fewer_leading_dims(config):
    dist, batch = _make(config)
    one = tf.constant([2, 0, 1, 1], tf.int32)  # a single event: shape [T]
    log_prob = dist.log_prob(one)
    assert log_prob.shape.as_list() == batch
    # Broadcasting must mean the same as passing the explicitly broadcast value.
    explicit = dist.log_prob(tf.broadcast_to(one, batch + [T]))
    np.testing.assert_allclose(log_prob, explicit, rtol=0, atol=1e-6)


@pytest.mark.parametrize("config", ["prefix_3", "temperature_21_prefix_3", "params_21_prefix_3"])
def test_log_prob_broadcasts_unit_dims_of_the_value(config):
    dist, batch = _make(config)
    x = dist.sample(4, seed=(7, 7))[(slice(None),) + (0,) * len(batch)]  # :: [4, T]
    x = tf.reshape(x, [4] + [1] * len(batch) + [T])  # sample dims [4], unit batch dims
    log_prob = dist.log_prob(x)
    assert log_prob.shape.as_list() == [4] + batch
    explicit = dist.log_prob(tf.broadcast_to(x, [4] + batch + [T]))
    np.testing.assert_allclose(log_prob, explicit, rtol=0, atol=1e-6)


def test_batch_members_are_not_collapsed():
    """Different batch members (prefix / temperature / params) give different log_probs."""
    x = tf.constant([2, 0, 1, 1], tf.int32)
    for config in ["params_2", "prefix_3", "temperature_variable_2", "temperature_21_prefix_3"]:
        dist, _ = _make(config)
        values = dist.log_prob(x).numpy().ravel()
        assert len(np.unique(np.round(values, 5))) == values.size, config


def test_num_steps_one():
    dist = probseq.LSTMAutoregressive(NET, 1, prefix=PREFIX3)
    assert dist.event_shape.as_list() == [1]
    x = dist.sample(6, seed=(1, 1))
    assert x.shape.as_list() == [6, 3, 1]
    assert dist.log_prob(x).shape.as_list() == [6, 3]


def test_sample_shape_tensor_argument():
    dist, batch = _make("prefix_3")
    x = dist.sample(tf.constant([2, 5]), seed=tf.constant([3, 4]))
    assert x.shape.as_list() == [2, 5] + batch + [T]


def test_shapes_inside_tf_function():
    dist, batch = _make("temperature_21_prefix_3")

    @tf.function
    def run(seed):
        x = dist.sample([2, 3], seed=seed)
        return x, dist.log_prob(x), dist.batch_shape_tensor()

    x, log_prob, batch_tensor = run(tf.constant([1, 2]))
    assert x.shape.as_list() == [2, 3] + batch + [T]
    assert log_prob.shape.as_list() == [2, 3] + batch
    np.testing.assert_array_equal(batch_tensor, batch)


def test_unknown_static_shapes_inside_tf_function():
    """Batch and sample dims only known at run time (e.g. a data pipeline's batch)."""
    prefix = tf.constant(PREFIX3)
    x = tf.constant([[[0, 1, 2, 1]], [[2, 2, 0, 0]]])  # :: [2, 1, T] against batch [3]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.int32),
            tf.TensorSpec([None, None, T], tf.int32),
            tf.TensorSpec([], tf.int32),
        ]
    )
    def run(prefix, x, n):
        dist = probseq.LSTMAutoregressive(NET, T, prefix=prefix, temperature=0.8)
        return dist.log_prob(x), dist.sample(n, seed=(3, 3)), dist.batch_shape_tensor()

    log_prob, samples, batch_tensor = run(prefix, x, tf.constant(5))
    eager = probseq.LSTMAutoregressive(NET, T, prefix=prefix, temperature=0.8)
    np.testing.assert_allclose(log_prob, eager.log_prob(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(samples, eager.sample(5, seed=(3, 3)))
    np.testing.assert_array_equal(batch_tensor, [3])
