"""Tests for the ArviZ conversion and model comparison (`probseq.evaluation.arviz_io`)."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest

from probseq.evaluation import (
    compare_models,
    elpd,
    evaluate,
    lpd,
    posterior_predictive,
    to_inference_data,
)
from probseq.inference import MeanFieldPosterior

NUM_STEPS = 5


@pytest.fixture(scope="module")
def posterior_idata(net, ids):
    surrogate = MeanFieldPosterior(net.params, initial_scale=0.05)
    result = posterior_predictive(surrogate, ids, num_draws=20, seed=1, num_steps=NUM_STEPS)
    return result, to_inference_data(result, ids, name="variational")


@pytest.fixture(scope="module")
def map_idata(net, ids):
    result = evaluate(net, ids, num_steps=NUM_STEPS)
    return result, to_inference_data(result, ids, params=net.params, name="map")


def test_groups_dims_and_values(posterior_idata, ids):
    result, idata = posterior_idata
    assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())
    log_lik = idata.log_likelihood["windows"]
    num_windows = len(ids) // NUM_STEPS
    assert log_lik.dims == ("chain", "draw", "window")
    assert log_lik.shape == (1, 20, num_windows)
    np.testing.assert_array_equal(
        log_lik.values[0], result.predictive.window_log_prob_per_draw_nats
    )
    observed = idata.observed_data["windows"]
    assert observed.dims == ("window", "step")
    np.testing.assert_array_equal(
        observed.values.reshape(-1), np.asarray(ids)[: num_windows * NUM_STEPS]
    )
    posterior = idata.posterior
    assert posterior["l2_norm_layer_0_recurrent_kernel"].shape == (1, 20)
    assert posterior["output_bias"].dims == ("chain", "draw", "symbol")
    np.testing.assert_allclose(posterior["held_out_log_lik"].values[0], log_lik.values[0].sum(1))
    assert idata.log_likelihood.attrs["point_estimate"] == 0
    assert lpd(idata) == pytest.approx(result.predictive.total_log_prob_nats)


def test_loo_and_waic_run_on_a_posterior(posterior_idata):
    _, idata = posterior_idata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings are expected with 20 draws
        loo = az.loo(idata, pointwise=True)
        waic = az.waic(idata)
    assert loo.pareto_k.shape == (idata.log_likelihood.sizes["window"],)
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
    # On held-out windows PSIS-LOO reweights towards a harmonic mean: elpd_loo <= lpd.
    assert loo.elpd_loo <= lpd(idata) + 1e-9


def test_point_estimate_enters_as_plug_in(map_idata, ids):
    result, idata = map_idata
    assert idata.log_likelihood["windows"].shape == (1, 1, len(ids) // NUM_STEPS)
    assert idata.log_likelihood.attrs["point_estimate"] == 1
    data = elpd(idata)
    assert data["elpd_loo"] == pytest.approx(result.total_log_prob_nats)
    assert data["p_loo"] == 0.0 and np.all(np.isnan(data["pareto_k"]))
    waic = elpd(idata, ic="waic", scale="deviance")
    assert waic["elpd_waic"] == pytest.approx(-2 * result.total_log_prob_nats)


def test_compare_models_table(posterior_idata, map_idata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = compare_models({"variational": posterior_idata[1], "map": map_idata[1]})
    for column in ("elpd_loo", "se", "weight", "elpd_diff", "lpd", "pareto_k_max"):
        assert column in table.columns
    assert set(table.index) == {"variational", "map"}
    assert table.loc["map", "elpd_method"] == "plug_in"
    assert table.loc["variational", "elpd_method"] == "psis_loo"
    assert np.isnan(table.loc["map", "pareto_k_max"])
    assert table["weight"].sum() == pytest.approx(1.0)
    assert table.loc["map", "lpd"] == pytest.approx(map_idata[0].total_log_prob_nats)


def test_rejects_stream_mode_and_mismatched_ids(net, ids):
    stream = evaluate(net, ids, num_steps=NUM_STEPS, mode="stream")
    with pytest.raises(ValueError, match="windows"):
        to_inference_data(stream, ids)
    windows = evaluate(net, ids, num_steps=NUM_STEPS)
    with pytest.raises(ValueError, match="pass the ids"):
        to_inference_data(windows, np.asarray(ids)[:-NUM_STEPS])
