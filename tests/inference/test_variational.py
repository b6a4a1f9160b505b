"""Tests for `fit_variational` and its pieces: surrogate, priors, KL, ELBO, weight sharing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from probseq import LSTMAutoregressive, LSTMNetwork
from probseq.evaluation import evaluate, posterior_predictive
from probseq.inference import (
    Callback,
    GaussianPrior,
    MeanFieldPosterior,
    ScaleMixturePrior,
    elbo_terms,
    fit_map,
    fit_variational,
    joint_distribution,
    kl_weight,
    prior_distribution,
)

tfd = tfp.distributions
VOCAB, HIDDEN, T = 3, 6, 7


@pytest.fixture(scope="module")
def net():
    return LSTMNetwork(VOCAB, HIDDEN, seed=(4, 2))


@pytest.fixture(scope="module")
def batch():
    return tf.random.stateless_uniform([5, T], (3, 1), 0, VOCAB, dtype=tf.int32)


def _allclose_structures(a, b, **kw):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


# ---------------------------------------------------------------------- surrogate
def test_surrogate_starts_at_point_estimate_with_softplus_scales(net):
    q = MeanFieldPosterior(net.params, initial_scale=0.02)
    _allclose_structures(q.mean(), net.params)
    for scale, u in zip(
        tf.nest.flatten(q.stddev()), tf.nest.flatten(dict(q.unconstrained_scale)), strict=True
    ):
        np.testing.assert_allclose(scale, 0.02, rtol=1e-4)
        np.testing.assert_allclose(scale, tf.nn.softplus(u), rtol=1e-4)  # softplus (+ tiny eps)
    assert q.num_weights == sum(int(np.prod(v.shape)) for v in tf.nest.flatten(net.params))
    assert len(q.trainable_variables) == 2 * len(tf.nest.flatten(net.params))


def test_surrogate_is_tfp_builder_distribution(net):
    """`sample`/`log_prob` match TFP's factored surrogate built on the same variables."""
    q = MeanFieldPosterior(net.params, initial_scale=0.1)
    draws = q.sample(3, seed=(1, 2))
    assert all(leaf.shape[0] == 3 for leaf in tf.nest.flatten(draws))
    np.testing.assert_allclose(q.log_prob(draws), q.distribution.log_prob(draws), rtol=1e-5)
    assert {id(v) for v in q.trainable_variables} == {
        id(v) for v in q.distribution.trainable_variables
    }


def test_surrogate_sampling_is_seeded(net):
    q = MeanFieldPosterior(net.params, initial_scale=0.1)
    _allclose_structures(q.sample(2, seed=7), q.sample(2, seed=7), rtol=0, atol=0)
    a, b = q.sample(2, seed=7), q.sample(2, seed=8)
    assert not np.allclose(a["output"]["bias"], b["output"]["bias"])


def test_surrogate_checkpoint_roundtrip(net, tmp_path):
    q = MeanFieldPosterior(net.params, initial_scale=0.1)
    q.loc["output"]["bias"].assign([1.0, 2.0, 3.0])
    q.unconstrained_scale["output"]["kernel"].assign_add(tf.ones_like(q.loc["output"]["kernel"]))
    path = tf.train.Checkpoint(surrogate=q).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert "surrogate/loc/output/bias/.ATTRIBUTES/VARIABLE_VALUE" in names
    restored = MeanFieldPosterior(net.params)
    tf.train.Checkpoint(surrogate=restored).restore(path).assert_consumed()
    _allclose_structures(restored.mean(), q.mean(), rtol=0, atol=0)
    _allclose_structures(restored.stddev(), q.stddev(), rtol=0, atol=0)


