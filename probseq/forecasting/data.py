"""Series to forecast: a CSV column, the real series bundled with statsmodels, and the
rolling-origin backtest split.

A `Series` holds the values (float64, no gaps) and a `pandas.PeriodIndex`, so its
future steps, its time features and its seasonal period all follow from the data.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

import numpy as np
import pandas as pd

from probseq.forecasting.baselines import seasonal_naive
from probseq.forecasting.features import Frequency, frequency
from probseq.forecasting.metrics import crps_from_samples, mase, mean_wql, weighted_crps

__all__ = [
    "DATASETS",
    "Backtest",
    "Series",
    "backtest",
    "load_dataset",
    "read_csv",
]


@dataclasses.dataclass(frozen=True)
class Series:
    """One series: `values [N]` (float64, finite) over `index` (a `PeriodIndex`)."""

    name: str
    values: np.ndarray
    index: pd.PeriodIndex
    note: str = ""

    def __post_init__(self):
        values = np.asarray(self.values, np.float64)
        if values.ndim != 1 or len(values) != len(self.index):
            raise ValueError(
                f"series {self.name!r}: values must be 1-D and as long as the index, got "
                f"{values.shape} and {len(self.index)}."
            )
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            where = ", ".join(str(self.index[i]) for i in bad[:5])
            raise ValueError(
                f"series {self.name!r} has {bad.size} missing or non-finite values (at "
                f"{where}{', ...' if bad.size > 5 else ''}); fill them first (e.g. `--fill "
                "interpolate` on the command line)."
            )
        object.__setattr__(self, "values", values)

    @property
    def freq(self) -> Frequency:
        return frequency(self.index.freqstr)

    def future_index(self, steps: int, *, end: int | None = None) -> pd.PeriodIndex:
        """The `steps` periods after position `end` (default: after the last value)."""
        last = self.index[len(self.index) - 1 if end is None else end - 1]
        return pd.period_range(last + 1, periods=steps, freq=self.index.freq)

    def __len__(self) -> int:
        return len(self.values)


def _period_index(dates, freq: str | None, what: str) -> pd.PeriodIndex:
    dates = pd.DatetimeIndex(pd.to_datetime(dates))
    if freq is None:
        freq = pd.infer_freq(dates) if len(dates) >= 3 else None
        if freq is None:
            raise ValueError(
                f"cannot infer the frequency of {what} (irregular dates?); give it (e.g. "
                "--freq M for monthly data)."
            )
    alias = frequency(freq).alias
    index = dates.to_period(alias)
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise ValueError(f"the dates of {what} must be increasing with no repeats at {freq}.")
    expected = pd.period_range(index[0], periods=len(index), freq=alias)
    if not index.equals(expected):
        missing = expected.difference(index)
        raise ValueError(
            f"the dates of {what} skip periods at frequency {freq} (e.g. {missing[:3].tolist()});"
            " give every period a row (empty values may be filled with --fill)."
        )
    return index


def read_csv(
    path: str | os.PathLike,
    column: str,
    *,
    date_column: str | None = None,
    freq: str | None = None,
    start: str | None = None,
    fill: str | None = None,
) -> Series:
    """One column of a CSV file as a `Series`.

    Args:
      path: the file.
      column: the column of values.
      date_column: the column of dates (default: a column named date/ds/time/timestamp/
        month/period if there is one). Without dates, give `freq` (and `start`).
      freq: pandas frequency alias (inferred from the dates when omitted).
      start: the first period when there are no dates (default 2000-01-01).
      fill: None (missing values are an error), `"interpolate"` (linear, ends carried)
        or `"zero"`.
    """
    frame = pd.read_csv(path)
    if column not in frame.columns:
        raise ValueError(
            f"{os.fspath(path)} has no column {column!r}; its columns: {list(frame.columns)}."
        )
    if date_column is None:
        names = {str(name).lower(): name for name in frame.columns if name != column}
        for guess in ("date", "ds", "time", "timestamp", "month", "period", "week", "year"):
            if guess in names:
                date_column = names[guess]
                break
    elif date_column not in frame.columns:
        raise ValueError(
            f"{os.fspath(path)} has no date column {date_column!r}; its columns: "
            f"{list(frame.columns)}."
        )
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    text = frame[column].astype(str).str.strip()
    unreadable = np.isnan(values) & frame[column].notna().to_numpy() & (text != "").to_numpy()
    if unreadable.any():
        row = int(np.flatnonzero(unreadable)[0])
        raise ValueError(
            f"{os.fspath(path)}: column {column!r} has a value that is not a number at row "
            f"{row + 2} ({frame[column].iloc[row]!r})."
        )
    what = f"{os.fspath(path)}"
    if date_column is not None:
        index = _period_index(frame[date_column], freq, what)
    else:
        if freq is None:
            raise ValueError(
                f"{os.fspath(path)} has no date column; pass date_column or freq (e.g. --freq M)."
            )
        index = pd.period_range(
            start or "2000-01-01", periods=len(values), freq=frequency(freq).alias
        )
    values = _filled(values, fill)
    return Series(column, values, index)


def _filled(values: np.ndarray, fill: str | None) -> np.ndarray:
    if fill is None or not np.isnan(values).any():
        return values
    if fill == "zero":
        return np.nan_to_num(values, nan=0.0)
    if fill == "interpolate":
        known = np.flatnonzero(~np.isnan(values))
        if known.size == 0:
            raise ValueError("every value is missing.")
        return np.interp(np.arange(len(values)), known, values[known])
    raise ValueError(f"fill must be None, 'interpolate' or 'zero', got {fill!r}.")


# ---------------------------------------------------------------- statsmodels data

DATASETS = {
    "co2": "weekly CO2 at Mauna Loa, 1958-2001 (ppm; 59 missing weeks interpolated)",
    "elec_equip": "monthly euro-area electrical equipment orders index, 1995-2016",
    "unemployment": "quarterly US unemployment rate, 1959-2009 (macrodata 'unemp')",
    "sunspots": "yearly sunspot activity, 1700-2008",
    "nile": "yearly Nile flow at Aswan, 1871-1970 (10^8 m^3)",
}


def load_dataset(name: str) -> Series:
    """A real series from statsmodels' bundled data (`pip install probseq[forecast]`):
    one of `DATASETS`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}.")
    source = {"unemployment": "macrodata"}.get(name, name)
    try:
        frame = importlib.import_module(f"statsmodels.datasets.{source}").load_pandas().data
    except ImportError:
        raise ImportError(
            "the forecasting datasets come with statsmodels: pip install 'probseq[forecast]'."
        ) from None
    if name == "co2":
        values = frame["co2"].to_numpy(np.float64)
        index = _period_index(frame.index, "W", "co2")
        return Series(name, _filled(values, "interpolate"), index, DATASETS[name])
    if name == "elec_equip":
        index = _period_index(frame.index, "MS", name)
        return Series(name, frame.iloc[:, 0].to_numpy(np.float64), index, DATASETS[name])
    if name == "unemployment":
        start = pd.Period(f"{int(frame['year'][0])}Q{int(frame['quarter'][0])}", freq="Q")
        index = pd.period_range(start, periods=len(frame), freq="Q")
        return Series(name, frame["unemp"].to_numpy(np.float64), index, DATASETS[name])
    year, column = {"sunspots": ("YEAR", "SUNACTIVITY"), "nile": ("year", "volume")}[name]
    index = pd.period_range(str(int(frame[year][0])), periods=len(frame), freq="Y")
    return Series(name, frame[column].to_numpy(np.float64), index, DATASETS[name])


