"""`DeepARForecaster`: fit a `DeepAR` distribution to series, forecast sample paths.

Training follows GluonTS's DeepAR: random windows of `context_length + max(lags)` past
values and `prediction_length` future values cut from the training series, every step of
the context and the forecast scored (`DeepAR.window_log_prob`), maximum likelihood with
Adam (here on a warm-up/cosine schedule, through `probseq.inference.fit_map`). A
forecast is `num_samples` sample paths per window from one compiled loop; quantiles and
metrics are computed from them (`probseq.forecasting.metrics`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from probseq.checks import check_positive_int
from probseq.distributions import heads as heads_lib
from probseq.distributions.deepar import DeepAR, check_lags
from probseq.files import atomic_path
from probseq.forecasting.data import Series
from probseq.forecasting.features import default_lags, frequency, time_features
from probseq.inference.map import GaussianPrior, fit_map
from probseq.inference.schedules import warmup_cosine
from probseq.nn import RealValuedNetwork
from probseq.nn.cells import cell_param_shapes
from probseq.nn.params import ParamsSpec

__all__ = ["HEADS", "DeepARForecaster", "ForecastResult"]

HEADS = {
    "student_t": heads_lib.StudentT,
    "normal": heads_lib.Normal,
    "negative_binomial": heads_lib.NegativeBinomial,
}
_MIN_WINDOWS = 16  # training windows a series must give at least (lags are capped to keep them)


@dataclasses.dataclass(frozen=True)
class ForecastResult:
    """Sample paths `[num_samples, windows, H]` and the periods they are for."""

    samples: np.ndarray
    index: list  # one PeriodIndex of length H per window

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """`[len(levels), windows, H]` quantiles of the sample paths."""
        return np.quantile(self.samples, list(levels), axis=0)

    @property
    def median(self) -> np.ndarray:
        return np.median(self.samples, axis=0)


class DeepARForecaster:
    """A DeepAR model for one or more series of one frequency.

    Args:
      prediction_length: `H`, steps to forecast.
      context_length: past steps the network reads before forecasting (default `H`, as
        GluonTS's DeepAR).
      head: `"student_t"` (default), `"normal"` or `"negative_binomial"` (counts).
      lags: lagged values each step reads (default: `default_lags(freq)`, capped so that
        the training series still gives `16` windows).
      use_time_features: read the position of each step in its season (month of year,
        ...; see `probseq.forecasting.features`).
      hidden_size, num_layers, cell: the recurrent network.
      num_steps, batch_size, learning_rate: optimizer steps, windows per step, peak
        learning rate of the warm-up/cosine schedule.
      prior_scale: None (maximum likelihood) or the scale of a `N(0, s)` prior on every
        weight (MAP; the prior weighs against the number of training windows).
      ensemble_size: `K` networks from different initializations trained side by side on
        the same windows (one compiled step: their weights are a param batch `[K]`); the
        forecast is their equal-weight mixture (paths drawn round robin, `log_prob` the
        log of the mean density).
      num_samples: sample paths per forecast window.
      seed: initialization, window order and sampling seed.
    """

    def __init__(
        self,
        prediction_length: int,
        *,
        context_length: int | None = None,
        head: str = "student_t",
        lags: Sequence[int] | None = None,
        use_time_features: bool = True,
        hidden_size: int = 40,
        num_layers: int = 2,
        cell: str = "lstm",
        num_steps: int = 1500,
        batch_size: int = 32,
        learning_rate: float = 1e-3,
        prior_scale: float | None = None,
        ensemble_size: int = 4,
        num_samples: int = 200,
        seed: int = 0,
    ):
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}.")
        prediction_length, hidden_size, num_layers, num_steps, batch_size, num_samples = (
            check_positive_int(name, value)
            for name, value in (
                ("prediction_length", prediction_length),
                ("hidden_size", hidden_size),
                ("num_layers", num_layers),
                ("num_steps", num_steps),
                ("batch_size", batch_size),
                ("num_samples", num_samples),
            )
        )
        ensemble_size = check_positive_int("ensemble_size", ensemble_size)
        if context_length is not None:
            context_length = check_positive_int("context_length", context_length)
        if prior_scale is not None and not prior_scale > 0:
            raise ValueError(f"prior_scale must be None or > 0, got {prior_scale!r}.")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}.")
        self.config = dict(
            prediction_length=prediction_length,
            context_length=context_length or prediction_length,
            head=head,
            lags=None if lags is None else list(check_lags(lags)),
            use_time_features=bool(use_time_features),
            hidden_size=hidden_size,
            num_layers=num_layers,
            cell=cell,
            num_steps=num_steps,
            batch_size=batch_size,
            learning_rate=float(learning_rate),
            prior_scale=None if prior_scale is None else float(prior_scale),
            ensemble_size=ensemble_size,
            num_samples=num_samples,
            seed=int(seed),
        )
        self.network = None  # sizes and cell (member 0's weights, as constants)
        self.members = None  # the K members' weights, leaves [K] + core
        self.freq = None
        self.fit_result = None
        self.train_seconds = None

    # ------------------------------------------------------------------ helpers
    @property
    def head(self):
        return HEADS[self.config["head"]]()

    @property
    def lags(self) -> tuple[int, ...]:
        if self.config["lags"] is None:
            raise RuntimeError("the lags are chosen by fit(); fit the forecaster first.")
        return tuple(self.config["lags"])

    @property
    def _history(self) -> int:
        """Past values a window needs: the context and the largest lag before it."""
        return self.config["context_length"] + max(self.lags)

    def _features(self, series: Series, start: int, stop: int) -> np.ndarray:
        """Time features of positions `start..stop-1` (past the end: the future index)."""
        if not self.config["use_time_features"]:
            return np.zeros([stop - start, 0], np.float32)
        n = len(series)
        index = series.index[max(start, 0) : min(stop, n)]
        if stop > n:
            index = index.append(series.future_index(stop - n))
        return time_features(index, self.freq)

    def _choose_lags(self, series: Sequence[Series]) -> None:
        h, c = self.config["prediction_length"], self.config["context_length"]
        shortest = min(len(s) for s in series)
        room = shortest - c - h - _MIN_WINDOWS + 1  # largest lag that keeps the windows
        if room < 1:
            raise ValueError(
                f"the shortest training series has {shortest} values; a context of {c} and "
                f"a forecast of {h} need at least {c + h + _MIN_WINDOWS} (for "
                f"{_MIN_WINDOWS} training windows). Use a shorter context_length."
            )
        if self.config["lags"] is None:
            self.config["lags"] = list(default_lags(self.freq, max_lag=room))
        elif max(self.config["lags"]) > room:
            raise ValueError(
                f"lag {max(self.config['lags'])} needs more history than the shortest "
                f"training series ({shortest} values) has for {_MIN_WINDOWS} windows; the "
                f"largest lag it allows is {room}."
            )

    def _windows(self, series: Sequence[Series]):
        """All training windows: past `[W, history]`, future `[W, H]`, features."""
        h, m = self.config["prediction_length"], self._history
        past, future, feats = [], [], []
        for s in series:
            values = s.values.astype(np.float32)
            features = self._features(s, 0, len(s))
            for end in range(m, len(s) - h + 1):
                past.append(values[end - m : end])
                future.append(values[end : end + h])
                feats.append(features[end - m : end + h])
        return np.stack(past), np.stack(future), np.stack(feats)

    def _distribution(self, past, feats) -> DeepAR:
        """The members' forecast distributions of the windows: batch `[K, windows]`."""
        params = tf.nest.map_structure(lambda p: p[:, None], self.members.params)
        return DeepAR(
            self.network,
            past,
            self.config["prediction_length"],
            self.head,
            lags=self.lags,
            context_length=self.config["context_length"],
            time_features=feats if feats.shape[-1] else None,
            params=params,
        )

    # ----------------------------------------------------------------------- fit
    def fit(self, series: Series | Sequence[Series], *, callbacks=()) -> DeepARForecaster:
        """Fit to the series (one frequency); returns self."""
        series = [series] if isinstance(series, Series) else list(series)
        if not series:
            raise ValueError("fit needs at least one series.")
        freqs = {s.freq.alias for s in series}
        if len(freqs) > 1:
            raise ValueError(f"the series have different frequencies {sorted(freqs)}.")
        self.freq = series[0].freq
        if self.config["head"] == "negative_binomial":
            for s in series:
                if (s.values < 0).any() or (s.values != np.round(s.values)).any():
                    raise ValueError(
                        f"series {s.name!r} is not counts (negative or fractional values); "
                        "a negative_binomial head needs non-negative integers."
                    )
        self._choose_lags(series)
        past, future, feats = self._windows(series)
        seed = self.config["seed"]
        self._build(len(self.lags) + feats.shape[-1] + 1)
        dataset = (
            tf.data.Dataset.from_tensor_slices((past, future, feats))
            .shuffle(len(past), seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(self.config["batch_size"], drop_remainder=True)
            .prefetch(2)
        )
        steps = self.config["num_steps"]
        prior_scale = self.config["prior_scale"]
        scale = float(self.config["context_length"] + self.config["prediction_length"])

        def log_likelihood(batch):  # the members' mean, so each gets its own loss's gradient
            past, future, feats = batch
            members = self._distribution(past, feats).window_log_prob(future)  # :: [K, B]
            return tf.reduce_mean(members, axis=0) / scale

        start = time.perf_counter()
        self.fit_result = fit_map(
            self.members,
            dataset,
            num_examples=len(past),
            num_steps=steps,
            prior=None if prior_scale is None else GaussianPrior(prior_scale),
            learning_rate=warmup_cosine(
                self.config["learning_rate"],
                warmup_steps=max(1, steps // 20),
                max_steps=steps,
                min_fraction=0.05,
            ),
            clip_norm=10.0,
            callbacks=callbacks,
            log_likelihood_fn=log_likelihood,
        )
        self.train_seconds = time.perf_counter() - start
        return self

    def _build(self, input_size: int, weights: dict | None = None) -> None:
        """`self.members` (variables, or constants from `weights` with leaves [K] + core)
        and `self.network`, the template giving sizes and cell."""
        sizes = (input_size, self.config["hidden_size"], self.config["num_layers"])
        options = dict(output_size=self.head.num_params, cell=self.config["cell"])
        if weights is None:
            seed = self.config["seed"]
            nets = [
                RealValuedNetwork(*sizes, **options, seed=(seed, k))
                for k in range(self.config["ensemble_size"])
            ]
            stacked = tf.nest.map_structure(
                lambda *leaves: tf.stack([tf.convert_to_tensor(x) for x in leaves]),
                *[net.params for net in nets],
            )
            self.members = _Members(tf.nest.map_structure(tf.Variable, stacked))
        else:
            self.members = _Members(tf.nest.map_structure(tf.constant, weights))
        first = tf.nest.map_structure(lambda p: tf.convert_to_tensor(p)[0], self.members.params)
        self.network = RealValuedNetwork(*sizes, **options, params=first)

    # ------------------------------------------------------------------ forecast
    def _check_fitted(self):
        if self.network is None:
            raise RuntimeError("the forecaster is not fitted; call fit() or load() first.")

    def _inputs(self, series: Series, origins: Sequence[int]):
        h, m = self.config["prediction_length"], self._history
        past, feats = [], []
        for origin in origins:
            if not m <= origin <= len(series):
                raise ValueError(
                    f"a forecast from position {origin} of {series.name!r} needs {m} values "
                    f"of history before it (context {self.config['context_length']} + largest "
                    f"lag {max(self.lags)}) and an origin <= {len(series)}."
                )
            past.append(series.values[origin - m : origin].astype(np.float32))
            feats.append(self._features(series, origin - m, origin + h))
        return np.stack(past), np.stack(feats)

    def forecast(
        self,
        series: Series,
        origins: Sequence[int] | None = None,
        *,
        num_samples: int | None = None,
        seed=None,
    ) -> ForecastResult:
        """Sample paths of the `H` values after each origin (default: after the end).

        Args:
          series: the history (values up to each origin are read; later ones are not).
          origins: positions to forecast from (window `k` covers `origins[k] .. + H`).
          num_samples: paths per window (default the config's).
          seed: sampling seed (default the config's seed).
        """
        self._check_fitted()
        if series.freq.alias != self.freq.alias:
            raise ValueError(
                f"series {series.name!r} is {series.freq.kind}; the model was fitted to "
                f"{self.freq.kind} series."
            )
        origins = [len(series)] if origins is None else [int(o) for o in origins]
        past, feats = self._inputs(series, origins)
        n = num_samples or self.config["num_samples"]
        seed = self.config["seed"] if seed is None else seed
        k = self.config["ensemble_size"]
        per_member = -(-n // k)
        paths = _sample(self._distribution(past, feats), per_member, seed)  # :: [m, K, W, H]
        samples = paths.reshape((per_member * k, *paths.shape[2:]))[:n]  # members round robin
        h = self.config["prediction_length"]
        index = []
        for o in origins:
            index.append(series.future_index(h, end=o))
        return ForecastResult(samples, index)

    def log_prob(self, series: Series, origins: Sequence[int]) -> np.ndarray:
        """`log p(held-out window | history)` in nats, one per origin."""
        self._check_fitted()
        h = self.config["prediction_length"]
        past, feats = self._inputs(series, origins)
        future = np.stack([series.values[o : o + h] for o in origins]).astype(np.float32)
        if future.shape[-1] != h:
            raise ValueError(f"every origin needs {h} values after it to score.")
        members = self._distribution(past, feats).log_prob(future)  # :: [K, W]
        k = self.config["ensemble_size"]
        return (tf.reduce_logsumexp(members, axis=0) - np.log(k)).numpy()

    # ---------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike) -> None:
        """Write `config.json` and `weights.npz` into the directory `path`."""
        self._check_fitted()
        os.makedirs(path, exist_ok=True)
        spec = ParamsSpec.of(self.network.params)  # leaf names: "layer_0/input_kernel", ...
        leaves = [np.asarray(leaf) for leaf in spec.flatten(self.members.params)]
        with atomic_path(os.path.join(path, "weights.npz")) as tmp, open(tmp, "wb") as f:
            np.savez(f, **dict(zip(spec.names, leaves, strict=True)))
        meta = dict(self.config, freq=self.freq.alias, input_size=self.network.input_size)
        with atomic_path(os.path.join(path, "config.json")) as tmp, open(tmp, "w") as f:
            json.dump(meta, f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DeepARForecaster:
        """A forecaster written by `save`."""
        with open(os.path.join(path, "config.json")) as f:
            meta = json.load(f)
        freq, input_size = meta.pop("freq"), meta.pop("input_size")
        lags = meta.pop("lags")
        model = cls(**meta, lags=lags)
        model.freq = frequency(freq)
        spec = ParamsSpec(
            cell_param_shapes(
                input_size,
                meta["hidden_size"],
                meta["num_layers"],
                cell=meta["cell"],
                output_size=model.head.num_params,
            )
        )
        with np.load(os.path.join(path, "weights.npz")) as weights:
            model._build(input_size, spec.pack([weights[name] for name in spec.names]))
        return model


class _Members(tf.Module):
    """The ensemble's weights: a params structure whose leaves are `[K] + core`."""

    def __init__(self, params: dict):
        super().__init__(name="deepar_members")
        self.params = params


@tf.function(reduce_retracing=True)
def _sample_paths(distribution, n, seed):
    return distribution.sample(n, seed=seed)


def _sample(distribution, n: int, seed) -> np.ndarray:
    from probseq.seeds import stateless_seed

    return _sample_paths(distribution, tf.constant(n), stateless_seed(seed)).numpy()
