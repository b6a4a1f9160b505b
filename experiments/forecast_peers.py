"""The forecasting peers of `experiments/forecast_benchmark.py`, each as
`fit_and_forecast(backtest, seed, num_samples) -> (samples [n, windows, H], seconds)`.

- `seasonal_naive`: the last season repeated (a point forecast: one "sample").
- `ets`: statsmodels' ETSModel (additive errors, damped additive trend, additive
  season where the history holds two full seasons), 200 simulated paths per window.
- `gluonts_deepar`: GluonTS's PyTorch `DeepAREstimator` at its default settings (100
  epochs of 50 batches of 32, 2 layers of 40 LSTM units, StudentT output, context =
  prediction length, its own lags and time features); it draws as many sample paths
  per window as the other models (`num_parallel_samples`, 100 by default in GluonTS).
  Needs the `forecast-bench` extra (`make forecast-bench`), which pins pandas < 3.
"""

from __future__ import annotations

import inspect
import random
import shutil
import tempfile
import time

import numpy as np

from probseq.forecasting import Backtest

__all__ = ["PEERS", "ets", "gluonts_deepar", "peer_available", "seasonal_naive_peer"]


def seasonal_naive_peer(bt: Backtest, seed: int, num_samples: int):
    del seed, num_samples
    start = time.perf_counter()
    forecast = bt.seasonal_naive()
    return forecast, time.perf_counter() - start


def ets(bt: Backtest, seed: int, num_samples: int):
    """ETS refitted at each origin (statsmodels fits in well under a second here)."""
    import warnings

    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    season = bt.series.freq.season
    start = time.perf_counter()
    paths = []
    for k, origin in enumerate(bt.origins):
        history = bt.series.values[:origin]
        seasonal = "add" if season > 1 and len(history) >= 2 * season + 10 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            model = ETSModel(
                history,
                error="add",
                trend="add",
                damped_trend=True,
                seasonal=seasonal,
                seasonal_periods=season if seasonal else None,
            )
            fit = model.fit(disp=False, maxiter=2000)
            rng = np.random.default_rng([seed, k])
            keyword = (
                "rng" if "rng" in inspect.signature(fit.simulate).parameters else "random_state"
            )
            simulated = fit.simulate(
                bt.prediction_length, repetitions=num_samples, anchor="end", **{keyword: rng}
            )
        paths.append(np.asarray(simulated).reshape(bt.prediction_length, num_samples).T)
    return np.stack(paths, axis=1), time.perf_counter() - start


def _gluonts_freq(bt: Backtest) -> str:
    return bt.series.index.freqstr


def gluonts_deepar(bt: Backtest, seed: int, num_samples: int = 100):
    """GluonTS's PyTorch DeepAR at its defaults; the training time is `train()`'s."""
    import logging

    import lightning.pytorch as pl
    import torch
    from gluonts.dataset.common import ListDataset
    from gluonts.torch import DeepAREstimator

    for name in ("lightning", "lightning.pytorch", "gluonts", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (GluonTS's samplers read the global state)
    torch.manual_seed(seed)
    pl.seed_everything(seed, verbose=False)
    freq = _gluonts_freq(bt)
    series = bt.series
    workdir = tempfile.mkdtemp(prefix="gluonts-")
    train = ListDataset(
        [{"start": series.index[0], "target": series.values[: bt.train_end]}], freq=freq
    )
    estimator = DeepAREstimator(
        freq=freq,
        prediction_length=bt.prediction_length,
        num_parallel_samples=num_samples,
        trainer_kwargs=dict(
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            accelerator="cpu",
            default_root_dir=workdir,  # GluonTS keeps its best-epoch checkpoint here
        ),
    )
    start = time.perf_counter()
    predictor = estimator.train(train)
    seconds = time.perf_counter() - start
    tests = ListDataset(
        [{"start": series.index[0], "target": series.values[:o]} for o in bt.origins], freq=freq
    )
    forecasts = list(predictor.predict(tests))
    samples = np.stack([f.samples for f in forecasts], axis=1)  # :: [n, windows, H]
    shutil.rmtree(workdir, ignore_errors=True)
    return samples, seconds


def peer_available(name: str) -> str | None:
    """None if the peer can run here, else why not."""
    try:
        if name == "ets":
            import statsmodels  # noqa: F401
        elif name == "gluonts_deepar":
            import gluonts.torch  # noqa: F401
            import lightning  # noqa: F401
            import torch  # noqa: F401
    except ImportError as error:
        extra = "forecast-bench (make forecast-bench)" if name == "gluonts_deepar" else "forecast"
        return f"not installed ({error.name}); install the {extra} extra"
    return None


PEERS = {
    "seasonal_naive": seasonal_naive_peer,
    "ets": ets,
    "gluonts_deepar": gluonts_deepar,
}
