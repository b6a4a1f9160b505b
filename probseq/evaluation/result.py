"""`EvaluationResult`: held-out likelihood of a text under an LSTM sequence model."""

from __future__ import annotations

import dataclasses

import numpy as np

from probseq.evaluation.metrics import bits_per_char, log_mean_exp, perplexity

__all__ = ["EvaluationResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Held-out negative log-likelihood of a text, in nats, bits and perplexity.

    Build it with `probseq.evaluation.evaluate`. All log-likelihoods are natural logs.

    Attributes:
      mode: `"windows"` (independent windows from a zero state), `"stream"` (the
        whole text as one sequence, or `num_streams` contiguous sequences) or
        `"dynamic"` (a stream scored by a model that learns from each segment after
        scoring it: `probseq.evaluation.dynamic_evaluate`).
      num_steps: window length `T` in characters.
      num_chars: number of characters scored (predicted).
      num_dropped_chars: characters not scored: the final partial window in windows mode
        (`(len(ids) - context) % num_steps`), 0 in stream mode.
      num_windows: windows scored (windows mode), None in stream mode.
      nll_nats_per_window: windows mode: mean over windows of the NLL summed over a
        window of `num_steps` characters (the text8 tutorial's metric). Stream mode:
        `nll_nats_per_char * num_steps`, the same per-character rate on the scale of a
        window, so the numbers are comparable.
      nll_nats_per_char: total NLL / `num_chars`.
      bits_per_char: `nll_nats_per_char / ln 2`.
      perplexity: `exp(nll_nats_per_char)`.
      total_log_prob_nats: sum of the scored log-likelihoods (`-nll_nats_per_char *
        num_chars`).
      window_log_prob_nats: float64 `[num_windows]` per-window log-likelihoods (with
        draws: the posterior-predictive `log mean_s p(x_w | w_s)`); None in stream mode.
      temperature: the temperature the logits were divided by (1.0 = none).
      num_streams: stream mode: number of independent contiguous streams (1 = the
        whole text as one sequence); None in windows mode.
      num_draws: `S` when the params had a leading draw dim, else None.
      window_log_prob_per_draw_nats: float64 `[S, num_windows]` pointwise
        log-likelihoods per draw (ArviZ `log_likelihood` layout); windows mode with
        draws only.
      total_log_prob_per_draw_nats: float64 `[S]` total log-likelihood per draw; with
        draws only.
      context: windows mode: characters of the text before each window read (not
        scored) before it, `log p(window | context)`; 0: every window from a zero state.
      dynamic: dynamic mode: its settings (`DynamicSettings` as a dict); else None.
    """

    mode: str
    num_steps: int
    num_chars: int
    num_dropped_chars: int
    num_windows: int | None
    nll_nats_per_window: float
    nll_nats_per_char: float
    bits_per_char: float
    perplexity: float
    total_log_prob_nats: float
    window_log_prob_nats: np.ndarray | None = None
    temperature: float = 1.0
    num_streams: int | None = None
    num_draws: int | None = None
    window_log_prob_per_draw_nats: np.ndarray | None = None
    total_log_prob_per_draw_nats: np.ndarray | None = None
    context: int = 0
    dynamic: dict | None = None

    def as_dict(self, include_pointwise: bool = False) -> dict:
        """JSON-ready dict of the scalar metrics (and per-draw totals, if any).

        Args:
          include_pointwise: also include the per-window arrays as lists (large for
            long texts: one float per window and draw).
        """
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                if field.name.startswith("window_") and not include_pointwise:
                    continue
                value = value.tolist()
            out[field.name] = value
        return out


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    array.setflags(write=False)
    return array


def _summary(total_log_prob_nats: float, num_chars: int, num_steps: int) -> dict:
    nll_per_char = -total_log_prob_nats / num_chars
    return dict(
        num_chars=num_chars,
        nll_nats_per_char=nll_per_char,
        bits_per_char=float(bits_per_char(nll_per_char)),
        perplexity=float(perplexity(nll_per_char)),
        total_log_prob_nats=total_log_prob_nats,
        num_steps=num_steps,
    )


def windows_result(
    log_probs: np.ndarray,
    num_steps: int,
    num_dropped_chars: int,
    temperature: float,
    context: int = 0,
) -> EvaluationResult:
    """Result from per-window log-likelihoods `[W]` or per-draw `[S, W]` (nats)."""
    per_draw = None
    if log_probs.ndim == 2:
        per_draw = log_probs
        log_probs = np.asarray(log_mean_exp(per_draw, axis=0))
    num_windows = log_probs.shape[0]
    total = float(np.sum(log_probs))
    return EvaluationResult(
        mode="windows",
        num_dropped_chars=num_dropped_chars,
        num_windows=num_windows,
        nll_nats_per_window=-total / num_windows,
        window_log_prob_nats=_frozen(log_probs),
        temperature=temperature,
        num_draws=None if per_draw is None else per_draw.shape[0],
        window_log_prob_per_draw_nats=None if per_draw is None else _frozen(per_draw),
        total_log_prob_per_draw_nats=None if per_draw is None else _frozen(per_draw.sum(1)),
        context=context,
        **_summary(total, num_windows * num_steps, num_steps),
    )


def stream_result(
    totals: np.ndarray, num_chars: int, num_steps: int, num_streams: int, temperature: float
) -> EvaluationResult:
    """Result from the total log-likelihood: scalar, or `[S]` per draw (nats)."""
    per_draw = None
    if totals.ndim == 1:
        per_draw = totals
        total = float(log_mean_exp(per_draw))
    else:
        total = float(totals)
    summary = _summary(total, num_chars, num_steps)
    return EvaluationResult(
        mode="stream",
        num_dropped_chars=0,
        num_windows=None,
        nll_nats_per_window=summary["nll_nats_per_char"] * num_steps,
        temperature=temperature,
        num_streams=num_streams,
        num_draws=None if per_draw is None else per_draw.shape[0],
        total_log_prob_per_draw_nats=None if per_draw is None else _frozen(per_draw),
        **summary,
    )
