"""Frequencies, seasonal periods, default lags and time features of a series' index.

A frequency is a pandas offset alias (`"h"`, `"D"`, `"W"`, `"M"`/`"MS"`, `"Q"`/`"QS"`,
`"Y"`/`"A"`, anchored forms such as `"W-SAT"` too). What each gives:

| frequency | season | time features (each in [-0.5, 0.5]) |
|---|---:|---|
| hourly | 24 | hour of day, day of week |
| daily | 7 | day of week, day of month, day of year |
| weekly | 52 | week of year |
| monthly | 12 | month of year |
| quarterly | 4 | quarter of year |
| yearly | 1 | none |

Default lags follow GluonTS's rule (`get_lags_for_frequency`): the first few steps and,
for a seasonal frequency, one to three seasons back with a step either side.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["Frequency", "default_lags", "frequency", "time_features"]


@dataclasses.dataclass(frozen=True)
class Frequency:
    """A parsed frequency: `kind` (hourly, daily, weekly, monthly, quarterly, yearly),
    `alias` (the pandas period alias) and `season` (steps per seasonal cycle)."""

    kind: str
    alias: str
    season: int


_KINDS = {
    "h": Frequency("hourly", "h", 24),
    "D": Frequency("daily", "D", 7),
    "W": Frequency("weekly", "W", 52),
    "M": Frequency("monthly", "M", 12),
    "Q": Frequency("quarterly", "Q", 4),
    "Y": Frequency("yearly", "Y", 1),
}
_ALIASES = {
    "H": "h",
    "h": "h",
    "D": "D",
    "B": "D",
    "W": "W",
    "M": "M",
    "MS": "M",
    "ME": "M",
    "Q": "Q",
    "QS": "Q",
    "QE": "Q",
    "A": "Y",
    "AS": "Y",
    "Y": "Y",
    "YS": "Y",
    "YE": "Y",
}


def frequency(freq: str | Frequency) -> Frequency:
    """Parse a pandas offset alias (`"MS"`, `"W-SAT"`, `"QS-OCT"`, `"Y"`, ...)."""
    if isinstance(freq, Frequency):
        return freq
    if not isinstance(freq, str) or not freq:
        raise ValueError(f"freq must be a pandas frequency string such as 'M', got {freq!r}.")
    base = freq.split("-")[0].lstrip("0123456789")
    if freq[: len(freq) - len(freq.lstrip("0123456789"))] not in ("", "1"):
        raise ValueError(f"multiples of a frequency are not supported, got {freq!r}.")
    key = _ALIASES.get(base) or _ALIASES.get(base.upper())
    if key is None:
        known = ", ".join(sorted(_ALIASES))
        raise ValueError(f"unknown frequency {freq!r}; use one of {known} (pandas aliases).")
    return _KINDS[key]


def default_lags(freq: str | Frequency, *, max_lag: int | None = None) -> tuple[int, ...]:
    """Lags 1..7 and, for a seasonal frequency, `k * season + (-1, 0, 1)` for k = 1..3;
    with `max_lag`, those above it are dropped."""
    season = frequency(freq).season
    lags = set(range(1, 8))
    if season > 1:
        for k in (1, 2, 3):
            lags |= {k * season - 1, k * season, k * season + 1}
    if max_lag is not None:
        lags = {lag for lag in lags if lag <= max_lag}
    if not lags:
        raise ValueError(f"max_lag={max_lag} leaves no lags.")
    return tuple(sorted(lags))


def _unit(values, size: int) -> np.ndarray:
    """Integer positions `0..size-1` mapped to [-0.5, 0.5]."""
    return np.asarray(values, np.float64) / max(size - 1, 1) - 0.5


def time_features(index: pd.PeriodIndex, freq: str | Frequency) -> np.ndarray:
    """Features `[len(index), F]` of each step's position in its cycles (see the table)."""
    kind = frequency(freq).kind
    if kind == "yearly":
        return np.zeros([len(index), 0], np.float32)
    timestamps = index.to_timestamp() if isinstance(index, pd.PeriodIndex) else index
    timestamps = pd.DatetimeIndex(timestamps)
    if kind == "hourly":
        columns = [_unit(timestamps.hour, 24), _unit(timestamps.dayofweek, 7)]
    elif kind == "daily":
        columns = [
            _unit(timestamps.dayofweek, 7),
            _unit(timestamps.day - 1, 31),
            _unit(timestamps.dayofyear - 1, 366),
        ]
    elif kind == "weekly":
        week = np.minimum(timestamps.isocalendar().week.to_numpy(np.int64), 52) - 1
        columns = [_unit(week, 52)]
    elif kind == "monthly":
        columns = [_unit(timestamps.month - 1, 12)]
    else:
        columns = [_unit(timestamps.quarter - 1, 4)]
    return np.stack(columns, axis=-1).astype(np.float32)
