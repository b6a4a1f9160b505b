"""Held-out evaluation of a variational posterior: predictive, plug-in and ELBO bound.

`posterior_predictive(surrogate, ids)` draws `S` weight structures from the surrogate,
scores the text under all of them in one batched pass (`evaluate(..., params=draws)`,
the draws on a leading params dim) and reports three differently-defined numbers, each
labelled in the result:

* **predictive** (the headline number): the Monte Carlo posterior predictive,
  `log p(x_w | D) ~= log (1/S) sum_s p(x_w | w_s)` per window (windows mode) or for the
  whole text (stream mode), with `S` and the seed stated. For finite `S` it is a
  *downward-biased* estimate of `log E_q[p(x | w)]` (Jensen), converging as `S` grows.
* **plug-in**: the likelihood at the posterior mean `E_q[w]` (one network, no
  averaging), the number a point estimate would report.
* **ELBO bound**: `E_q[log p(x | w)] - KL(q || p) / N_train` per character, the training
  objective evaluated on held-out text (`E_q[log p(x | w)]` alone, `expected_log_prob`,
  lower-bounds the log predictive by Jensen; subtracting the per-character KL gives the
  per-character ELBO of a model whose KL is spread over the `N_train` training
  characters). It is a bound, not an estimate of held-out likelihood.

The per-draw weight summaries (L2 norm of every params leaf, the output bias) of the same
draws are kept for the ArviZ `posterior` group (`probseq.evaluation.arviz_io`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.evaluation.evaluate import evaluate
from probseq.evaluation.metrics import bits_per_char
from probseq.evaluation.result import EvaluationResult

__all__ = ["PosteriorEvaluation", "posterior_predictive", "weight_summaries"]

LABELS = {
    "predictive": "Monte Carlo posterior predictive -log (1/S) sum_s p(x | w_s), w_s ~ q "
    "(downward-biased in log p for finite S)",
    "plug_in": "plug-in likelihood at the posterior mean E_q[w] (no averaging over q)",
    "expected_log_prob": "E_q[log p(x | w)] (Monte Carlo over the same S draws): a lower "
    "bound on the log predictive (Jensen)",
    "elbo_bound": "ELBO-style bound: E_q[log p(x | w)] - KL(q || p) / N_train_chars, the "
    "training objective on held-out text; a bound, not a held-out likelihood",
}


@dataclasses.dataclass(frozen=True, eq=False)
class PosteriorEvaluation:
    """Held-out metrics of a variational posterior (see the module docstring).

    Attributes:
      predictive: `EvaluationResult` of the Monte Carlo posterior predictive over `S`
        draws (its per-draw arrays hold the pointwise log-likelihoods `[S, W]` in
        windows mode and the per-draw totals `[S]`).
      plug_in: `EvaluationResult` at the posterior mean.
      num_draws: `S`.
      seed: the seed the draws were made with (an int, or the pair given).
      expected_log_prob_nats_per_char: `E_q[log p(x | w)] / num_chars` (nats, <= the
        predictive log-likelihood per char up to Monte Carlo error).
      kl_nats: `KL(q || p)` in nats for all weights, or None without a prior.
      kl_method: `"closed_form"`, `"monte_carlo"` (over the same `S` draws) or None.
      num_train_chars: characters the KL is spread over (`N_train * T_train`), or None.
      elbo_bound_nats_per_char: `expected_log_prob_nats_per_char - kl_nats /
        num_train_chars` (None unless both are known).
      draw_summaries: per-draw weight summaries `name -> [S, ...]` of the same draws.
      labels: what each reported number is (`LABELS`).
    """

    predictive: EvaluationResult
    plug_in: EvaluationResult
    num_draws: int
    seed: Any
    expected_log_prob_nats_per_char: float
    kl_nats: float | None
    kl_method: str | None
    num_train_chars: int | None
    elbo_bound_nats_per_char: float | None
    draw_summaries: dict[str, np.ndarray]
    labels: dict[str, str] = dataclasses.field(default_factory=lambda: dict(LABELS))

    @property
    def mode(self) -> str:
        """`"windows"` or `"stream"`."""
        return self.predictive.mode

    @property
    def predictive_bits_per_char(self) -> float:
        """Bits/char of the Monte Carlo posterior predictive."""
        return self.predictive.bits_per_char

    @property
    def plug_in_bits_per_char(self) -> float:
        """Bits/char at the posterior mean."""
        return self.plug_in.bits_per_char

    @property
    def expected_nll_bits_per_char(self) -> float:
        """`-E_q[log p(x | w)]` in bits/char (>= the predictive's, up to MC error)."""
        return float(bits_per_char(-self.expected_log_prob_nats_per_char))

    @property
    def elbo_bound_bits_per_char(self) -> float | None:
        """Negative ELBO bound in bits/char (an upper bound-style number; None if unknown)."""
        if self.elbo_bound_nats_per_char is None:
            return None
        return float(bits_per_char(-self.elbo_bound_nats_per_char))

    def as_dict(self, include_pointwise: bool = False) -> dict:
        """JSON-ready dict: the labelled summary numbers and both evaluation results."""
        return {
            "mode": self.mode,
            "num_draws": self.num_draws,
            "seed": self.seed,
            "predictive": self.predictive.as_dict(include_pointwise),
            "plug_in": self.plug_in.as_dict(include_pointwise),
            "predictive_bits_per_char": self.predictive_bits_per_char,
            "plug_in_bits_per_char": self.plug_in_bits_per_char,
            "expected_log_prob_nats_per_char": self.expected_log_prob_nats_per_char,
            "expected_nll_bits_per_char": self.expected_nll_bits_per_char,
            "kl_nats": self.kl_nats,
            "kl_method": self.kl_method,
            "num_train_chars": self.num_train_chars,
            "elbo_bound_nats_per_char": self.elbo_bound_nats_per_char,
            "elbo_bound_bits_per_char": self.elbo_bound_bits_per_char,
            "labels": dict(self.labels),
        }


def weight_summaries(params: Mapping) -> dict[str, np.ndarray]:
    """Scalar summaries of params draws for the ArviZ `posterior` group.

    Args:
      params: params structure with a leading draw dim `S` on every leaf.

    Returns:
      `{"l2_norm_<group>_<leaf>": [S]}` for every leaf (Frobenius norm of each weight
      matrix / bias vector) and `{"output_bias": [S, V]}`; float64 NumPy arrays.
    """
    out = {}
    for group in sorted(params):
        for key in sorted(params[group]):
            leaf = tf.convert_to_tensor(params[group][key])
            if leaf.shape.rank < 2:
                raise ValueError("weight_summaries expects a leading draw dim on every leaf.")
            axes = list(range(1, leaf.shape.rank))
            norm = tf.sqrt(tf.reduce_sum(tf.square(tf.cast(leaf, tf.float64)), axis=axes))
            out[f"l2_norm_{group}_{key}"] = norm.numpy()
    out["output_bias"] = np.asarray(tf.convert_to_tensor(params["output"]["bias"]), np.float64)
    return out


def _seed_for_report(seed):
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**62))
    if tf.is_tensor(seed):
        return [int(v) for v in seed.numpy().reshape(-1)]
    if isinstance(seed, (int, np.integer)):
        return int(seed)
    return [int(v) for v in seed]