def test_initial_loc_from_prior_and_params(net):
    draw = prior_distribution(GaussianPrior(0.5), net.params).sample(seed=(5, 5))
    q = MeanFieldPosterior(net.params, initial_loc=draw)
    _allclose_structures(q.mean(), draw)
    with pytest.raises(ValueError, match="structure"):
        MeanFieldPosterior(net.params, initial_loc={"output": draw["output"]})
    with pytest.raises(ValueError, match="batch dims"):
        MeanFieldPosterior(net.params, initial_loc=tf.nest.map_structure(lambda v: v[None], draw))


# ----------------------------------------------------------------------------- KL
def test_closed_form_kl_matches_numpy_formula(net):
    q = MeanFieldPosterior(net.params, initial_scale=0.3)
    s = 0.7
    expected = 0.0
    for loc, scale in zip(tf.nest.flatten(q.mean()), tf.nest.flatten(q.stddev()), strict=True):
        m, v = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
        expected += np.sum(np.log(s / v) + (v**2 + m**2) / (2 * s**2) - 0.5)
    np.testing.assert_allclose(q.kl_divergence(GaussianPrior(s)), expected, rtol=1e-4)


def test_closed_form_kl_agrees_with_monte_carlo(net):
    """|KL - mean_k [log q - log p]| < 5 standard errors of the Monte Carlo mean."""
    q = MeanFieldPosterior(net.params, initial_scale=0.3)
    prior = GaussianPrior(0.7)
    draws = q.sample(400, seed=(11, 3))
    log_ratio = q.log_prob(draws) - prior_distribution(prior, net.params).log_prob(draws)
    log_ratio = np.asarray(log_ratio, np.float64)
    standard_error = log_ratio.std(ddof=1) / math.sqrt(log_ratio.size)
    analytic = float(q.kl_divergence(prior))
    assert abs(analytic - log_ratio.mean()) < 5 * standard_error
    # The estimator the mixture prior uses is the same mean on the same kind of draws.
    mc = float(q.kl_divergence_monte_carlo(prior, 400, seed=(11, 3)))
    np.testing.assert_allclose(mc, log_ratio.mean(), rtol=1e-5)


def test_mixture_prior_has_no_closed_form_and_log_prob():
    prior = ScaleMixturePrior(0.25, 1.0, math.exp(-6))
    w = np.array([0.0, 0.01, 1.5])
    expected = np.log(
        0.25 * np.exp(-0.5 * w**2) / math.sqrt(2 * math.pi)
        + 0.75 * np.exp(-0.5 * (w / math.exp(-6)) ** 2) / (math.exp(-6) * math.sqrt(2 * math.pi))
    )
    np.testing.assert_allclose(prior.log_prob([tf.constant(w)]), expected.sum(), rtol=1e-4)
    q = MeanFieldPosterior({"output": {"bias": tf.zeros([3])}, "layer_0": {"bias": tf.zeros(4)}})
    with pytest.raises(NotImplementedError, match="closed form"):
        q.kl_divergence(prior)
    with pytest.raises(ValueError, match="mixture_weight"):
        ScaleMixturePrior(1.5)


# --------------------------------------------------------------------------- ELBO
def test_elbo_terms_equal_joint_distribution_and_tfp_vi_loss(net, batch):
    """Our ELBO equals (a) the joint's log_prob_parts and (b) tfp.vi's MC loss, same draws.

    With a scale-mixture prior (Monte Carlo KL): `tfp.vi.monte_carlo_variational_loss`
    with target `log p(w) + (N / B) sum_b log p(x_b | w)` estimates `-ELBO`, so divided by
    `N` it must equal our `-(expected_nll + kl / N)`.
    """
    q = MeanFieldPosterior(net.params, initial_scale=0.05)
    dist = LSTMAutoregressive(net, T)
    prior, num_examples, k = ScaleMixturePrior(), 50, 3
    num_sequences = batch.shape[0]
    seed = tf.constant([2, 9], tf.int32)
    sample_seed, _ = tfp.random.split_seed(seed, 2)
    draws, _ = q.distribution.experimental_sample_and_log_prob([k], seed=sample_seed)
    terms = elbo_terms(q, dist, prior, batch, num_examples=num_examples, draws=draws)

    joint = joint_distribution(dist, prior, num_sequences=num_sequences)
    parts = joint.log_prob_parts({"params": draws, "x": batch})  # :: [K], [K]
    np.testing.assert_allclose(terms.expected_nll, -np.mean(parts["x"]) / num_sequences, rtol=1e-5)
    np.testing.assert_allclose(terms.kl, np.mean(q.log_prob(draws) - parts["params"]), rtol=1e-4)

    def target_log_prob_fn(**params):
        part = joint.log_prob_parts({"params": params, "x": batch})
        return part["params"] + num_examples / num_sequences * part["x"]

    loss = tfp.vi.monte_carlo_variational_loss(
        target_log_prob_fn, q.distribution, sample_size=k, seed=seed
    )
    np.testing.assert_allclose(-terms.elbo_per_example, loss / num_examples, rtol=1e-4)


