"""`LSTMAutoregressive` inside other TFP objects: Sample, Independent, Mixture, joints."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from lstm_reference import all_sequences, np_log_prob, randomized_network, to_numpy

import probseq

tfd = tfp.distributions

V, H, T = 3, 4, 4
ALL = all_sequences(V, T)
NET = randomized_network(V, H, seed=80)  # float64: exact comparisons below
NET_B = randomized_network(V, H, num_layers=2, seed=81)
PRIOR_LOC, PRIOR_SCALE = 0.0, 0.4


def test_sample_wrapper():
    dist = probseq.LSTMAutoregressive(NET, T, prefix=[[0], [2]])  # batch [2]
    wrapped = tfd.Sample(dist, sample_shape=3)
    assert wrapped.batch_shape.as_list() == [2]
    assert wrapped.event_shape.as_list() == [3, T]
    x = wrapped.sample(5, seed=(1, 2))
    assert x.shape.as_list() == [5, 2, 3, T]
    expected = tf.reduce_sum(dist.log_prob(tf.transpose(x, [0, 2, 1, 3])), axis=1)
    np.testing.assert_allclose(wrapped.log_prob(x), expected, atol=1e-12)
    assert wrapped.log_prob(x).shape.as_list() == [5, 2]


def test_independent_wrapper():
    dist = probseq.LSTMAutoregressive(NET, T, temperature=[0.5, 1.0, 2.0])  # batch [3]
    joint = tfd.Independent(dist, reinterpreted_batch_ndims=1)
    assert joint.batch_shape.as_list() == []
    assert joint.event_shape.as_list() == [3, T]
    x = joint.sample(4, seed=(3, 4))
    assert x.shape.as_list() == [4, 3, T]
    np.testing.assert_allclose(
        joint.log_prob(x), tf.reduce_sum(dist.log_prob(x), axis=-1), atol=1e-12
    )


def _mixture():
    weights = tf.constant([0.3, 0.7], tf.float64)
    components = [
        probseq.LSTMAutoregressive(NET, T, temperature=0.6),
        probseq.LSTMAutoregressive(NET_B, T, prefix=[2, 1]),
    ]
    return tfd.Mixture(cat=tfd.Categorical(probs=weights), components=components), weights


def test_mixture_log_prob_and_sample():
    mixture, weights = _mixture()
    assert mixture.event_shape.as_list() == [T]
    x = tf.constant(ALL)
    expected = tf.reduce_logsumexp(
        tf.stack([c.log_prob(x) for c in mixture.components], -1) + tf.math.log(weights), -1
    )
    np.testing.assert_allclose(mixture.log_prob(x), expected, atol=1e-12)
    samples = mixture.sample([2, 5], seed=(5, 6))
    assert samples.shape.as_list() == [2, 5, T]
    assert samples.dtype.is_integer
    assert np.all((samples.numpy() >= 0) & (samples.numpy() < V))
    np.testing.assert_array_equal(samples, mixture.sample([2, 5], seed=(5, 6)))


def _latent_temperature_coroutine():
    temperature = yield tfd.LogNormal(
        tf.constant(PRIOR_LOC, tf.float64), PRIOR_SCALE, name="temperature"
    )
    yield probseq.LSTMAutoregressive(NET, T, prefix=[1], temperature=temperature, name="seq")


def _by_hand(temperature: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Prior log-density of the temperature + numpy-reference conditional log_prob."""
    prior = tfd.LogNormal(tf.constant(PRIOR_LOC, tf.float64), PRIOR_SCALE).log_prob(temperature)
    conditional = np_log_prob(to_numpy(NET.params), seq, prefix=[1], temperature=temperature)
    return prior.numpy() + conditional


