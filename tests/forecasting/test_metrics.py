"""Forecast metrics against direct formulas and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from probseq.forecasting import (
    QUANTILES,
    crps_from_samples,
    mase,
    mean_wql,
    quantile_loss,
    seasonal_error,
    weighted_crps,
)


def test_crps_equals_the_pairwise_definition():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=[7, 2, 3])
    target = rng.normal(size=[2, 3])
    got = crps_from_samples(samples, target)
    first = np.abs(samples - target).mean(0)
    pairs = np.mean([np.abs(a - b) for a, b in itertools.product(samples, samples)], axis=0)
    np.testing.assert_allclose(got, first - 0.5 * pairs, rtol=1e-12)


def test_crps_of_a_point_mass_is_the_absolute_error():
    np.testing.assert_allclose(crps_from_samples([[3.0, -1.0]], [1.0, 1.0]), [2.0, 2.0])


def test_crps_of_normal_samples_approaches_the_closed_form():
    """CRPS(N(0, 1), y) = y (2 Phi(y) - 1) + 2 phi(y) - 1/sqrt(pi)."""
    rng = np.random.default_rng(1)
    samples = rng.normal(size=[200_000, 1])
    for y in (0.0, 1.3):
        phi = math.exp(-y * y / 2) / math.sqrt(2 * math.pi)
        big_phi = 0.5 * (1 + math.erf(y / math.sqrt(2)))
        want = y * (2 * big_phi - 1) + 2 * phi - 1 / math.sqrt(math.pi)
        assert crps_from_samples(samples, [y])[0] == pytest.approx(want, abs=3e-3)


def test_quantile_loss_by_hand():
    # y = [1, 4], forecast 2 at q = 0.9: y<=f for the first (weight 0.1), above for the 2nd
    assert quantile_loss([1.0, 4.0], [2.0, 2.0], 0.9) == pytest.approx(2 * (1 * 0.1 + 2 * 0.9))


def test_mean_wql_is_gluonts_weighted_quantile_loss():
    rng = np.random.default_rng(2)
    samples = rng.gamma(3.0, size=[50, 3, 4])
    target = rng.gamma(3.0, size=[3, 4])
    want = []
    for q in QUANTILES:
        forecast = np.quantile(samples, q, axis=0)
        loss = 2 * np.sum(np.abs((forecast - target) * ((target <= forecast) - q)))
        want.append(loss / np.abs(target).sum())
    assert mean_wql(samples, target) == pytest.approx(np.mean(want), rel=1e-12)
    point = samples[:1]  # one path: every quantile is the point forecast
    assert mean_wql(point, target) == pytest.approx(
        np.abs(point[0] - target).sum() / np.abs(target).sum(), rel=1e-12
    )


def test_weighted_crps_and_mase():
    target = np.array([2.0, 4.0])
    assert weighted_crps([[1.0, 5.0]], target) == pytest.approx(2.0 / 6.0)
    history = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
    assert seasonal_error(history, 2) == pytest.approx(np.mean([3.0, 1.0, 1.0]))
    assert seasonal_error(history, 12) == pytest.approx(np.mean([1.0, 2.0, 1.0, 2.0]))
    assert mase(target, [1.0, 5.0], history, 2) == pytest.approx(1.0 / (5.0 / 3.0))


def test_metric_errors():
    with pytest.raises(ValueError, match="samples must have shape"):
        crps_from_samples(np.zeros([4, 3]), np.zeros([2]))
    with pytest.raises(ValueError, match="finite"):
        mean_wql(np.full([2, 2], np.nan), np.ones([2]))
    with pytest.raises(ValueError, match="all zeros"):
        mean_wql(np.ones([2, 2]), np.zeros([2]))
    with pytest.raises(ValueError, match="MASE is undefined"):
        mase([1.0], [1.0], [2.0, 2.0, 2.0], 1)
