"""Tests for `posterior_predictive`: batched draws, plug-in, ELBO bound, both modes, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from probseq.evaluation import evaluate, log_mean_exp, posterior_predictive, weight_summaries
from probseq.inference import GaussianPrior, MeanFieldPosterior, ScaleMixturePrior, stateless_seed

NUM_STEPS, NUM_DRAWS = 5, 4


@pytest.fixture(scope="module")
def surrogate(net):
    return MeanFieldPosterior(net.params, initial_scale=0.2)


def _draw(draws, index):
    return tf.nest.map_structure(lambda leaf: leaf[index], draws)


@pytest.mark.parametrize("mode", ["windows", "stream"])
def test_batched_predictive_equals_loop_over_draws(surrogate, ids, mode):
    result = posterior_predictive(
        surrogate, ids, num_draws=NUM_DRAWS, seed=3, num_steps=NUM_STEPS, mode=mode
    )
    draws = surrogate.sample(NUM_DRAWS, seed=stateless_seed(3))
    loop = [
        evaluate(_draw(draws, s), ids, num_steps=NUM_STEPS, mode=mode) for s in range(NUM_DRAWS)
    ]
    totals = np.array([r.total_log_prob_nats for r in loop])
    np.testing.assert_allclose(
        result.predictive.total_log_prob_per_draw_nats, totals, rtol=1e-5, atol=1e-4
    )
    if mode == "windows":
        per_window = np.stack([r.window_log_prob_nats for r in loop])  # :: [S, W]
        np.testing.assert_allclose(
            result.predictive.window_log_prob_per_draw_nats, per_window, rtol=1e-5, atol=1e-4
        )
        predictive = log_mean_exp(per_window, axis=0).sum()
    else:
        predictive = log_mean_exp(totals)
    np.testing.assert_allclose(result.predictive.total_log_prob_nats, predictive, rtol=1e-5)
    assert result.predictive.num_draws == result.num_draws == NUM_DRAWS
    assert result.seed == 3 and result.mode == mode
    # Plug-in: the posterior mean, one network.
    plug_in = evaluate(surrogate.mean(), ids, num_steps=NUM_STEPS, mode=mode)
    np.testing.assert_allclose(result.plug_in.total_log_prob_nats, plug_in.total_log_prob_nats)
    # E_q[log p] from the same draws; Jensen: it cannot exceed the log of the mean.
    expected = totals.mean() / result.predictive.num_chars
    np.testing.assert_allclose(result.expected_log_prob_nats_per_char, expected, rtol=1e-5)
    assert result.expected_log_prob_nats_per_char <= -result.predictive.nll_nats_per_char + 1e-9


def test_elbo_bound_and_labels(surrogate, ids):
    prior = GaussianPrior(1.0)
    result = posterior_predictive(
        surrogate,
        ids,
        num_draws=NUM_DRAWS,
        seed=(1, 2),
        num_steps=NUM_STEPS,
        prior=prior,
        num_train_examples=100,
        train_num_steps=8,
    )
    kl = float(surrogate.kl_divergence(prior))
    assert result.kl_method == "closed_form" and result.num_train_chars == 800
    np.testing.assert_allclose(result.kl_nats, kl)
    np.testing.assert_allclose(
        result.elbo_bound_nats_per_char, result.expected_log_prob_nats_per_char - kl / 800
    )
    np.testing.assert_allclose(
        result.elbo_bound_bits_per_char, -result.elbo_bound_nats_per_char / math.log(2)
    )
    summary = result.as_dict()
    assert summary["seed"] == [1, 2] and summary["num_draws"] == NUM_DRAWS
    assert "bound" in summary["labels"]["elbo_bound"]
    assert "posterior mean" in summary["labels"]["plug_in"]
    assert summary["predictive_bits_per_char"] == result.predictive.bits_per_char
    # without a prior there is no KL and no bound
    bare = posterior_predictive(surrogate, ids, num_draws=2, seed=0, num_steps=NUM_STEPS)
    assert bare.kl_nats is None and bare.elbo_bound_nats_per_char is None


def test_mixture_prior_uses_monte_carlo_kl(surrogate, ids):
    prior = ScaleMixturePrior()
    result = posterior_predictive(
        surrogate, ids, num_draws=3, seed=5, num_steps=NUM_STEPS, prior=prior, num_train_examples=10
    )
    assert result.kl_method == "monte_carlo"
    np.testing.assert_allclose(
        result.kl_nats,
        surrogate.kl_divergence_monte_carlo(prior, 3, stateless_seed(5)),
        rtol=1e-5,
    )


def test_seeded(surrogate, ids):
    def run(seed):
        result = posterior_predictive(surrogate, ids, num_draws=3, seed=seed, num_steps=NUM_STEPS)
        return result.predictive.total_log_prob_per_draw_nats

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))
    fresh = posterior_predictive(surrogate, ids, num_draws=2, num_steps=NUM_STEPS)
    assert isinstance(fresh.seed, int)  # a fresh seed is drawn and reported


def test_weight_summaries(draws):
    summaries = weight_summaries(draws)
    kernel = np.asarray(draws["layer_1"]["recurrent_kernel"], np.float64)
    np.testing.assert_allclose(
        summaries["l2_norm_layer_1_recurrent_kernel"], np.sqrt((kernel**2).sum(axis=(1, 2)))
    )
    assert summaries["output_bias"].shape == draws["output"]["bias"].shape
    assert len(summaries) == 2 * 3 + 2 + 1


def test_bad_num_draws(surrogate, ids):
    with pytest.raises(ValueError, match="num_draws"):
        posterior_predictive(surrogate, ids, num_draws=0)