def test_joint_distribution_coroutine_autobatched():
    joint = tfd.JointDistributionCoroutineAutoBatched(_latent_temperature_coroutine)
    draw = joint.sample(seed=(7, 8))
    assert draw.temperature.shape.as_list() == []
    assert draw.seq.shape.as_list() == [T]
    assert draw.seq.dtype.is_integer
    log_prob = joint.log_prob(draw)
    assert log_prob.shape.as_list() == []
    np.testing.assert_allclose(
        log_prob, _by_hand(draw.temperature.numpy(), draw.seq.numpy()), atol=1e-10
    )
    np.testing.assert_array_equal(joint.sample(seed=(7, 8)).seq, draw.seq)


@pytest.mark.slow  # autobatching vectorizes the sampler and log_prob with pfor (~6 s)
def test_joint_distribution_coroutine_autobatched_with_sample_shape():
    joint = tfd.JointDistributionCoroutineAutoBatched(_latent_temperature_coroutine)
    # An int (stateful) seed: with a stateless seed TFP's autovectorized sampling falls back
    # to a slow explicit loop (it warns so). Stateless reproducibility is tested above.
    draw = joint.sample(3, seed=7)
    assert draw.temperature.shape.as_list() == [3]
    assert draw.seq.shape.as_list() == [3, T]
    log_prob = joint.log_prob(draw)
    assert log_prob.shape.as_list() == [3]
    np.testing.assert_allclose(
        log_prob, _by_hand(draw.temperature.numpy(), draw.seq.numpy()), atol=1e-10
    )


def test_joint_distribution_named():
    joint = tfd.JointDistributionNamed(
        {
            "temperature": tfd.LogNormal(tf.constant(PRIOR_LOC, tf.float64), PRIOR_SCALE),
            "seq": lambda temperature: probseq.LSTMAutoregressive(
                NET, T, prefix=[1], temperature=temperature
            ),
        }
    )
    draw = joint.sample(6, seed=(9, 10))
    assert draw["temperature"].shape.as_list() == [6]
    assert draw["seq"].shape.as_list() == [6, T]
    log_prob = joint.log_prob(draw)
    assert log_prob.shape.as_list() == [6]
    np.testing.assert_allclose(
        log_prob, _by_hand(draw["temperature"].numpy(), draw["seq"].numpy()), atol=1e-10
    )
    # The conditional really depends on the latent temperature.
    changed = dict(draw, temperature=draw["temperature"] * 2.0)
    assert np.all(np.abs(joint.log_prob(changed) - log_prob) > 1e-6)


def test_joint_distribution_gradients():
    """Gradient of a joint log_prob w.r.t. an unconstrained latent temperature and weights."""
    joint = tfd.JointDistributionCoroutineAutoBatched(_latent_temperature_coroutine)
    seq = tf.constant([0, 2, 1, 1])
    raw = tf.Variable(tf.constant(0.1, tf.float64))
    variables = [raw, *NET.trainable_variables]
    with tf.GradientTape() as tape:
        total = joint.log_prob(tf.exp(raw), seq)
    grads = tape.gradient(total, variables)
    np.testing.assert_allclose(total, _by_hand(np.exp(0.1), seq.numpy()), atol=1e-10)
    for variable, grad in zip(variables, grads, strict=True):
        assert grad is not None, variable.name
        grad = tf.convert_to_tensor(grad).numpy()
        assert np.all(np.isfinite(grad)) and np.any(grad != 0.0), variable.name


def test_joint_distribution_in_tf_function():
    joint = tfd.JointDistributionCoroutineAutoBatched(_latent_temperature_coroutine)

    @tf.function
    def sample_and_log_prob(seed):
        draw = joint.sample(seed=seed)
        return draw, joint.log_prob(draw)

    draw, log_prob = sample_and_log_prob(tf.constant([7, 8]))
    eager = joint.sample(seed=(7, 8))
    np.testing.assert_array_equal(draw.seq, eager.seq)
    np.testing.assert_allclose(draw.temperature, eager.temperature, rtol=1e-12)
    np.testing.assert_allclose(
        log_prob, _by_hand(draw.temperature.numpy(), draw.seq.numpy()), atol=1e-10
    )
