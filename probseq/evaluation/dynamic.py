"""Dynamic evaluation (Krause et al., 2018): the model goes on learning on the text it
scores, each segment scored before the model learns from it.

The text is read as one stream (or `num_streams` contiguous streams in parallel), the
state carried throughout, in segments of `segment_length` characters. For segment `j`:

1. its characters are scored with the current weights `w_j` (the state carried from
   segment `j - 1`, computed with `w_{j-1}`); these scores are the result;
2. then the weights take one step on that segment's mean NLL per character,
   `w_{j+1} = w_j - lr * grad + decay * (w_0 - w_j)`: SGD pulled back towards the
   trained weights `w_0` (Krause et al.'s global prior, without their RMS scaling).

Every character is therefore scored by weights that have learned only from characters
before it: the result is a sequential (prequential) log-likelihood of the text, an honest
code length, unlike scores of a model fitted to the text it scores. The working weights
are copies: the model passed in is never changed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from probseq.checks import check_positive_int
from probseq.distributions.kernel import token_log_probs
from probseq.evaluation import _kernels
from probseq.evaluation._inputs import check_ids, resolve_model
from probseq.evaluation.result import EvaluationResult, stream_result
from probseq.evaluation_settings import DynamicSettings
from probseq.nn import Cell, ParamsSpec

__all__ = ["DynamicSettings", "dynamic_evaluate"]


def dynamic_evaluate(
    model,
    ids,
    settings: DynamicSettings | None = None,
    *,
    params: dict | None = None,
    temperature: float | None = None,
    cell=None,
    num_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    jit_compile: bool = False,
    _learn_first: bool = False,
) -> EvaluationResult:
    """Dynamic evaluation of a token text (module docstring); `mode="dynamic"`.

    Args:
      model: an `LSTMNetwork`, an unprimed `LSTMAutoregressive` or a params dict (as
        `evaluate`); one set of weights (posterior draws: pass their mean as `params`).
      ids: 1-D integer token ids in `[0, V)`, at least 2.
      settings: a `DynamicSettings` (default: its defaults).
      params, temperature, cell: as `evaluate`.
      num_steps: only sets `nll_nats_per_window`'s scale (default 64, as `evaluate`).
      progress: `progress(done_chars, total_chars)` after each segment.
      jit_compile: compile the segment step with XLA (measured 1.3-1.9x slower than
        plain TensorFlow on a 2-core CPU, 2x256 LSTM, segments of 50).
      _learn_first: for tests only: learn from each segment *before* scoring it (a leaky
        evaluation that no honest metric should match).

    Returns:
      An `EvaluationResult` with `mode="dynamic"` (`num_streams` as in stream mode) and
      the settings in `dynamic`.
    """
    settings = settings or DynamicSettings()
    if not isinstance(settings, DynamicSettings):
        raise TypeError(f"settings must be a DynamicSettings, got {type(settings).__name__}.")
    resolved = resolve_model(model, params, temperature, cell)
    if resolved.num_draws is not None:
        raise ValueError(
            "dynamic evaluation adapts one set of weights; got params with "
            f"{resolved.num_draws} draws. Pass one draw or the posterior mean."
        )
    num_steps = check_positive_int("num_steps", num_steps or 64)
    ids = check_ids(ids, resolved.vocab_size, 1)
    if ids.size < 2:
        raise ValueError("dynamic evaluation needs a text of at least 2 characters.")
    streams_count = settings.num_streams
    if streams_count > ids.size // 2:
        raise ValueError(f"num_streams={streams_count} is too many for {ids.size} characters.")
    from probseq.evaluation.evaluate import _split_streams, _take

    streams, lengths = _split_streams(ids, streams_count)  # :: [B, L], [B]
    spec = ParamsSpec.of(resolved.params)
    dtype = resolved.params["output"]["bias"].dtype
    start = spec.flatten(tf.nest.map_structure(tf.convert_to_tensor, resolved.params))
    working = [tf.Variable(value, trainable=True) for value in start]  # never the model's
    temperature_t = tf.constant(resolved.temperature, dtype)
    first, state = _kernels.compiled("start", False, resolved.cell)(
        resolved.params, tf.constant(streams[:, 0]), temperature_t
    )
    total = float(np.sum(first.numpy().astype(np.float64)))
    done = streams_count
    step = _segment_step(resolved.cell, spec, jit_compile, _learn_first)
    rate = tf.constant(settings.learning_rate, dtype)
    decay = tf.constant(settings.decay, dtype)
    num_positions = streams.shape[1] - 1
    segment = settings.segment_length
    offsets = np.arange(segment)
    for begin in range(0, num_positions, segment):
        positions = begin + offsets
        valid = positions[None, :] + 1 < lengths[:, None]  # :: [B, C]
        scores, state = step(
            working,
            start,
            state,
            tf.constant(_take(streams, positions)),
            tf.constant(_take(streams, positions + 1)),
            tf.constant(valid),
            temperature_t,
            rate,
            decay,
        )
        total += float(scores.numpy())
        done += int(valid.sum())
        if progress is not None:
            progress(done, ids.size)
    result = stream_result(
        np.asarray(total), ids.size, num_steps, streams_count, resolved.temperature
    )
    return dataclasses.replace(result, mode="dynamic", dynamic=dataclasses.asdict(settings))


@functools.cache
def _segment_step(cell: Cell, spec: ParamsSpec, jit_compile: bool, learn_first: bool):
    """The compiled `(weights, start, state, inputs, targets, mask, temperature, lr,
    decay) -> (segment log-likelihood, state)` step: score, then update the weights."""

    def score(weights, state, inputs, targets, mask, temperature):
        log_probs, new_state = token_log_probs(
            spec.pack(list(weights)),
            inputs,
            tf.transpose(targets),
            state,
            cell=cell,
            temperature=temperature,
        )  # :: [C, B]
        log_probs = tf.where(tf.transpose(mask), log_probs, tf.zeros_like(log_probs))
        return tf.reduce_sum(log_probs), new_state

    def step(weights, start, state, inputs, targets, mask, temperature, rate, decay):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(weights)
            total, new_state = score(weights, state, inputs, targets, mask, temperature)
            count = tf.maximum(tf.reduce_sum(tf.cast(mask, total.dtype)), 1.0)
            loss = -total / count  # the segment's mean NLL per character
        grads = tape.gradient(loss, weights)
        for weight, grad, initial in zip(weights, grads, start, strict=True):
            weight.assign(weight - rate * grad + decay * (initial - weight))
        if learn_first:  # the leak: score again with weights that have seen the segment
            total, new_state = score(weights, state, inputs, targets, mask, temperature)
        return total, new_state

    return tf.function(step, jit_compile=jit_compile or None, reduce_retracing=True)