# ----------------------------------------------------------------- backtest split


@dataclasses.dataclass(frozen=True)
class Backtest:
    """A rolling-origin backtest: train on `values[:train_end]`, then forecast the
    `windows` consecutive windows of `prediction_length` after it, window `k` from the
    history `values[:origins[k]]` (the model is not refitted between windows)."""

    series: Series
    prediction_length: int
    windows: int

    @property
    def train_end(self) -> int:
        return len(self.series) - self.prediction_length * self.windows

    @property
    def origins(self) -> list[int]:
        return [self.train_end + k * self.prediction_length for k in range(self.windows)]

    @property
    def train(self) -> Series:
        end = self.train_end
        return Series(self.series.name, self.series.values[:end], self.series.index[:end])

    def targets(self) -> np.ndarray:
        """`[windows, prediction_length]` held-out values."""
        values = self.series.values
        return np.stack([values[o : o + self.prediction_length] for o in self.origins])

    def seasonal_naive(self) -> np.ndarray:
        """The seasonal naive forecast of every window as one "sample path":
        `[1, windows, prediction_length]`."""
        season, horizon = self.series.freq.season, self.prediction_length
        values = self.series.values
        return np.stack([seasonal_naive(values[:o], horizon, season) for o in self.origins])[None]

    def scores(self, samples) -> dict[str, float]:
        """Metrics of sample paths `[n, windows, H]` against the held-out windows:
        `mean_wql`, `crps` (mean per step), `weighted_crps` and `mase` (mean over the
        windows, each against the history before it)."""
        target = self.targets()
        median = np.median(samples, axis=0)
        season, values = self.series.freq.season, self.series.values
        mases = [mase(target[k], median[k], values[:o], season) for k, o in enumerate(self.origins)]
        return dict(
            mean_wql=mean_wql(samples, target),
            crps=float(np.mean(crps_from_samples(samples, target))),
            weighted_crps=weighted_crps(samples, target),
            mase=float(np.mean(mases)),
        )


def backtest(series: Series, prediction_length: int, windows: int) -> Backtest:
    """The last `windows` windows of `prediction_length` held out (see `Backtest`)."""
    if prediction_length < 1 or windows < 1:
        raise ValueError(
            f"prediction_length and windows must be >= 1, got {prediction_length}, {windows}."
        )
    if len(series) - prediction_length * windows < 2 * prediction_length:
        raise ValueError(
            f"series {series.name!r} has {len(series)} values: too short to hold out "
            f"{windows} windows of {prediction_length} and keep a history to train on."
        )
    return Backtest(series, prediction_length, windows)
