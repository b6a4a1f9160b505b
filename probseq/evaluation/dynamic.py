"""Dynamic evaluation (Krause et al., 2018): the model goes on learning on the text it
scores, each segment scored before the model learns from it.

The text is read as one stream (or `num_streams` contiguous streams in parallel), the
state carried throughout, in segments of `segment_length` characters. For segment `j`:

1. its characters are scored with the current weights `w_j` (the state carried from
   segment `j - 1`, computed with `w_{j-1}`); these scores are the result;
2. then the weights take one step on that segment's mean NLL per character `g`:
   `method="sgd"`: `w_{j+1} = w_j - lr * g + decay * (w_0 - w_j)`, SGD pulled back
   towards the trained weights `w_0` (Krause et al.'s global prior);
   `method="rms"` (their "RMS with global prior"): `w_{j+1} = w_j - lr * g / (sqrt(MS) +
   eps) + decay * r * (w_0 - w_j)` (`eps`: a tenth of the mean `sqrt(MS)`), where `MS`
   is the mean square of single-segment gradients measured beforehand on training text
   (`train_ids`: contiguous segments, state carried, weights fixed) and
   `r = sqrt(MS) / mean(sqrt(MS))` per weight, capped at `1 / decay`. The defaults
   (`DynamicSettings`: RMS steps of 3e-4, decay 0.001, segments of 50) were chosen on a
   validation split (experiments/dynamic_tuning.py).

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
    train_ids=None,
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
      train_ids: `method="rms"`: training text (ids) to measure the gradients' mean
        square on (`settings.rms_segments` segments from its end); never scored.
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
    rms = settings.method == "rms"
    if rms:
        if train_ids is None:
            raise ValueError(
                "method='rms' needs train_ids: training text to measure the gradients' "
                "mean square on (probseq evaluate and probseq.load pass the run's)."
            )
        train_ids = check_ids(train_ids, resolved.vocab_size, settings.segment_length + 1)
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
    scales = None
    if rms:
        scales = _rms_scales(
            resolved, spec, working, train_ids, settings, temperature_t, jit_compile
        )
    first, state = _kernels.compiled("start", False, resolved.cell)(
        resolved.params, tf.constant(streams[:, 0]), temperature_t
    )
    total = float(np.sum(first.numpy().astype(np.float64)))
    done = streams_count
    step = _segment_step(resolved.cell, spec, jit_compile, _learn_first, rms)
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
            scales,
        )
        total += float(scores.numpy())
        done += int(valid.sum())
        if progress is not None:
            progress(done, ids.size)
    result = stream_result(
        np.asarray(total), ids.size, num_steps, streams_count, resolved.temperature
    )
    return dataclasses.replace(result, mode="dynamic", dynamic=dataclasses.asdict(settings))


_EPSILON = 1e-8
_RMS_FLOOR = 0.1  # of the mean RMS: the smallest RMS a step is divided by


def _score(cell, spec, weights, state, inputs, targets, mask, temperature):
    """Summed log-likelihood of a segment's scored targets, and the state after it."""
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


def _segment_gradient(cell, spec, weights, state, inputs, targets, mask, temperature):
    """The gradient of a segment's mean NLL per character, its total and the new state."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(weights)
        total, new_state = _score(cell, spec, weights, state, inputs, targets, mask, temperature)
        count = tf.maximum(tf.reduce_sum(tf.cast(mask, total.dtype)), 1.0)
        loss = -total / count
    return tape.gradient(loss, weights), total, new_state


def _rms_scales(resolved, spec, weights, train_ids, settings, temperature, jit_compile):
    """Per weight: `(1 / (sqrt(MS) + eps), min(sqrt(MS) / mean sqrt(MS), 1 / decay))` from
    the mean square of single-segment gradients over the last `rms_segments` segments of
    `train_ids` (one contiguous stretch, state carried, weights fixed)."""
    segment = settings.segment_length
    count = min(settings.rms_segments, (train_ids.size - 1) // segment)
    stretch = train_ids[-(count * segment + 1) :]
    cell = resolved.cell

    def gradient(weights, state, inputs, targets, mask):
        grads, _, new_state = _segment_gradient(
            cell, spec, weights, state, inputs, targets, mask, temperature
        )
        return [tf.square(g) for g in grads], new_state

    fn = tf.function(gradient, jit_compile=jit_compile or None)
    _, state = _kernels.compiled("start", False, cell)(
        resolved.params, tf.constant(stretch[:1]), temperature
    )
    mask = tf.ones([1, segment], tf.bool)
    sums = [tf.zeros_like(w) for w in weights]
    for j in range(count):
        piece = stretch[j * segment : (j + 1) * segment + 1][None, :]
        squares, state = fn(
            weights, state, tf.constant(piece[:, :-1]), tf.constant(piece[:, 1:]), mask
        )
        sums = [a + b for a, b in zip(sums, squares, strict=True)]
    roots = [tf.sqrt(s / count) for s in sums]
    mean_root = tf.add_n([tf.reduce_sum(r) for r in roots]) / sum(int(tf.size(r)) for r in roots)
    cap = 1.0 / settings.decay if settings.decay > 0 else 1.0
    # The floor keeps weights the stretch never moved (e.g. the token-table rows of
    # characters it does not contain, MS = 0) from taking unbounded steps.
    floor = _RMS_FLOOR * mean_root + _EPSILON
    inverse = [1.0 / (r + floor) for r in roots]
    prior = [tf.minimum(r / mean_root, cap) for r in roots]
    return inverse, prior


@functools.cache
def _segment_step(cell: Cell, spec: ParamsSpec, jit_compile: bool, learn_first: bool, rms: bool):
    """The compiled `(weights, start, state, inputs, targets, mask, temperature, lr,
    decay, scales) -> (segment log-likelihood, state)` step: score, then update."""

    def step(weights, start, state, inputs, targets, mask, temperature, rate, decay, scales):
        grads, total, new_state = _segment_gradient(
            cell, spec, weights, state, inputs, targets, mask, temperature
        )
        inverse, prior = scales if rms else ([None] * len(weights), [None] * len(weights))
        for weight, grad, initial, inv, pull in zip(
            weights, grads, start, inverse, prior, strict=True
        ):
            if rms:
                weight.assign(weight - rate * grad * inv + decay * pull * (initial - weight))
            else:
                weight.assign(weight - rate * grad + decay * (initial - weight))
        if learn_first:  # the leak: score again with weights that have seen the segment
            total, new_state = _score(
                cell, spec, weights, state, inputs, targets, mask, temperature
            )
        return total, new_state

    return tf.function(step, jit_compile=jit_compile or None, reduce_retracing=True)
