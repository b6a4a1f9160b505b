"""Tests for the ArviZ conversion and model comparison (`probseq.evaluation.arviz_io`)."""

from __future__ import annotations

import pickle
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
NUM_DRAWS = 100  # enough for PSIS-LOO's Pareto k (see the module docstring)


def _few_draws_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "posterior draws" in str(w.message)]


@pytest.fixture(scope="module")
def posterior_idata(net, ids):
    surrogate = MeanFieldPosterior(net.params, initial_scale=0.05)
    result = posterior_predictive(surrogate, ids, num_draws=NUM_DRAWS, seed=1, num_steps=NUM_STEPS)
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
    assert log_lik.shape == (1, NUM_DRAWS, num_windows)
    np.testing.assert_array_equal(
        log_lik.values[0], result.predictive.window_log_prob_per_draw_nats
    )
    observed = idata.observed_data["windows"]
    assert observed.dims == ("window", "step")
    np.testing.assert_array_equal(
        observed.values.reshape(-1), np.asarray(ids)[: num_windows * NUM_STEPS]
    )
    posterior = idata.posterior
    assert posterior["l2_norm_layer_0_recurrent_kernel"].shape == (1, NUM_DRAWS)
    assert posterior["output_bias"].dims == ("chain", "draw", "symbol")
    np.testing.assert_allclose(posterior["held_out_log_lik"].values[0], log_lik.values[0].sum(1))
    assert idata.log_likelihood.attrs["point_estimate"] == 0
    assert lpd(idata) == pytest.approx(result.predictive.total_log_prob_nats)


def test_loo_and_waic_run_on_a_posterior(posterior_idata):
    _, idata = posterior_idata
    loo = az.loo(idata, pointwise=True)
    waic = az.waic(idata)
    assert loo.pareto_k.shape == (idata.log_likelihood.sizes["window"],)
    assert np.all(np.isfinite(loo.pareto_k))
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
    # On held-out windows PSIS-LOO reweights towards a harmonic mean: elpd_loo <= lpd.
    assert loo.elpd_loo <= lpd(idata) + 1e-9


def test_point_estimate_enters_as_plug_in(map_idata, ids):
    result, idata = map_idata
    assert idata.log_likelihood["windows"].shape == (1, 1, len(ids) // NUM_STEPS)
    assert idata.log_likelihood.attrs["point_estimate"] == 1
    assert set(idata.groups()) == {"point_estimate", "log_likelihood", "observed_data"}
    assert idata.point_estimate["held_out_log_lik"].values == pytest.approx(
        result.total_log_prob_nats
    )
    data = elpd(idata)
    assert data["elpd_loo"] == pytest.approx(result.total_log_prob_nats)
    assert data["p_loo"] == 0.0 and np.all(np.isnan(data["pareto_k"]))
    waic = elpd(idata, ic="waic", scale="deviance")
    assert waic["elpd_waic"] == pytest.approx(-2 * result.total_log_prob_nats)


def test_point_estimate_in_az_loo_and_az_compare_points_to_compare_models(
    posterior_idata, map_idata
):
    _, idata = map_idata
    message = r"point estimate.*no posterior.*probseq\.evaluation\.compare_models.*elpd"
    with pytest.raises(TypeError, match=message):
        az.loo(idata)
    with pytest.raises(TypeError, match=message):
        idata.posterior  # noqa: B018
    # az.compare re-raises with its own messages, chained to ours.
    with pytest.raises(TypeError) as info:
        az.compare({"variational": posterior_idata[1], "map": idata})
    causes = []
    error = info.value
    while error is not None:
        causes.append(str(error))
        error = error.__cause__
    assert any("probseq.evaluation.compare_models" in cause for cause in causes), causes


def test_point_estimate_survives_copies_and_keeps_its_values(map_idata):
    _, idata = map_idata
    for copy in (idata.copy(), pickle.loads(pickle.dumps(idata))):
        assert type(copy) is type(idata)
        with pytest.raises(TypeError, match="compare_models"):
            az.loo(copy)
        assert elpd(copy)["elpd_loo"] == pytest.approx(elpd(idata)["elpd_loo"])
    # A plain InferenceData of the same groups (as az.from_netcdf returns) has no posterior
    # either: arviz's own TypeError, not PSIS's IndexError.
    plain = az.InferenceData(**{group: idata[group] for group in idata.groups()})
    with pytest.raises(TypeError, match="posterior"):
        az.loo(plain)
    assert elpd(plain)["elpd_loo"] == pytest.approx(elpd(idata)["elpd_loo"])


@pytest.mark.parametrize(("num_draws", "warns"), [(20, True), (21, False)])
def test_twenty_draws_or_fewer_warn_with_their_number(net, ids, num_draws, warns):
    surrogate = MeanFieldPosterior(net.params, initial_scale=0.05)
    result = posterior_predictive(surrogate, ids, num_draws=num_draws, seed=2, num_steps=NUM_STEPS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = to_inference_data(result, ids, name="vi")
        loo = az.loo(idata, pointwise=True)  # arviz's own Pareto-k warning is expected
    ours = _few_draws_warnings(caught)
    if warns:
        assert len(ours) == 1, ours
        assert "'vi' has only 20 posterior draws" in ours[0] and ">= 100" in ours[0]
        # What the warning explains: with <= 20 draws arviz cannot fit any Pareto tail.
        assert np.all(np.isinf(loo.pareto_k))
    else:
        assert ours == []
        assert np.all(np.isfinite(loo.pareto_k))


def test_few_draws_warning_for_scored_draws_but_not_for_a_point_estimate(net, ids, draws):
    with pytest.warns(UserWarning, match=r"has only 3 posterior draws"):
        to_inference_data(evaluate(net, ids, num_steps=NUM_STEPS, params=draws), ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        to_inference_data(evaluate(net, ids, num_steps=NUM_STEPS), ids, params=net.params)
    assert _few_draws_warnings(caught) == []


def test_compare_models_table(posterior_idata, map_idata):
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
