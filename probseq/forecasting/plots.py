"""Fan charts: the history, the forecast's median and its quantile bands (PNG)."""

from __future__ import annotations

import os

from probseq.files import atomic_path
from probseq.forecasting.data import Series
from probseq.forecasting.model import ForecastResult

__all__ = ["fan_chart"]

BANDS = ((0.05, 0.95), (0.1, 0.9), (0.25, 0.75))


def fan_chart(
    series: Series,
    forecast: ForecastResult,
    path: str | os.PathLike,
    *,
    history: int | None = None,
    title: str | None = None,
) -> None:
    """Plot `history` values before the first window (default 4 windows' worth), every
    forecast window's 5-95%, 10-90% and 25-75% bands and median, and the true values
    where the series has them; write a PNG to `path` (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    horizon = forecast.samples.shape[-1]
    begins = forecast.index[0][0]
    first = series.index.get_loc(begins) if begins in series.index else len(series)
    history = 4 * horizon * max(1, len(forecast.index)) if history is None else history
    start = max(0, first - history)
    end = min(len(series), first + horizon * len(forecast.index))
    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    times = series.index[start:end].to_timestamp()
    ax.plot(times, series.values[start:end], color="black", lw=1.1, label="observed")
    levels = sorted({q for band in BANDS for q in band} | {0.5})
    quantiles = forecast.quantiles(levels)  # :: [Q, windows, H]
    at = {q: i for i, q in enumerate(levels)}
    for k, index in enumerate(forecast.index):
        steps = index.to_timestamp()
        for alpha, (low, high) in zip((0.18, 0.28, 0.4), BANDS, strict=True):
            ax.fill_between(
                steps,
                quantiles[at[low], k],
                quantiles[at[high], k],
                color="tab:blue",
                alpha=alpha,
                lw=0,
                label=f"{int(low * 100)}-{int(high * 100)}%" if k == 0 else None,
            )
        ax.plot(
            steps,
            quantiles[at[0.5], k],
            color="tab:blue",
            lw=1.3,
            label="median" if k == 0 else None,
        )
    ax.set_title(title or f"{series.name}: forecast")
    ax.legend(loc="upper left", fontsize=8, ncol=5, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