def posterior_predictive(
    surrogate,
    ids,
    *,
    num_draws: int = 16,
    seed=None,
    num_steps: int | None = None,
    mode: str = "windows",
    prior=None,
    num_train_examples: int | None = None,
    train_num_steps: int | None = None,
    kl_draws: int | None = None,
    batch_size: int = 256,
    chunk_size: int | None = None,
    num_streams: int = 1,
    temperature: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    jit_compile: bool | None = None,
    context: int = 0,
) -> PosteriorEvaluation:
    """Posterior predictive, plug-in and ELBO bound of a surrogate posterior on a text.

    `S = num_draws` weight draws `w_s ~ q` are scored in one batched pass (the draws are
    a leading params dim, `evaluate(draws, ids, params=...)`); windows mode reports
    `-mean_w log (1/S) sum_s p(x_w | w_s)` per window (and per char, bits/char), stream
    mode the same for the whole text as one sequence (where the average over draws is
    dominated by the best draw on a long text: see `evaluate`).

    Args:
      surrogate: a `MeanFieldPosterior` (anything with `sample(n, seed=)` returning a
        params structure with a leading `[n]` dim, and `mean()`).
      ids: 1-D int token ids `[N]` of the held-out text.
      num_draws: `S`.
      seed: int or stateless pair for the draws (None: a fresh seed, reported).
      num_steps: window length `T` (default 64, as `evaluate`).
      mode: `"windows"` or `"stream"`.
      prior: the training prior (`GaussianPrior` / `ScaleMixturePrior`) for the KL of
        the ELBO bound; None: no KL, no bound.
      num_train_examples: `N_train` training sequences (for the bound).
      train_num_steps: their length `T_train` (default `num_steps`); the KL is spread
        over `N_train * T_train` characters.
      kl_draws: draws for a Monte Carlo KL (priors without closed form); default: the
        same `S` draws.
      batch_size, chunk_size, num_streams, temperature, progress, jit_compile, context:
        as `evaluate`.

    Returns:
      A `PosteriorEvaluation`.

    #### Examples

    ```python
    ev = posterior_predictive(result.surrogate, test_ids, num_draws=16, seed=0,
                              num_steps=50, prior=GaussianPrior(1.0),
                              num_train_examples=2000, train_num_steps=50)
    ev.predictive_bits_per_char, ev.plug_in_bits_per_char, ev.elbo_bound_bits_per_char
    ```
    """
    from probseq.inference.priors import has_closed_form_kl
    from probseq.seeds import stateless_seed

    if isinstance(num_draws, bool) or not isinstance(num_draws, (int, np.integer)):
        raise TypeError(f"num_draws must be a positive integer, got {num_draws!r}.")
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}.")
    reported_seed = _seed_for_report(seed)
    draw_seed = stateless_seed(reported_seed if isinstance(reported_seed, int) else seed)
    draws = surrogate.sample(int(num_draws), seed=draw_seed)  # leaves :: [S] + core
    shared = dict(
        num_steps=num_steps,
        mode=mode,
        batch_size=batch_size,
        chunk_size=chunk_size,
        num_streams=num_streams,
        temperature=temperature,
        jit_compile=jit_compile,
        cell=getattr(surrogate, "cell", None),
        context=context,
    )
    mean = surrogate.mean()
    predictive = evaluate(mean, ids, params=draws, progress=progress, **shared)
    plug_in = evaluate(mean, ids, **shared)
    per_draw = np.asarray(predictive.total_log_prob_per_draw_nats)  # :: [S]
    expected = float(np.mean(per_draw)) / predictive.num_chars

    kl = kl_method = None
    if prior is not None:
        if has_closed_form_kl(prior):
            kl, kl_method = float(surrogate.kl_divergence(prior)), "closed_form"
        else:
            # Default: the same S draws as the predictive (same seed); else fresh ones.
            kl_seed = (
                draw_seed
                if kl_draws is None
                else tf.random.experimental.stateless_fold_in(draw_seed, 1)
            )
            kl = float(surrogate.kl_divergence_monte_carlo(prior, kl_draws or num_draws, kl_seed))
            kl_method = "monte_carlo"
    num_train_chars = None
    if num_train_examples is not None:
        num_train_chars = int(num_train_examples) * int(train_num_steps or predictive.num_steps)
    bound = None
    if kl is not None and num_train_chars:
        bound = expected - kl / num_train_chars
    return PosteriorEvaluation(
        predictive=predictive,
        plug_in=plug_in,
        num_draws=int(num_draws),
        seed=reported_seed,
        expected_log_prob_nats_per_char=expected,
        kl_nats=kl,
        kl_method=kl_method,
        num_train_chars=num_train_chars,
        elbo_bound_nats_per_char=None if bound is None or not math.isfinite(bound) else bound,
        draw_summaries=weight_summaries(draws),
    )
