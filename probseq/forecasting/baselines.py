"""Classical baselines with no training: the seasonal naive forecast."""

from __future__ import annotations

import numpy as np

__all__ = ["seasonal_naive"]


def seasonal_naive(history, prediction_length: int, season: int) -> np.ndarray:
    """`yhat_{T+h} = z_{T+h-m*k}`: the last season repeated (the last value when the
    history is shorter than a season, or `season == 1`). Returns `[prediction_length]`."""
    history = np.asarray(history, np.float64)
    if history.ndim != 1 or len(history) == 0:
        raise ValueError(f"history must be a non-empty 1-D series, got shape {history.shape}.")
    m = season if len(history) >= season else 1
    last = history[-m:]
    return np.resize(last, prediction_length) if m > 1 else np.full(prediction_length, history[-1])