def test_likelihood_uses_one_weight_draw_per_sequence_for_all_steps(net, batch):
    """Intercept the params passed to the likelihood and recompute with fixed weights.

    The ELBO's likelihood gets exactly K params structures (leading dim K, one per draw);
    each is shared by all sequences of the batch, and the per-draw log-likelihood equals
    a float64 NumPy LSTM that applies that one weight set at every time step.
    """
    q = MeanFieldPosterior(net.params, initial_scale=0.2)
    dist = LSTMAutoregressive(net, T)
    seen = []
    original_copy = dist.copy

    def spy_copy(**kwargs):
        seen.append(kwargs["params"])
        return original_copy(**kwargs)

    dist.copy = spy_copy
    k = 2
    terms = elbo_terms(
        q, dist, GaussianPrior(1.0), batch, num_examples=10, num_draws=k, seed=(8, 8)
    )
    assert len(seen) == 1
    (params,) = seen
    assert all(leaf.shape[0] == k for leaf in tf.nest.flatten(params))
    _allclose_structures(params, q.sample(k, seed=(8, 8)), rtol=0, atol=0)
    per_draw = [
        sum(_numpy_lstm_log_prob(_draw(params, i), row) for row in batch.numpy()) for i in range(k)
    ]
    expected_nll = -np.mean(per_draw) / batch.shape[0]
    np.testing.assert_allclose(terms.expected_nll, expected_nll, rtol=1e-4)

    seen.clear()
    elbo_terms(q, dist, GaussianPrior(1.0), batch, num_examples=10, draw_per_sequence=True, seed=1)
    (params,) = seen
    assert all(leaf.shape[0] == batch.shape[0] for leaf in tf.nest.flatten(params))


def _draw(params, index):
    return tf.nest.map_structure(lambda leaf: np.asarray(leaf[index], np.float64), params)


