"""ArviZ conversion of pointwise held-out log-likelihoods, and model comparison.

`to_inference_data(result, ids)` turns a windows-mode evaluation into an
`arviz.InferenceData` with three groups (a point estimate has `point_estimate` instead
of `posterior`, see below):

* `log_likelihood`: variable `windows`, dims `(chain, draw, window)`: `log p(x_w | w_s)`
  in nats for every held-out window `x_w` (`num_steps` characters, scored from a zero
  state) and every posterior draw `w_s` (one chain: the draws are iid from `q`).
* `observed_data`: variable `windows`, dims `(window, step)`: the scored windows as
  token ids.
* `posterior`: a few scalar summaries per draw, not the weights (one draw has ~10^5-10^6
  of them): `l2_norm_<group>_<leaf>` (Frobenius norm of every weight matrix and bias),
  `output_bias` (dims `(chain, draw, symbol)`) and `held_out_log_lik` (sum over windows
  of the draw's log-likelihood). They let `az.summary` / `az.plot_trace` show how much
  the draws differ; `az.loo` needs the group to exist.

How a point estimate (MAP / maximum likelihood) enters. It has no posterior. It is stored
honestly as ONE draw (`attrs["point_estimate"] = 1`), not as `S` identical copies: with
copies `az.loo` "works" but returns `p_loo = 0` and Pareto `k = inf` (degenerate
importance ratios), and with one draw PSIS is undefined (arviz 0.23 smooths the largest
`ceil(S / 5)` importance ratios and, for `S = 1`, indexes past the end of the sorted
ratios: a bare `IndexError`). Use `elpd(idata)` / `compare_models` instead of calling
`az.loo` on it: for a point estimate they return the *plug-in* log predictive density
`sum_w log p(x_w | w_hat)` as an `ELPDData` (`p_loo = 0`, Pareto k = NaN, `n_samples =
1`), which is what the point estimate predicts, with no leave-one-out correction. So that
a direct `az.loo` / `az.compare` says this, the point estimate's weight summaries are in
a `point_estimate` group (there is no `posterior` group), and the returned object, an
`az.InferenceData` subclass, raises a `TypeError` naming `compare_models` and `elpd` when
its `posterior` is asked for, which `az.loo` does before PSIS (unless given `reff=`). A
plain `InferenceData` of the same groups (for example `az.from_netcdf` of a saved one)
has no `posterior` either, so `az.loo` fails with arviz's own `TypeError` ("Must be able
to extract a posterior group"). `elpd` and `compare_models` work on both.

What `az.loo` means on held-out windows. PSIS-LOO is designed for the data the posterior
was fitted to. On held-out windows (which the posterior never saw), its importance
reweighting by `1 / p(x_w | w_s)` turns the average over draws into a harmonic mean, so
`elpd_loo <= lpd = sum_w log (1/S) sum_s p(x_w | w_s)`, the directly estimated held-out
log predictive density; the gap is about `p_loo`, which here measures how much the draws
disagree on a window. `compare_models` therefore also reports `lpd` (the number to quote
for held-out data; it equals `-evaluation.nll_nats_per_window * W`), and `elpd_loo` is
the conservative alternative with Pareto-k diagnostics. The Pareto k of a window still
says whether `S` draws suffice for its importance weights; arviz flags `k > min(1 -
1/log10(S), 0.7)`, i.e. `> 0.17` for `S = 16` and `> 0.5` for `S = 100`: use `S >= 100`
draws when the diagnostics matter. With one chain arviz fits the Pareto tail to the
largest `ceil(S / 5)` ratios only when there are at least 5 of them, so for `S <= 20`
every k is `inf` and every window is flagged; `to_inference_data` warns about it.
Passing *training* windows instead gives a genuine PSIS-LOO estimate of out-of-sample
accuracy from in-sample data (then a point estimate's plug-in value is optimistic, since
it was fitted to those windows).

ArviZ 1.x (Python >= 3.12) splits into `arviz-base` (data), `arviz-stats` (diagnostics)
and `arviz-plots`; there is no `InferenceData` class: `arviz_base.from_dict` takes one
dict of groups (`{"posterior": {...}, "log_likelihood": {...}, "observed_data": {...}}`)
and returns an `xarray.DataTree`, and `loo` / `compare` live in `arviz_stats` (with a
different `ELPDData` and no `ic=` argument). To port this module, build the same three
groups with `arviz_base.from_dict`, call `arviz_stats.loo` / `compare`, and construct
the point-estimate entry with `arviz_stats`' own `ELPDData`. probseq pins arviz 0.23
(the last 0.x line) because it supports Python 3.11.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from probseq.evaluation.metrics import log_mean_exp
from probseq.evaluation.posterior import PosteriorEvaluation, weight_summaries
from probseq.evaluation.result import EvaluationResult

if TYPE_CHECKING:  # arviz (and pandas, xarray) are imported lazily: they are slow to load.
    import arviz as az
    import pandas as pd

__all__ = ["compare_models", "elpd", "lpd", "to_inference_data"]

_VAR = "windows"
_SCALE_FACTOR = {"log": 1.0, "negative_log": -1.0, "deviance": -2.0}
_POINT_GROUP = "point_estimate"
# arviz 0.23's PSIS (one chain) fits a Pareto tail to the largest ceil(S / 5) importance
# ratios only if there are at least 5, i.e. S >= 21; its k threshold reaches 0.5 at S = 100.
_MIN_PSIS_DRAWS = 21
_RECOMMENDED_DRAWS = 100


def _windows_of(ids, num_steps: int, num_windows: int) -> np.ndarray:
    array = np.asarray(ids.numpy() if hasattr(ids, "numpy") else ids)
    if array.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {list(array.shape)}.")
    if array.size // num_steps != num_windows:
        raise ValueError(
            f"ids of length {array.size} give {array.size // num_steps} windows of "
            f"{num_steps}, but the result scored {num_windows}; pass the ids it was "
            "evaluated on."
        )
    return array[: num_windows * num_steps].reshape(num_windows, num_steps).astype(np.int64)


def to_inference_data(
    result: PosteriorEvaluation | EvaluationResult,
    ids,
    *,
    params: Mapping | None = None,
    name: str | None = None,
) -> az.InferenceData:
    """`az.InferenceData` with `posterior`, `log_likelihood` and `observed_data` groups.

    Args:
      result: a windows-mode `PosteriorEvaluation` (from `posterior_predictive`: `S`
        draws), or a windows-mode `EvaluationResult` either with draws (`evaluate(...,
        params=draws)`) or of a point estimate (stored as one draw, see the module
        docstring).
      ids: the 1-D token ids the result was evaluated on (`[N]`).
      params: optional params for the weight summaries of an `EvaluationResult`: the
        point estimate's params (no leading dim) or the `[S]` draws it was scored with.
      name: model name stored in `attrs["model"]`.

    Returns:
      InferenceData with `log_likelihood.windows :: [1, S, W]` (nats), `observed_data.
      windows :: [W, T]` (ids), `posterior` summaries `[1, S]` (`output_bias` `[1, S, V]`)
      and attrs `point_estimate` (0/1), `num_steps`, `num_draws`, `seed` (if any),
      `kind`. For a point estimate (`S = 1`) the summaries are in a `point_estimate` group
      instead and asking for `posterior` raises a `TypeError` (so does `az.loo` on it):
      use `elpd` / `compare_models`.

    Raises:
      ValueError: for a stream-mode result (no pointwise log-likelihoods) or ids that do
        not match the result.

    Warns:
      UserWarning: a posterior with `S <= 20` draws, naming `S`: PSIS-LOO cannot
        estimate any Pareto k from so few (all are `inf`); use `S >= 100`.
    """
    import arviz as az

    attrs: dict = {"model": name or "", "units": "nats"}
    if isinstance(result, PosteriorEvaluation):
        evaluation = result.predictive
        summaries = dict(result.draw_summaries)
        attrs.update(kind="variational_posterior", seed=str(result.seed))
    elif isinstance(result, EvaluationResult):
        evaluation = result
        summaries = {}
        if params is not None:
            params = {g: dict(v.items()) for g, v in params.items()}
            if result.num_draws is None:  # a point estimate: add a draw dim of 1
                params = {
                    g: {k: np.asarray(v)[None] for k, v in d.items()} for g, d in params.items()
                }
            summaries = weight_summaries(params)
        attrs.update(kind="point_estimate" if result.num_draws is None else "posterior_draws")
    else:
        raise TypeError(
            f"result must be a PosteriorEvaluation or an EvaluationResult, got {type(result)}."
        )
    if evaluation.mode != "windows":
        raise ValueError(
            "ArviZ needs pointwise log-likelihoods: evaluate in mode='windows' (stream mode "
            "has one total per draw)."
        )
    if evaluation.num_draws is None:
        log_lik = np.asarray(evaluation.window_log_prob_nats)[None]  # :: [1, W]
    else:
        log_lik = np.asarray(evaluation.window_log_prob_per_draw_nats)  # :: [S, W]
    num_draws, num_windows = log_lik.shape
    for key, value in summaries.items():
        if np.shape(value)[0] != num_draws:
            raise ValueError(
                f"summary {key!r} has {np.shape(value)[0]} draws, the log-likelihood {num_draws}."
            )
    summaries["held_out_log_lik"] = log_lik.sum(axis=1)
    windows = _windows_of(ids, evaluation.num_steps, num_windows)
    point_estimate = evaluation.num_draws is None
    attrs.update(
        point_estimate=int(point_estimate),
        num_steps=evaluation.num_steps,
        num_draws=num_draws,
    )
    if not point_estimate and num_draws < _MIN_PSIS_DRAWS:
        label = f"model {name!r}" if name else "this posterior"
        warnings.warn(
            f"{label} has only {num_draws} posterior draws: PSIS-LOO "
            f"(az.loo, az.compare, compare_models) cannot estimate Pareto k from "
            f"{_MIN_PSIS_DRAWS - 1} or fewer draws, so every k is inf and every window is "
            f"flagged. Use >= {_RECOMMENDED_DRAWS} draws (num_draws=) for elpd_loo and its "
            "diagnostics; lpd() needs no Pareto fit.",
            UserWarning,
            stacklevel=2,
        )
    idata = _from_dict(az, summaries, log_lik, windows, attrs)
    if point_estimate:
        groups = {_POINT_GROUP if g == "posterior" else g: idata[g] for g in idata.groups()}
        return _point_estimate_class()(**groups)
    return idata


@functools.cache
def _point_estimate_class() -> type:
    """The `az.InferenceData` subclass of a point estimate, defined when arviz is loaded."""
    import arviz as az

    class _PointEstimateInferenceData(az.InferenceData):
        """A point estimate's InferenceData: no `posterior`, so no `az.loo`.

        Only a missing attribute reaches `__getattr__`, and `posterior` is always missing
        (the summaries are in `point_estimate`). `hasattr` propagates anything but an
        `AttributeError`, so `az.loo`'s `hasattr(idata, "posterior")` raises this
        `TypeError` before PSIS runs (`az.loo(idata, reff=...)` skips that check).
        """

        def __getattr__(self, name: str):
            if name == "posterior":
                raise TypeError(
                    "this InferenceData holds a point estimate (one draw), which has no "
                    "posterior: az.loo / az.compare (PSIS-LOO) need posterior draws. Use "
                    "probseq.evaluation.compare_models (which also takes posteriors) or "
                    "probseq.evaluation.elpd for its plug-in log predictive density; its "
                    f"weight summaries are in the {_POINT_GROUP!r} group."
                )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    _PointEstimateInferenceData.__qualname__ = "_PointEstimateInferenceData"
    return _PointEstimateInferenceData


def __getattr__(name: str):
    """Module attribute `_PointEstimateInferenceData` (PEP 562), so that pickle finds it."""
    if name == "_PointEstimateInferenceData":
        return _point_estimate_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _from_dict(az, summaries: dict, log_lik: np.ndarray, windows: np.ndarray, attrs: dict):
    """Two `az.from_dict` calls: `windows` has different dims in the two groups."""
    num_windows = log_lik.shape[1]
    coords = {"window": np.arange(num_windows), "step": np.arange(windows.shape[1])}
    posterior = az.from_dict(
        posterior={k: np.asarray(v)[None] for k, v in summaries.items()},
        log_likelihood={_VAR: log_lik[None]},
        coords=coords,
        dims={_VAR: ["window"], "output_bias": ["symbol"]},
    )
    observed = az.from_dict(
        observed_data={_VAR: windows}, coords=coords, dims={_VAR: ["window", "step"]}
    )
    posterior.extend(observed)
    for group in posterior.groups():
        posterior[group].attrs.update({k: v for k, v in attrs.items() if v is not None})
    return posterior


def _is_point_estimate(idata) -> bool:
    return bool(int(idata.log_likelihood.attrs.get("point_estimate", 0)))


def _log_lik(idata) -> np.ndarray:
    """Pointwise log-likelihoods `[chain * draw, W]` from the `log_likelihood` group."""
    values = idata.log_likelihood[_VAR].values  # :: [C, S, W]
    return values.reshape(-1, values.shape[-1])


def lpd(idata: az.InferenceData) -> float:
    """Held-out log pointwise predictive density `sum_w log (1/S) sum_s p(x_w | w_s)` (nats).

    For a point estimate (one draw) it is the plug-in `sum_w log p(x_w | w_hat)`.
    """
    return float(np.sum(log_mean_exp(_log_lik(idata), axis=0)))


def elpd(idata: az.InferenceData, *, ic: str = "loo", scale: str = "log"):
    """`az.loo` / `az.waic` (pointwise) for a posterior; the plug-in value for a point estimate.

    Args:
      idata: from `to_inference_data`.
      ic: `"loo"` (PSIS-LOO, with Pareto k) or `"waic"`.
      scale: `"log"`, `"negative_log"` or `"deviance"` (arviz's scales).

    Returns:
      An arviz `ELPDData` (pointwise). For a point estimate: `elpd = sum_w log p(x_w |
      w_hat)` (scaled), `se = sqrt(W var_w)`, `p = 0`, `n_samples = 1`, Pareto k NaN
      (no importance sampling happened), `warning = False`.
    """
    import arviz as az
    import xarray as xr
    from arviz.stats.stats_utils import ELPDData

    if ic not in ("loo", "waic"):
        raise ValueError(f"ic must be 'loo' or 'waic', got {ic!r}.")
    if scale not in _SCALE_FACTOR:
        raise ValueError(f"scale must be one of {sorted(_SCALE_FACTOR)}, got {scale!r}.")
    if not _is_point_estimate(idata):
        function = az.loo if ic == "loo" else az.waic
        return function(idata, pointwise=True, var_name=_VAR, scale=scale)
    log_lik = _log_lik(idata)
    if log_lik.shape[0] != 1:
        raise ValueError("a point-estimate InferenceData must hold exactly one draw.")
    pointwise = _SCALE_FACTOR[scale] * log_lik[0].astype(np.float64)  # :: [W]
    num_windows = pointwise.size
    total = float(pointwise.sum())
    se = math.sqrt(num_windows * float(np.var(pointwise)))
    pointwise_da = xr.DataArray(
        pointwise, dims=["window"], coords={"window": np.arange(num_windows)}
    )
    if ic == "loo":
        pareto_k = xr.DataArray(np.full(num_windows, np.nan), dims=["window"])
        return ELPDData(
            data=[total, se, 0.0, 1, num_windows, False, pointwise_da, pareto_k, scale, 0.7],
            index=[
                "elpd_loo",
                "se",
                "p_loo",
                "n_samples",
                "n_data_points",
                "warning",
                "loo_i",
                "pareto_k",
                "scale",
                "good_k",
            ],
        )
    return ELPDData(
        data=[total, se, 0.0, 1, num_windows, False, pointwise_da, scale],
        index=[
            "elpd_waic",
            "se",
            "p_waic",
            "n_samples",
            "n_data_points",
            "warning",
            "waic_i",
            "scale",
        ],
    )


def compare_models(
    models: Mapping[str, az.InferenceData], *, ic: str = "loo", scale: str = "log"
) -> pd.DataFrame:
    """`az.compare` of fitted models (posteriors and point estimates) on the same windows.

    Args:
      models: `{name: InferenceData}` from `to_inference_data`, all on the same windows.
      ic: `"loo"` or `"waic"`; point estimates always enter with their plug-in value.
      scale: arviz scale (`"log"`: higher is better).

    Returns:
      arviz's comparison table (`rank`, `elpd_<ic>`, `p_<ic>`, `elpd_diff`, `weight`,
      `se`, `dse`, `warning`, `scale`) plus: `elpd_method` (`"psis_loo"`, `"waic"` or
      `"plug_in"`), `lpd` (the direct held-out log predictive density, nats, see the
      module docstring), `num_draws`, `pareto_k_max` and `num_pareto_k_bad` (windows with
      `k > good_k`; NaN unless PSIS-LOO was used).
    """
    import arviz as az

    if len(models) < 2:
        raise ValueError("compare_models needs at least two models.")
    windows = {name: idata.observed_data[_VAR].shape for name, idata in models.items()}
    if len(set(windows.values())) != 1:
        raise ValueError(f"all models must be scored on the same windows, got {windows}.")
    elpds = {name: elpd(idata, ic=ic, scale=scale) for name, idata in models.items()}
    table = az.compare(elpds, ic=ic, scale=scale)
    for name in table.index:
        idata, data = models[name], elpds[name]
        point = _is_point_estimate(idata)
        table.loc[name, "elpd_method"] = (
            "plug_in" if point else ("psis_loo" if ic == "loo" else "waic")
        )
        table.loc[name, "lpd"] = lpd(idata)
        table.loc[name, "num_draws"] = int(_log_lik(idata).shape[0])
        if ic == "loo" and not point:
            k = np.asarray(data["pareto_k"])
            table.loc[name, "pareto_k_max"] = float(np.max(k))
            table.loc[name, "num_pareto_k_bad"] = int(np.sum(k > float(data["good_k"])))
        else:
            table.loc[name, "pareto_k_max"] = np.nan
            table.loc[name, "num_pareto_k_bad"] = np.nan
    return table
