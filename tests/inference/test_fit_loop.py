"""The one fitting loop (issue 17): fit_map and fit_variational take a model that is not a
distribution (with log_likelihood_fn), hand per-step seeds to a likelihood that asks
for them, and refuse what they cannot fit with a message naming it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.distributions import EncoderDecoder
from probseq.inference import fit_map, fit_variational
from probseq.nn import Seq2SeqNetwork

tfd = tfp.distributions
V, S, E = 6, 3, 2


def _batches(seed=0, n=4, b=8):
    rng = np.random.default_rng(seed)
    source = rng.integers(0, V, (n, b, S)).astype(np.int32)
    return [(s, s[:, :E]) for s in source]


def _conditional(network):
    return lambda batch: EncoderDecoder(network, batch[0], E).log_prob(batch[1])


def test_fit_map_on_a_network_equals_the_template_workaround():
    a, b = Seq2SeqNetwork(V, V, 8, seed=1), Seq2SeqNetwork(V, V, 8, seed=1)
    data = _batches()
    new = fit_map(a, data, num_examples=32, num_steps=4, log_likelihood_fn=_conditional(a))
    template = EncoderDecoder(b, data[0][0], E)  # the old way: any distribution on b
    old = fit_map(template, data, num_examples=32, num_steps=4, log_likelihood_fn=_conditional(b))
    np.testing.assert_allclose(new.trace["loss"], old.trace["loss"], rtol=1e-6)
    for x, y in zip(a.trainable_variables, b.trainable_variables, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_fit_variational_on_a_network_with_a_conditional_likelihood():
    network = Seq2SeqNetwork(V, V, 8, seed=1)

    def log_likelihood(batch, params):  # params leaves [K] + core -> [K, B]
        per_draw = tf.nest.map_structure(lambda p: p[:, None], params)
        return EncoderDecoder(network, batch[0], E, params=per_draw).log_prob(batch[1])

    result = fit_variational(
        network, _batches(), num_examples=32, num_steps=3, num_draws_per_step=2,
        log_likelihood_fn=log_likelihood, seed=3,
    )  # fmt: skip
    assert result.steps_run == 3 and np.isfinite(result.trace["elbo"]).all()
    assert result.surrogate.cell.name == network.cell
    assert tf.nest.map_structure(lambda v: v.shape, dict(result.surrogate.loc)) == (
        tf.nest.map_structure(lambda v: v.shape, dict(network.params))
    )


def test_a_likelihood_with_a_seed_keyword_gets_each_steps_seed():
    net = probseq.LSTMNetwork(V, 8, seed=1)
    seen = []

    def log_likelihood(batch, seed):
        seen.append(seed)
        noise = tf.random.stateless_uniform([], seed)  # e.g. a dropout mask
        tf.py_function(lambda s: seen.append(s.numpy().tolist()), [seed], [])
        return probseq.LSTMAutoregressive(net, 4).log_prob(batch) + 0.0 * noise

    data = [np.full((2, 4), i % V, np.int32) for i in range(3)]
    fit_map(net, data, num_examples=6, num_steps=3, seed=11, log_likelihood_fn=log_likelihood)
    per_step = [s for s in seen if isinstance(s, list)]
    expected = [
        tf.random.experimental.stateless_fold_in(probseq.seeds.stateless_seed(11), step)
        for step in (1, 2, 3)
    ]
    assert per_step == [e.numpy().tolist() for e in expected]


def test_models_that_cannot_be_fitted_are_named():
    network = Seq2SeqNetwork(V, V, 8, seed=1)
    with pytest.raises(TypeError, match="Seq2SeqNetwork, which has no log_prob"):
        fit_map(network, _batches(), num_examples=32, num_steps=1)
    with pytest.raises(TypeError, match="Seq2SeqNetwork, which has no log_prob"):
        fit_variational(network, _batches(), num_examples=32, num_steps=1)
    with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
        fit_map(network, _batches(), num_examples=32, num_steps=-1)
    with pytest.raises(TypeError, match="over one scalar weight"):
        fit_map(
            network, _batches(), num_examples=32, num_steps=1,
            prior=tfd.Normal([0.0, 0.0], 1.0), log_likelihood_fn=_conditional(network),
        )  # fmt: skip


@pytest.mark.parametrize("prior", [tfd.Laplace(0.0, 0.5), tfd.StudentT(3.0, 0.0, 1.0)])
def test_any_tfp_scalar_distribution_is_a_prior(prior):
    net = probseq.LSTMNetwork(V, 8, seed=1)
    dist = probseq.LSTMAutoregressive(net, 4)
    batch = np.array([[1, 2, 3, 4], [0, 1, 2, 3]], np.int32)
    weights = [tf.convert_to_tensor(v) for v in net.trainable_variables]
    expected_nll = -float(tf.reduce_mean(dist.log_prob(batch)))
    log_prior = sum(float(tf.reduce_sum(prior.log_prob(w))) for w in weights)
    result = fit_map(dist, [batch], num_examples=10, num_steps=1, prior=prior)
    np.testing.assert_allclose(result.trace["loss"][0], expected_nll - log_prior / 10, rtol=1e-5)
    vi = fit_variational(dist, [batch], num_examples=10, num_steps=1, prior=prior, seed=1)
    assert vi.kl_method == "monte_carlo"  # TFP registers no KL(Normal || Laplace / StudentT)
    assert np.isfinite(vi.trace["kl"]).all()


def test_a_tfp_normal_prior_has_the_closed_form_kl_of_gaussian_prior():
    net = probseq.LSTMNetwork(V, 8, seed=1)
    q = probseq.inference.MeanFieldPosterior(net.params, initial_scale=0.1)
    np.testing.assert_allclose(
        q.kl_divergence(tfd.Normal(0.0, 0.5)),
        q.kl_divergence(probseq.inference.GaussianPrior(0.5)),
        rtol=1e-6,
    )