def _numpy_lstm_log_prob(params, sequence) -> float:
    """One-layer LSTM with fixed weights at every step (cell equations of DESIGN.md)."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    layer, out = params["layer_0"], params["output"]
    c = h = np.zeros(layer["bias"].shape[0] // 4)
    total, token = 0.0, None
    for target in sequence:
        z = h @ layer["recurrent_kernel"] + layer["bias"]
        if token is not None:
            z = z + layer["input_kernel"][token]
        i, f, o, u = np.split(z, 4)
        c = sig(f + 1.0) * c + sig(i) * np.tanh(u)
        h = sig(o) * np.tanh(c)
        logits = h @ out["kernel"] + out["bias"]
        total += logits[target] - np.log(np.sum(np.exp(logits)))
        token = target
    return total


def test_kl_weight_schedule():
    assert kl_weight(1, 0) == 1.0
    assert [kl_weight(s, 4) for s in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0]


# ------------------------------------------------------------------------ fitting
class _Recorder(Callback):
    def __init__(self, stop_at=None):
        self.infos, self.evaluations, self.stop_at = [], [], stop_at

    def on_step(self, info):
        self.infos.append(info)
        return self.stop_at is not None and info.step >= self.stop_at

    def on_evaluation(self, step, metrics):
        self.evaluations.append((step, metrics))


@pytest.mark.slow
def test_fit_variational_is_seeded_reports_and_stops(net, batch):
    dist = LSTMAutoregressive(net, T)
    data = tf.data.Dataset.from_tensors(batch).repeat()
    kwargs = dict(num_examples=40, num_steps=4, learning_rate=1e-2, clip_norm=1.0, seed=5)
    kwargs.update(kl_annealing_steps=2, num_draws_per_step=2)
    recorder = _Recorder()
    first = fit_variational(
        dist, data, callbacks=[recorder], eval_fn=lambda: {"x": 1.0}, eval_every=2, **kwargs
    )
    second = fit_variational(dist, data, **kwargs)
    np.testing.assert_array_equal(first.trace["loss"], second.trace["loss"])
    _allclose_structures(first.surrogate.mean(), second.surrogate.mean(), rtol=0, atol=0)

    trace = first.trace
    np.testing.assert_array_equal(trace["step"], [1, 2, 3, 4])
    np.testing.assert_allclose(trace["kl_weight"], [0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        trace["loss"], trace["nll"] + trace["kl_weight"] * trace["kl"], rtol=1e-5
    )
    np.testing.assert_allclose(trace["elbo"], -(trace["nll"] + trace["kl"]), rtol=1e-6)
    assert trace["nll"].std() > 0  # fresh draws every step
    assert [info.step for info in recorder.infos] == [1, 2, 3, 4]
    assert set(recorder.infos[0].extra) == {"kl", "elbo", "kl_weight"}
    assert [step for step, _ in recorder.evaluations] == [2, 4]
    assert first.kl_method == "closed_form" and first.final_step == 4
    # the network's own variables (the point estimate) are untouched
    _allclose_structures(net.params, LSTMNetwork(VOCAB, HIDDEN, seed=(4, 2)).params)

    stopper = _Recorder(stop_at=11)
    kwargs.update(num_draws_per_step=1, seed=6)
    stopped = fit_variational(
        dist, data, callbacks=[stopper], initial_step=10, prior=ScaleMixturePrior(), **kwargs
    )
    assert stopped.stopped_early and stopped.steps_run == 1 and stopped.final_step == 11
    assert stopped.kl_method == "monte_carlo"
    assert stopped.trace["loss"][0] != first.trace["loss"][0]


def test_elbo_draws_depend_on_seed_only(net, batch):
    q = MeanFieldPosterior(net.params, initial_scale=0.3)
    dist = LSTMAutoregressive(net, T)
    kw = dict(num_examples=10, num_draws=2)
    a = elbo_terms(q, dist, GaussianPrior(), batch, seed=3, **kw).expected_nll
    b = elbo_terms(q, dist, GaussianPrior(), batch, seed=3, **kw).expected_nll
    c = elbo_terms(q, dist, GaussianPrior(), batch, seed=4, **kw).expected_nll
    assert float(a) == float(b) != float(c)


def test_fit_variational_rejects_bad_settings(net, batch):
    dist = LSTMAutoregressive(net, T)
    data = [batch]
    with pytest.raises(ValueError, match="num_draws_per_step"):
        fit_variational(dist, data, num_examples=1, num_steps=1, num_draws_per_step=0)
    with pytest.raises(ValueError, match="draw_per_sequence"):
        fit_variational(
            dist, data, num_examples=1, num_steps=1, num_draws_per_step=2, draw_per_sequence=True
        )
    with pytest.raises(TypeError, match="prior"):
        fit_variational(dist, data, num_examples=1, num_steps=1, prior="normal")


# -------------------------------------------------------------- statistical test
# A 3-state Markov chain started from its stationary distribution: the exact entropy of
# a length-T sequence is H(pi) + (T - 1) * sum_i pi_i H(P_i).
_P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])


def _stationary(p):
    values, vectors = np.linalg.eig(p.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return pi / pi.sum()


def _markov_sample(n, num_steps, rng):
    pi, cumulative = _stationary(_P), np.cumsum(_P, axis=1)
    x = np.empty((n, num_steps), np.int32)
    x[:, 0] = rng.choice(3, size=n, p=pi)
    u = rng.random((n, num_steps))
    for t in range(1, num_steps):
        x[:, t] = (u[:, t, None] > cumulative[x[:, t - 1]]).sum(axis=1)
    return x


def _markov_log_prob(x):
    pi = _stationary(_P)
    return np.log(pi[x[:, 0]]) + np.log(_P[x[:, :-1], x[:, 1:]]).sum(axis=1)


@pytest.mark.slow
def test_map_and_variational_approach_the_true_entropy():
    """Held-out NLL per sequence of MAP and of the VI predictive ~ the exact entropy.

    Tolerance. The held-out mean of `nll_model(x) - nll_true(x)` estimates the excess
    `KL(p_true || p_model) >= 0` per sequence; its Monte Carlo error is the paired
    standard error over M held-out sequences (4 sigma allowed). The expected excess of a
    fitted model with `d` effective parameters on `N` training sequences is about
    `d / (2N)` nats (the classical asymptotic excess risk of maximum likelihood; the
    Bayesian predictive has the same order); we allow `d` = all LSTM weights (411), an
    upper bound on the effective dimension. With N = 4000: 0.051 nats on an entropy of
    7.8 nats per sequence, versus 11.0 for a uniform model and 10.0 for the best
    order-0 (unigram) model: a model that did not learn the transitions fails.
    """
    rng = np.random.default_rng(0)
    num_steps, num_train, num_test = 10, 4000, 4000
    pi = _stationary(_P)
    entropy = -(pi * np.log(pi)).sum() + (num_steps - 1) * -(pi[:, None] * _P * np.log(_P)).sum()
    train, test = (
        _markov_sample(num_train, num_steps, rng),
        _markov_sample(num_test, num_steps, rng),
    )
    true_nll = -_markov_log_prob(test)
    net = LSTMNetwork(3, 8, seed=(0, 1))
    dist = LSTMAutoregressive(net, num_steps)
    data = tf.data.Dataset.from_tensor_slices(train).repeat().shuffle(4000, seed=1).batch(64)
    num_weights = sum(int(np.prod(v.shape)) for v in tf.nest.flatten(net.params))
    allowance = num_weights / (2 * num_train)

    def check(window_log_probs, label):
        excess = -np.asarray(window_log_probs) - true_nll
        standard_error = excess.std(ddof=1) / math.sqrt(num_test)
        assert -4 * standard_error < excess.mean() < allowance + 4 * standard_error, label
        assert abs(
            -np.mean(window_log_probs) - entropy
        ) < allowance + 4 * true_nll.std() / math.sqrt(num_test)

    fit_map(dist, data, num_examples=num_train, num_steps=600, learning_rate=2e-2)
    ids = test.reshape(-1)
    check(evaluate(net, ids, num_steps=num_steps, jit_compile=False).window_log_prob_nats, "MAP")

    # Variational posterior initialized at the MAP fit (pass a point estimate).
    result = fit_variational(
        dist,
        data,
        num_examples=num_train,
        num_steps=300,
        learning_rate=1e-2,
        posterior_init_scale=1e-2,
        seed=0,
    )
    assert result.trace["kl"][-1] < result.trace["kl"][0]  # the posterior moved
    evaluation = posterior_predictive(
        result.surrogate, ids, num_draws=16, seed=0, num_steps=num_steps, jit_compile=False
    )
    check(evaluation.predictive.window_log_prob_nats, "variational predictive")
