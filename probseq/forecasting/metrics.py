"""Forecast accuracy: CRPS from samples, weighted quantile loss as GluonTS computes it,
MASE, and quantiles of sample paths.

Conventions (GluonTS's `Evaluator`, so the numbers compare with its papers and tables):

- quantile loss of quantile `q` over a window: `QL_q = 2 * sum_t |(y_t - yhat_t,q) *
  (1{y_t <= yhat_t,q} - q)|`;
- weighted quantile loss: `wQL_q = sum QL_q / sum |y_t|` over every forecast window of
  the set; `mean_wql` is its mean over `q = 0.1, ..., 0.9`;
- MASE: `mean |y_t - median_t|` over the window divided by the in-sample seasonal
  naive error `mean |z_t - z_{t-m}|` of the history before the window;
- CRPS of samples `X_1..X_n` at `y`: `E|X - y| - E|X - X'| / 2` (the energy form,
  computed exactly from the sorted samples), averaged over the steps.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "QUANTILES",
    "crps_from_samples",
    "mase",
    "mean_wql",
    "quantile_loss",
    "seasonal_error",
    "weighted_crps",
]

QUANTILES = tuple(round(0.1 * i, 1) for i in range(1, 10))


def _check(samples, target) -> tuple[np.ndarray, np.ndarray]:
    samples = np.asarray(samples, np.float64)
    target = np.asarray(target, np.float64)
    if samples.ndim < 1 or samples.shape[1:] != target.shape:
        raise ValueError(
            f"samples must have shape [num_samples] + target.shape = [n, {target.shape}], "
            f"got {samples.shape}."
        )
    if not (np.isfinite(samples).all() and np.isfinite(target).all()):
        raise ValueError("samples and target must be finite.")
    return samples, target


def crps_from_samples(samples, target) -> np.ndarray:
    """CRPS of each target value under the empirical distribution of its samples.

    Args:
      samples: `[n] + shape`; target: `shape`.

    Returns:
      `shape` CRPS values (same units as the target; 0 for a point mass at the truth).
    """
    samples, target = _check(samples, target)
    n = samples.shape[0]
    first = np.mean(np.abs(samples - target), axis=0)
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1).reshape([n] + [1] * target.ndim)
    spread = 2.0 * np.sum(weights * ordered, axis=0) / n**2  # E|X - X'|
    return first - 0.5 * spread


def weighted_crps(samples, target) -> float:
    """`sum CRPS / sum |y|` over every step (scale-free, like `mean_wql`)."""
    crps = crps_from_samples(samples, target)
    return float(np.sum(crps) / np.sum(np.abs(target)))


def quantile_loss(target, forecast, q: float) -> float:
    """GluonTS's quantile loss `2 * sum |(y - yhat) * (1{y <= yhat} - q)|`."""
    target = np.asarray(target, np.float64)
    forecast = np.asarray(forecast, np.float64)
    return float(2.0 * np.sum(np.abs((target - forecast) * ((target <= forecast) - q))))


def mean_wql(samples, target, quantiles=QUANTILES) -> float:
    """Mean over `quantiles` of `sum QL_q / sum |y|` (every window of `target` together).

    Args:
      samples: `[n] + shape` sample paths; target: `shape` (e.g. `[windows, H]`).
    """
    samples, target = _check(samples, target)
    denominator = np.sum(np.abs(target))
    if denominator == 0:
        raise ValueError("the target is all zeros: the weighted quantile loss is undefined.")
    levels = np.quantile(samples, quantiles, axis=0)
    losses = [quantile_loss(target, level, q) for level, q in zip(levels, quantiles, strict=True)]
    return float(np.mean(losses) / denominator)


def seasonal_error(history, season: int) -> float:
    """`mean |z_t - z_{t-m}|` over the history (`m = 1` when it is shorter than a season,
    as GluonTS does)."""
    history = np.asarray(history, np.float64)
    m = season if len(history) > season else 1
    if len(history) <= m:
        raise ValueError(f"MASE needs more than {m} values of history, got {len(history)}.")
    return float(np.mean(np.abs(history[m:] - history[:-m])))


def mase(target, median, history, season: int) -> float:
    """`mean |y - median|` over the window over the seasonal naive error of `history`."""
    error = seasonal_error(history, season)
    if error == 0:
        raise ValueError("the history is constant at the seasonal lag: MASE is undefined.")
    diff = np.asarray(target, np.float64) - np.asarray(median, np.float64)
    return float(np.mean(np.abs(diff)) / error)
