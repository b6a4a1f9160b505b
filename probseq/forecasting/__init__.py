"""Probabilistic forecasting on the recurrent core: DeepAR-style models, real series,
backtests, metrics (CRPS, weighted quantile loss, MASE), baselines and fan charts."""

from probseq.distributions.deepar import DeepAR
from probseq.forecasting.baselines import seasonal_naive
from probseq.forecasting.data import DATASETS, Backtest, Series, backtest, load_dataset, read_csv
from probseq.forecasting.features import Frequency, default_lags, frequency, time_features
from probseq.forecasting.metrics import (
    QUANTILES,
    crps_from_samples,
    mase,
    mean_wql,
    quantile_loss,
    seasonal_error,
    weighted_crps,
)
from probseq.forecasting.model import HEADS, DeepARForecaster, ForecastResult

__all__ = [
    "DATASETS",
    "HEADS",
    "QUANTILES",
    "Backtest",
    "DeepAR",
    "DeepARForecaster",
    "ForecastResult",
    "Frequency",
    "Series",
    "backtest",
    "crps_from_samples",
    "default_lags",
    "frequency",
    "load_dataset",
    "mase",
    "mean_wql",
    "quantile_loss",
    "read_csv",
    "seasonal_error",
    "seasonal_naive",
    "time_features",
    "weighted_crps",
]
