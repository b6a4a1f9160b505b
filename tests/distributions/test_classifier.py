"""`SequenceClassifier` (issue 13): p(label | x_1..x_T) as a TFP distribution, checked
against a step-by-step reference, over every cell, with padding, token inputs, batched
params (posterior draws), compilation and TFP's contracts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.distributions import SequenceClassifier
from probseq.nn import cell_initial_state, dense_step

tfd = tfp.distributions
T, D, H, K = 5, 3, 6, 4


def _net(cell="lstm", layers=1, seed=1, input_size=D):
    net = probseq.RealValuedNetwork(input_size, H, layers, K, cell=cell, seed=(seed, 0))
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (seed, i), stddev=0.3))
    return net


def _inputs(batch=(3,), seed=(2, 2)):
    return tf.random.stateless_normal([*batch, T, D], seed)


def _reference_logits(net, x, lengths=None):
    """Step by step with dense_step, reading x_1..x_L; the logits after step L."""
    rows = x.shape[0]
    state = cell_initial_state(net.params, [rows], cell=net.cell_type)
    outputs = []
    for t in range(x.shape[1]):
        out, state = dense_step(net.params, x[:, t], state, cell=net.cell_type)
        outputs.append(out)
    outputs = tf.stack(outputs, axis=1).numpy()  # :: [N, T, K]
    last = np.full(rows, x.shape[1] - 1) if lengths is None else np.asarray(lengths) - 1
    return outputs[np.arange(rows), last]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_logits_match_the_step_by_step_reference(cell, layers):
    net = _net(cell, layers)
    x = _inputs()
    dist = SequenceClassifier(net, x)
    assert dist.batch_shape == [3] and dist.event_shape == [] and dist.dtype == tf.int32
    np.testing.assert_allclose(dist.logits(), _reference_logits(net, x), rtol=1e-5, atol=1e-6)
    labels = tf.constant([0, 3, 1])
    expected = tf.nn.log_softmax(_reference_logits(net, x))
    picked = np.take_along_axis(expected.numpy(), np.array([[0], [3], [1]]), 1)[:, 0]
    np.testing.assert_allclose(dist.log_prob(labels), picked, rtol=1e-5)
    # normalized over the classes, for every sequence
    all_labels = tf.range(K)[:, None]
    np.testing.assert_allclose(tf.reduce_sum(dist.prob(all_labels), 0), 1.0, rtol=1e-6)


def test_padding_is_never_read():
    net = _net()
    x = _inputs()
    lengths = [T, 2, 1]
    padded = tf.where((tf.range(T) < tf.constant(lengths)[:, None])[..., None], x, np.nan)
    dist = SequenceClassifier(net, padded, lengths=lengths)
    np.testing.assert_allclose(
        dist.logits(), _reference_logits(net, x, lengths), rtol=1e-5, atol=1e-6
    )
    for row, length in enumerate(lengths):
        alone = SequenceClassifier(net, x[row : row + 1, :length]).logits()
        np.testing.assert_allclose(dist.logits()[row], alone[0], rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob([1, 2, 3]))
    grads = tape.gradient(loss, net.trainable_variables)
    assert all(np.isfinite(g).all() for g in grads)  # NaN padding reaches no gradient


def test_token_inputs_are_read_one_hot():
    net = _net(input_size=7)
    tokens = tf.constant([[1, 6, 0, 2, 3], [4, 4, 4, 4, 4]])
    dist = SequenceClassifier(net, tokens)
    np.testing.assert_allclose(
        dist.logits(), _reference_logits(net, tf.one_hot(tokens, 7)), rtol=1e-5, atol=1e-6
    )


def test_posterior_draws_broadcast_against_the_inputs():
    net = _net()
    x = _inputs(batch=(3,))
    draws = probseq.inference.MeanFieldPosterior(net.params, initial_scale=0.2).sample(
        2, seed=(7, 7)
    )
    per_draw = tf.nest.map_structure(lambda p: p[:, None], draws)  # :: [S, 1] + core
    dist = SequenceClassifier(net, x, params=per_draw)
    assert dist.batch_shape == [2, 3]
    for s in range(2):
        one = probseq.RealValuedNetwork(
            D, H, 1, K, params=tf.nest.map_structure(lambda p, s=s: p[s], draws)
        )
        np.testing.assert_allclose(
            dist.logits()[s], _reference_logits(one, x), rtol=1e-5, atol=1e-6
        )
    assert dist.log_prob([0, 1, 2]).shape == [2, 3]
    assert dist.sample(4, seed=(1, 1)).shape == [4, 2, 3]


def test_sampling_follows_the_class_probabilities():
    """Frequencies of 4,000 draws per sequence within 6 binomial sds of p (a bound that
    fails with probability < 1e-8 per cell)."""
    net = _net()
    dist = SequenceClassifier(net, _inputs(batch=(2,)))
    n = 4000
    draws = dist.sample(n, seed=(3, 4)).numpy()  # :: [n, 2]
    probs = dist.probs().numpy()
    for row in range(2):
        freq = np.bincount(draws[:, row], minlength=K) / n
        sd = np.sqrt(probs[row] * (1 - probs[row]) / n)
        assert np.all(np.abs(freq - probs[row]) <= 6 * sd + 1e-12)


def test_compiled_eager_and_xla_agree_and_new_inputs_do_not_retrace():
    net = _net("gru", 2)
    fn = tf.function(lambda d, y: d.log_prob(y))
    xla = tf.function(lambda d, y: d.log_prob(y), jit_compile=True)
    for seed in (1, 2):
        dist = SequenceClassifier(net, _inputs(seed=(seed, 0)), lengths=[5, 3, 2])
        np.testing.assert_allclose(fn(dist, [0, 1, 2]), dist.log_prob([0, 1, 2]), rtol=1e-5)
        np.testing.assert_allclose(xla(dist, [0, 1, 2]), dist.log_prob([0, 1, 2]), rtol=1e-4)
    assert fn.experimental_get_tracing_count() == 1
    assert SequenceClassifier(net, _inputs())[1:].batch_shape == [2]
    assert dist.experimental_default_event_space_bijector() is None


def test_bad_arguments_are_named():
    net = _net()
    with pytest.raises(ValueError, match=r"inputs must have shape \[\.\.\., T, 3\]"):
        SequenceClassifier(net, tf.zeros([2, T, D + 1]))
    with pytest.raises(TypeError, match="got bool"):
        SequenceClassifier(net, tf.zeros([2, T, D], tf.bool))
    with pytest.raises(ValueError, match="output_size = the number of classes"):
        SequenceClassifier(probseq.RealValuedNetwork(D, H, 1, 1, seed=1), _inputs())
