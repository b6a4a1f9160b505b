"""`DeepARForecaster`: fitting learns a seasonal series, forecasts, save/load, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from probseq.forecasting import DeepARForecaster, Series, backtest, mean_wql, seasonal_naive


def _clean(t):
    return 20.0 + 3.0 * np.sin(2 * np.pi * t / 12)


def _seasonal(n=240, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    values = _clean(np.arange(n)) + noise * rng.normal(size=n)
    return Series("toy", values, pd.period_range("2000-01", periods=n, freq="M"))


@pytest.fixture(scope="module")
def fitted():
    series = _seasonal()
    bt = backtest(series, 12, 2)
    model = DeepARForecaster(
        12,
        hidden_size=16,
        num_layers=1,
        num_steps=400,
        seed=0,
        num_samples=100,
        ensemble_size=1,
    ).fit(bt.train)
    return series, bt, model


@pytest.mark.slow
def test_a_fitted_model_learns_the_season(fitted):
    """On a noisy sine of period 12 (noise sd 0.3) the forecast must beat the flat
    forecast of the training mean by a wide margin, with a spread near the noise's and a
    held-out NLL near the true model's on the same values."""
    series, bt, model = fitted
    forecast = model.forecast(series, bt.origins, seed=1)
    assert forecast.samples.shape == (100, 2, 12)
    target = bt.targets()
    flat = np.full_like(target, bt.train.values.mean())[None]
    assert mean_wql(forecast.samples, target) < 0.5 * mean_wql(flat, target)
    assert 0.2 < forecast.samples.std(axis=0).mean() < 0.45
    assert model.lags == (1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37)
    assert model.fit_result.trace["loss"][-50:].mean() < model.fit_result.trace["loss"][:50].mean()
    nll = -model.log_prob(series, bt.origins) / 12
    clean = np.stack([_clean(np.arange(o, o + 12)) for o in bt.origins])
    oracle = 0.5 * np.log(2 * np.pi * 0.09) + 0.5 * ((target - clean) / 0.3) ** 2
    assert nll.shape == (2,) and np.all(nll < oracle.mean(axis=1) + 0.3), (nll, oracle.mean(1))


def test_save_and_load_give_the_same_forecast(fitted, tmp_path):
    series, bt, model = fitted
    model.save(tmp_path / "m")
    loaded = DeepARForecaster.load(tmp_path / "m")
    assert loaded.config == model.config and loaded.lags == model.lags
    a = model.forecast(series, bt.origins, seed=3).samples
    np.testing.assert_allclose(loaded.forecast(series, bt.origins, seed=3).samples, a, rtol=1e-5)
    future = model.forecast(series, seed=3)  # after the end of the series
    assert [str(p) for p in future.index[0][:2]] == ["2020-01", "2020-02"]


def test_forecaster_errors(fitted):
    series, _, model = fitted
    with pytest.raises(ValueError, match="needs 49 values of history"):
        model.forecast(series, [10])
    weekly = Series("w", np.ones(300), pd.period_range("2000-01-03", periods=300, freq="W"))
    with pytest.raises(ValueError, match="the model was fitted to monthly series"):
        model.forecast(weekly)
    with pytest.raises(RuntimeError, match="not fitted"):
        DeepARForecaster(3).forecast(series)
    with pytest.raises(ValueError, match="head must be one of"):
        DeepARForecaster(3, head="gamma")
    with pytest.raises(ValueError, match="prediction_length must be a positive integer, got 0"):
        DeepARForecaster(0)
    with pytest.raises(ValueError, match="not counts"):
        DeepARForecaster(3, head="negative_binomial", num_steps=1).fit(series)
    short = Series("s", np.ones(30), pd.period_range("2000-01", periods=30, freq="M"))
    with pytest.raises(ValueError, match="the shortest training series has 30 values"):
        DeepARForecaster(12, num_steps=1).fit(short)
    with pytest.raises(ValueError, match="lag 60 needs more history"):
        DeepARForecaster(12, lags=[1, 60], num_steps=1).fit(_seasonal(n=80))


def test_negative_binomial_forecasts_counts():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5 + 3 * np.sin(np.arange(120) / 2)).astype(float)
    series = Series("c", counts, pd.period_range("2000-01-01", periods=120, freq="D"))
    model = DeepARForecaster(
        7, head="negative_binomial", hidden_size=8, num_layers=1, num_steps=30, num_samples=20
    ).fit(series)
    samples = model.forecast(series).samples
    assert samples.shape == (20, 1, 7) and (samples >= 0).all()
    assert np.array_equal(samples, np.round(samples))
    assert seasonal_naive(counts, 7, 7).shape == (7,)


def test_an_ensemble_is_the_equal_mixture_of_its_members(tmp_path):
    """`ensemble_size=K`: K differently initialized networks trained in one param batch;
    `log_prob` is `log mean_k p_k`, paths come from the members round robin."""
    series = _seasonal(n=120)
    bt = backtest(series, 6, 2)
    model = DeepARForecaster(
        6, hidden_size=8, num_layers=1, num_steps=20, ensemble_size=3, num_samples=7, lags=[1, 12]
    ).fit(bt.train)
    assert model.members.params["output"]["bias"].shape[0] == 3
    members = model.members.params
    singles = []
    for k in range(3):
        one = DeepARForecaster(6, hidden_size=8, num_layers=1, lags=[1, 12], ensemble_size=1)
        one.freq = model.freq
        one._build(
            model.network.input_size,
            tf.nest.map_structure(lambda p, k=k: p.numpy()[k : k + 1], members),
        )
        singles.append(one.log_prob(series, bt.origins))
    want = np.log(np.mean(np.exp(np.stack(singles)), axis=0))
    np.testing.assert_allclose(model.log_prob(series, bt.origins), want, rtol=1e-5)
    samples = model.forecast(series, bt.origins, seed=2).samples
    assert samples.shape == (7, 2, 6)
    model.save(tmp_path / "ens")
    loaded = DeepARForecaster.load(tmp_path / "ens")
    np.testing.assert_allclose(
        loaded.forecast(series, bt.origins, seed=2).samples, samples, rtol=1e-5
    )
    trained = [not np.allclose(members["output"]["bias"].numpy()[k], 0.0) for k in range(3)]
    assert all(trained)  # every member's head moved from its zero init
    kernels = members["layer_0"]["input_kernel"].numpy()
    assert not np.allclose(kernels[0], kernels[1])  # different initializations
