"""`DeepAR`: log_prob and sampling against a step-by-step reference, mean scaling, shapes
and errors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.distributions import DeepAR, heads
from probseq.nn.cells import cell_initial_state
from probseq.nn.dense import dense_step
from probseq.seeds import split

LAGS = (1, 3)
P, H, F = 9, 4, 2


def _model(head=None, seed=1, features=True, cell="lstm"):
    head = head or heads.StudentT()
    net = probseq.nn.RealValuedNetwork(
        len(LAGS) + (F if features else 0) + 1,
        6,
        2,
        output_size=head.num_params,
        cell=cell,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    past = (5.0 + rng.normal(size=[3, P])).astype(np.float32)
    feats = rng.uniform(-0.5, 0.5, size=[3, P + H, F]).astype(np.float32) if features else None
    return net, head, past, feats


def _reference_log_prob(net, head, past, feats, future, context, include_context=False):
    """Step by step with `dense_step`, the formula of the module docstring."""
    series = np.concatenate([past, future], -1)
    scale = np.abs(past[:, -context:]).mean(-1)
    state = cell_initial_state(net.params, [past.shape[0]], cell=net.cell)
    total = np.zeros(past.shape[0])
    for i in range(P - context, P + H):
        parts = [np.stack([series[:, i - lag] / scale for lag in LAGS], -1)]
        if feats is not None:
            parts.append(feats[:, i])
        parts.append(np.log(scale)[:, None])
        raw, state = dense_step(
            net.params, tf.constant(np.concatenate(parts, -1), tf.float32), state, cell=net.cell
        )
        if i >= P or include_context:
            total += head.scaled_distribution(raw, scale).log_prob(series[:, i]).numpy()
    return total


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("context", [None, 2])
def test_log_prob_equals_the_step_by_step_formula(cell, context):
    net, head, past, feats = _model(cell=cell)
    dist = DeepAR(net, past, H, head, lags=LAGS, context_length=context, time_features=feats)
    c = context or P - max(LAGS)
    assert dist.context_length == c
    future = (5.0 + np.random.default_rng(3).normal(size=[3, H])).astype(np.float32)
    want = _reference_log_prob(net, head, past, feats, future, c)
    np.testing.assert_allclose(dist.log_prob(future).numpy(), want, rtol=1e-5, atol=1e-4)
    want_window = _reference_log_prob(net, head, past, feats, future, c, include_context=True)
    np.testing.assert_allclose(
        dist.window_log_prob(future).numpy(), want_window, rtol=1e-5, atol=1e-4
    )


def test_log_prob_takes_sample_dims_and_broadcasts():
    net, head, past, feats = _model()
    dist = DeepAR(net, past, H, head, lags=LAGS, time_features=feats)
    x = dist.sample(5, seed=(2, 3))
    assert x.shape == [5, 3, H]
    lp = dist.log_prob(x)
    assert lp.shape == [5, 3]
    for k in range(5):
        np.testing.assert_allclose(lp[k].numpy(), dist.log_prob(x[k]).numpy(), rtol=1e-5)
    one = dist.log_prob(x[0, 0])  # one future for every series
    assert one.shape == [3]


def test_sampling_uses_the_scaled_head_with_per_step_seeds():
    """The reference sampler: each step's draw from the scaled head with seed
    `split(seed, H)[j]`, the value fed back through the lags."""
    net, head, past, feats = _model(head=heads.Normal())
    dist = DeepAR(net, past, H, head, lags=LAGS, time_features=feats)
    n, seed = 4, tf.constant([7, 8])
    got = dist.sample(n, seed=seed).numpy()  # :: [n, B, H]
    c = dist.context_length
    scale = np.abs(past[:, -c:]).mean(-1)
    series = np.repeat(past[:, None, :], n, axis=1)  # :: [B, n, P]
    lead_scale = np.repeat(scale[:, None], n, axis=1)
    state = cell_initial_state(net.params, [3, n], cell=net.cell)
    seeds = split(seed, H)
    for i in range(P - c, P + H):
        parts = [np.stack([series[..., i - lag] / lead_scale for lag in LAGS], -1)]
        parts.append(np.repeat(feats[:, None, i], n, axis=1))
        parts.append(np.log(lead_scale)[..., None])
        raw, state = dense_step(
            net.params, tf.constant(np.concatenate(parts, -1), tf.float32), state, cell=net.cell
        )
        if i >= P:
            value = head.scaled_distribution(raw, lead_scale).sample(seed=seeds[i - P]).numpy()
            series = np.concatenate([series, value[..., None]], -1)
    np.testing.assert_allclose(got, np.transpose(series[..., P:], [1, 0, 2]), rtol=1e-5, atol=1e-4)


def test_samples_are_reproducible_and_equal_in_a_tf_function():
    net, head, past, feats = _model()
    dist = DeepAR(net, past, H, head, lags=LAGS, time_features=feats)
    a = dist.sample(6, seed=(1, 2)).numpy()
    np.testing.assert_array_equal(a, dist.sample(6, seed=(1, 2)).numpy())
    assert not np.allclose(a, dist.sample(6, seed=(1, 3)).numpy())
    compiled = tf.function(lambda d: d.sample(6, seed=(1, 2)))
    np.testing.assert_allclose(compiled(dist).numpy(), a, rtol=1e-5, atol=1e-5)
    traces = compiled.experimental_get_tracing_count()
    compiled(DeepAR(net, past * 2.0, H, head, lags=LAGS, time_features=feats))
    assert compiled.experimental_get_tracing_count() == traces  # new past, same trace


@pytest.mark.parametrize("head", [heads.Normal(), heads.StudentT()])
def test_mean_scaling_makes_the_model_scale_equivariant(head):
    """Values divided by `nu` in and the head multiplied by `nu` out: with the weights of
    the log-scale input at zero, `log p(c x | c past) = log p(x | past) - H log c` for a
    continuous head, exactly (the log scale is the only input that sees magnitude)."""
    net, head, past, feats = _model(head=head)
    params = tf.nest.map_structure(lambda v: v.numpy(), net.params)
    params["layer_0"]["input_kernel"][-1, :] = 0.0  # the log-scale feature is read last
    future = (5.0 + np.random.default_rng(4).normal(size=[3, H])).astype(np.float32)

    def model(c):
        return DeepAR(net, past * c, H, head, lags=LAGS, time_features=feats, params=params)

    base = model(1.0).log_prob(future).numpy()
    for c in (1e-3, 250.0):
        scaled = model(c)
        np.testing.assert_allclose(
            scaled.log_prob(future * c).numpy(), base - H * np.log(c), rtol=1e-4, atol=1e-3
        )
        want = c * np.abs(past[:, -scaled.context_length :]).mean(-1)
        np.testing.assert_allclose(scaled.scale.numpy(), want, rtol=1e-5)
    assert not np.allclose(  # with its log-scale weights the network does see magnitude
        DeepAR(net, past * 250.0, H, head, lags=LAGS, time_features=feats)
        .log_prob(future * 250.0)
        .numpy(),
        DeepAR(net, past, H, head, lags=LAGS, time_features=feats).log_prob(future).numpy()
        - H * np.log(250.0),
        atol=1e-2,
    )


def test_a_zero_context_has_scale_one():
    net, head, past, _ = _model(features=False)
    past[0] = 0.0
    dist = DeepAR(net, past, H, head, lags=LAGS)
    assert dist.scale.numpy()[0] == 1.0
    assert np.isfinite(dist.log_prob(np.zeros([3, H], np.float32)).numpy()).all()


def test_negative_binomial_head_gives_counts():
    head = heads.NegativeBinomial()
    net, _, past, feats = _model(head=head)
    past = np.round(np.abs(past)).astype(np.float32)
    dist = DeepAR(net, past, H, head, lags=LAGS, time_features=feats)
    x = dist.sample(20, seed=(1, 1)).numpy()
    assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert np.isfinite(dist.log_prob(x).numpy()).all()


def test_batch_shape_from_past_and_unbatched_past():
    net, head, past, _ = _model(features=False)
    assert DeepAR(net, past, H, head, lags=LAGS).batch_shape == [3]
    single = DeepAR(net, past[0], H, head, lags=LAGS)
    assert single.batch_shape == [] and single.event_shape == [H]
    assert single.sample(2, seed=(1, 1)).shape == [2, H]
    np.testing.assert_allclose(
        single.log_prob(np.ones(H, np.float32)).numpy(),
        DeepAR(net, past, H, head, lags=LAGS).log_prob(np.ones(H, np.float32)).numpy()[0],
        rtol=1e-5,
    )


def test_errors_name_what_is_wrong():
    net, head, past, feats = _model()
    with pytest.raises(ValueError, match="context_length=8 needs past values of length >= 8 \\+ 3"):
        DeepAR(net, past, H, head, lags=LAGS, context_length=8, time_features=feats)
    with pytest.raises(ValueError, match="time_features must have shape"):
        DeepAR(net, past, H, head, lags=LAGS, time_features=feats[:, :P])
    with pytest.raises(ValueError, match="network has input_size=5"):
        DeepAR(net, past, H, head, lags=(1, 2, 3), time_features=feats)
    counts = DeepAR(net, np.round(past).astype(np.int32), H, head, lags=LAGS, time_features=feats)
    assert counts.past_values.dtype == tf.float32  # integer history (counts) is read as floats
    with pytest.raises(ValueError, match="lags must be one or more ints >= 1"):
        DeepAR(net, past, H, head, lags=(0, 1), time_features=feats)
    with pytest.raises(ValueError, match="scalar, scalable head"):
        DeepAR(net, past, H, heads.Bernoulli(), lags=LAGS, time_features=feats)
    dist = DeepAR(net, past, H, head, lags=LAGS, time_features=feats)
    with pytest.raises(ValueError, match="prediction_length=4"):
        dist.log_prob(np.zeros([3, H + 1], np.float32))


def test_scaled_distribution_of_the_heads():
    raw = tf.constant([[0.3, -0.2, 0.5]])
    scale = tf.constant([4.0])
    normal = heads.Normal().scaled_distribution(raw[:, :2], scale)
    base = heads.Normal().distribution(raw[:, :2])
    np.testing.assert_allclose(normal.mean(), 4.0 * base.mean(), rtol=1e-6)
    np.testing.assert_allclose(normal.stddev(), 4.0 * base.stddev(), rtol=1e-6)
    mixture = heads.Mixture(1).scaled_distribution(raw, scale)  # tfb.Scale of the base
    np.testing.assert_allclose(
        mixture.log_prob([2.0]),
        heads.Mixture(1).distribution(raw).log_prob([0.5]) - np.log(4.0),
        rtol=1e-5,
    )
    counts = heads.NegativeBinomial().scaled_distribution(raw[:, :2], scale)
    np.testing.assert_allclose(
        counts.mean(), 4.0 * heads.NegativeBinomial().distribution(raw[:, :2]).mean(), rtol=1e-5
    )
    with pytest.raises(ValueError, match="cannot be scaled"):
        heads.Bernoulli().scaled_distribution(raw[:, :1], scale)
