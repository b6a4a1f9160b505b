"""`evaluate_sequences`: held-out NLL of variable-length sequences (lines, records, names).

Each sequence is scored on its own from the zero state, through the distribution's own
`log_prob` (the one teacher-forced kernel) with `lengths`: sequences are sorted by length
and scored in batches padded only to the longest of each batch, with one compiled
function for all batch widths.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.distributions import LSTMAutoregressive
from probseq.nn import ParamsSpec

__all__ = ["SequenceEvaluation", "evaluate_sequences"]


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceEvaluation:
    """Held-out metrics of a set of variable-length sequences.

    Attributes:
      log_likelihoods: float64 `[N]`, `log p(sequence_i)` in nats (EOS included when
        the model has an end token), in the order given.
      num_tokens: tokens scored, EOS included (one per sequence shorter than
        `num_steps`) when `eos` is set.
      eos: the end token or None.
      num_steps: the longest sequence the model allows (`num_steps` of the distribution).
    """

    log_likelihoods: np.ndarray
    num_tokens: int
    eos: int | None
    num_steps: int
    num_draws: int | None = None  # weight draws of a posterior predictive, else None

    @property
    def num_sequences(self) -> int:
        return int(self.log_likelihoods.size)

    @property
    def nll_nats_per_sequence(self) -> float:
        """Mean negative log-likelihood of a sequence (nats)."""
        return float(-self.log_likelihoods.mean())

    @property
    def nll_nats_per_token(self) -> float:
        """Total NLL over all scored tokens (EOS counted as a token when `eos` is set)."""
        return float(-self.log_likelihoods.sum() / self.num_tokens)

    @property
    def bits_per_token(self) -> float:
        """`nll_nats_per_token / ln 2`: bits per character for a character model."""
        return self.nll_nats_per_token / math.log(2.0)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_nats_per_token)

    def as_dict(self, include_pointwise: bool = False) -> dict[str, Any]:
        out = {
            "num_sequences": self.num_sequences,
            "num_tokens": self.num_tokens,
            "eos_counted_as_token": self.eos is not None,
            "nll_nats_per_sequence": self.nll_nats_per_sequence,
            "nll_nats_per_token": self.nll_nats_per_token,
            "bits_per_token": self.bits_per_token,
            "perplexity": self.perplexity,
            "num_steps": self.num_steps,
        }
        if self.num_draws is not None:
            out["num_draws"] = self.num_draws
        if include_pointwise:
            out["log_likelihoods"] = self.log_likelihoods.tolist()
        return out


def evaluate_sequences(
    model,
    sequences,
    *,
    eos: int | None = None,
    num_steps: int | None = None,
    batch_size: int = 256,
    temperature: float | None = None,
    params=None,
) -> SequenceEvaluation:
    """Negative log-likelihood of variable-length token sequences, each from a zero state.

    With `eos`, sequence `x` (without its EOS) is scored as `x` followed by EOS, i.e.
    `log p(x_1..x_L, end)`, unless it is `num_steps` long (then it reached the maximum
    length, and no EOS is scored). Without `eos`, `log p(x_1..x_L)`.

    Args:
      model: an `LSTMNetwork`, or an `LSTMAutoregressive` (its network, `eos`,
        `num_steps` and temperature are used).
      sequences: a list of 1-D integer sequences (of different lengths) or a 2-D
        `tf.RaggedTensor`; each non-empty, without the EOS.
      eos: the end token (for an `LSTMNetwork`).
      num_steps: the longest sequence allowed (default: the longest given, plus one
        for its EOS).
      batch_size: sequences per compiled batch.
      temperature: optional positive float dividing the logits.
      params: optional params used instead of the network's variables: one structure
        (e.g. a posterior mean) or `S` weight draws (every leaf `[S] + core`); with
        draws each sequence's log-likelihood is the posterior predictive
        `log (1/S) sum_s p(x | w_s)`.

    Returns:
      A `SequenceEvaluation`.
    """
    network = model
    if isinstance(model, LSTMAutoregressive):
        if eos is not None or num_steps is not None or temperature is not None:
            raise ValueError(
                "pass eos / num_steps / temperature with a network, not a distribution."
            )
        network, eos, num_steps = model.network, model.eos, model.num_steps
        temperature = model.temperature
    rows = _as_rows(sequences)
    lengths = np.array([row.size for row in rows])
    if lengths.size == 0 or lengths.min() < 1:
        raise ValueError("sequences must hold at least one non-empty sequence each.")
    vocab_size = network.vocab_size
    for index, row in enumerate(rows):
        if row.min() < 0 or row.max() >= vocab_size:
            raise ValueError(
                f"sequence {index} holds token ids outside [0, vocab_size={vocab_size})."
            )
        if eos is not None and np.any(row == eos):
            raise ValueError(f"sequence {index} contains the end token {eos}; give it without.")
    longest = int(lengths.max())
    num_steps = num_steps or longest + (eos is not None)
    if longest > num_steps:
        raise ValueError(f"a sequence has {longest} tokens, more than num_steps={num_steps}.")
    num_draws = None
    if params is not None:
        params, batch = ParamsSpec.of(network.params).check(
            params, dtype=network.dtype, max_batch_ndims=1, hint=" (S draws)"
        )
        num_draws = int(batch[0]) if batch.rank else None
    if temperature is None or isinstance(temperature, (int, float)):
        # One compiled scorer per network and setting: periodic validation reuses its trace.
        scorer = _cached_scorer(network, num_steps, eos, temperature)
    else:
        scorer = _compiled_scorer(network, num_steps, eos, temperature)

    def score(tokens, lengths):
        if params is None:
            return scorer(tokens, lengths)
        return scorer.with_params(tokens, lengths, params, num_draws is not None)

    order = np.argsort(lengths, kind="stable")
    log_likelihoods = np.empty(len(rows), np.float64)
    for start in range(0, len(rows), batch_size):
        chosen = order[start : start + batch_size]
        width = int(lengths[chosen].max())
        tokens = np.zeros((chosen.size, width), np.int32)
        for i, index in enumerate(chosen):
            tokens[i, : lengths[index]] = rows[index]
        log_likelihoods[chosen] = score(tokens, lengths[chosen].astype(np.int32)).numpy()
    ends = int(np.sum(lengths < num_steps)) if eos is not None else 0
    return SequenceEvaluation(log_likelihoods, int(lengths.sum()) + ends, eos, num_steps, num_draws)


def _as_rows(sequences) -> list[np.ndarray]:
    if isinstance(sequences, tf.RaggedTensor):
        sequences = sequences.to_list()
    if not isinstance(sequences, Sequence) and not isinstance(sequences, np.ndarray):
        raise TypeError(f"sequences must be a list or a tf.RaggedTensor, got {type(sequences)}.")
    rows = []
    for row in sequences:
        row = np.asarray(row)
        if row.ndim != 1 or (row.size and row.dtype.kind not in "iu"):
            raise TypeError("every sequence must be a 1-D sequence of integer token ids.")
        rows.append(row.astype(np.int64))
    return rows


@functools.lru_cache(maxsize=16)
def _cached_scorer(network, num_steps: int, eos, temperature):
    return _compiled_scorer(network, num_steps, eos, temperature)


def _compiled_scorer(network, num_steps: int, eos, temperature):
    dist_kwargs = dict(eos=eos, temperature=temperature)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def score(tokens, lengths):
        return LSTMAutoregressive(network, num_steps, lengths=lengths, **dist_kwargs).log_prob(
            tokens
        )

    @tf.function(reduce_retracing=True)
    def with_params(tokens, lengths, params, draws: bool):
        if draws:  # [S, 1] + core against the B sequences: log-likelihoods [S, B]
            params = tf.nest.map_structure(lambda p: p[:, None], params)
        log_p = LSTMAutoregressive(
            network, num_steps, lengths=lengths, params=params, **dist_kwargs
        ).log_prob(tokens)
        if not draws:
            return log_p
        num_draws = tf.cast(tf.shape(log_p)[0], log_p.dtype)
        return tf.reduce_logsumexp(log_p, axis=0) - tf.math.log(num_draws)

    score.with_params = with_params
    return score
