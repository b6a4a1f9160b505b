"""`evaluate`: held-out NLL, bits/char and perplexity of a token text under an LSTM model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from probseq.checks import check_positive_int
from probseq.evaluation import _kernels
from probseq.evaluation._inputs import ResolvedModel, check_ids, resolve_model
from probseq.evaluation.result import EvaluationResult, stream_result, windows_result
from probseq.nn import reduced_precision_params

__all__ = ["evaluate"]

_MODES = ("windows", "stream", "dynamic")
_DEFAULT_NUM_STEPS = 64
# Stream chunks: 16 windows per stream, at most 256 windows of positions per call over all
# streams (the working set, about `chunk * streams * 4H` floats, then matches windows mode).
_CHUNK_WINDOWS, _CHUNK_WINDOWS_ALL_STREAMS = 16, 256


def evaluate(
    model,
    ids,
    *,
    num_steps: int | None = None,
    mode: str = "windows",
    batch_size: int = 256,
    chunk_size: int | None = None,
    num_streams: int = 1,
    params: dict | None = None,
    temperature: float | None = None,
    cell=None,
    progress: Callable[[int, int], None] | None = None,
    jit_compile: bool | None = None,
    context: int = 0,
    dynamic=None,
    precision: str = "fp32",
    train_ids=None,
) -> EvaluationResult:
    """Negative log-likelihood of a token text under an LSTM sequence model.

    The model scores a sequence `x_1..x_T` as

    ```none
    log p(x) = log softmax(l_0 / tau)[x_1] + sum_{t=2}^{T} log softmax(l_{t-1} / tau)[x_t]
    ```

    where `l_0` are the logits of the start step (zero state, no input token), `l_{t-1}`
    the logits after reading `x_1..x_{t-1}` (teacher forcing) and `tau` the temperature.

    Modes:

    * `"windows"` (the text8 tutorial's metric): the text is cut into
      `W = len(ids) // num_steps` non-overlapping windows; the final partial window is
      dropped (`result.num_dropped_chars` says how many characters). Each window is
      scored on its own from a zero state, exactly `LSTMAutoregressive(net,
      num_steps).log_prob(window)`. `nll_nats_per_window` is the mean window NLL and
      `nll_nats_per_char = total NLL / (W * num_steps)`. Windows run in batches of
      `batch_size` through one compiled function; the last batch is padded to the same
      shape and the padding discarded. With `context=k`, window `w` is
      `ids[k + w T : k + (w + 1) T]` scored after reading the `k` characters before it,
      `log p(window | context) = log p(context, window) - log p(context)` (both from a
      zero state): the metric of tutorials that score given some context; the first `k`
      characters are read, never scored.
    * `"stream"`: one pass that carries the LSTM state across the whole text, so the
      total is `log p(ids)` of the entire text as ONE sequence (`num_chars =
      len(ids)`, first character from the start step). The text is processed in
      chunks of `chunk_size` characters with a fixed, compiled shape (the final chunk
      padded and masked): memory is bounded by the chunk, not the text. With
      `num_streams = B > 1` the text is split into `B` contiguous pieces processed in
      parallel (faster); the result is then the log-likelihood of `B` independent
      sequences, each started from the start step, not of one sequence.
      `nll_nats_per_window` is defined as `nll_nats_per_char * num_steps`.
    * `"dynamic"`: dynamic evaluation (Krause et al., 2018): a stream whose model
      learns from each segment right after scoring it, so every character is scored
      before the model has learned from it (`dynamic_evaluate`, settings in `dynamic=`,
      a `DynamicSettings`; its `method="rms"` needs `train_ids`, training text). The
      model passed in is not changed.

    Posterior draws. If the params carry a leading dim `S` (every leaf `[S] + core`),
    all draws are scored in one batched pass. Windows mode returns the per-draw
    log-likelihoods `[S, W]` and uses the Monte Carlo posterior predictive per window,
    `log p(x_w) ~= log mean_s p(x_w | w_s)`, for every summary
    (`nll_nats_per_window = -mean_w log mean_s p(x_w | w_s)`). Stream mode returns the
    per-draw totals `[S]` and the predictive `-log mean_s exp(total_s) / num_chars`;
    over a long text this is dominated by the single best draw, so also look at the
    per-draw totals.

    Args:
      model: an `LSTMNetwork`, an `LSTMAutoregressive` without prefix (its params and
        temperature are used), or a params dict (sizes read from the params).
      ids: 1-D integer token ids `[N]` in `[0, V)`: NumPy (any integer dtype), list or
        tensor. `N >= num_steps`.
      num_steps: window length `T`; default: the distribution's `num_steps` for an
        `LSTMAutoregressive`, else 64.
      mode: `"windows"`, `"stream"` or `"dynamic"`.
      batch_size: windows per compiled batch (windows mode).
      chunk_size: characters per compiled chunk and stream (stream mode); memory grows
        with `chunk_size * num_streams`. Default `16 * num_steps` for up to 16
        streams, less beyond (at least `num_steps`). Results do not depend on it beyond
        float rounding.
      num_streams: stream mode: number of contiguous independent streams (see above).
      params: explicit params overriding the model's (e.g. `S` stacked posterior
        draws), same structure and core shapes.
      temperature: positive scalar dividing all logits (default 1); not allowed if the
        distribution already has one.
      cell: for a params dict, the cell the params are for (name or `Cell`, default
        `"lstm"`); a network or distribution states its own (a different `cell` is an
        error). Never inferred from the params' shapes.
      progress: called as `progress(done_chars, total_chars)` after each batch / chunk.
      context: windows mode: characters of warm-up read before each window (0: none).
      precision: `"fp32"` (default: the exact reference) or `"bf16"` (windows and stream
        modes: bfloat16 matmuls, fp32 gates, states and softmax; faster on CPUs with
        bf16 instructions, within about 1e-2 nats per character of fp32).
      jit_compile: compile the batch / chunk function with XLA. None (default) picks
        what measured faster on a 2-core CPU: XLA for the stream (many small steps,
        ~1.7x faster), plain TensorFlow for windows (large GEMMs that TensorFlow's own
        kernels thread better, ~2x faster than XLA).

    Returns:
      An `EvaluationResult`.

    Raises:
      TypeError: non-integer `ids`, or an unsupported `model`.
      ValueError: `ids` not 1-D, shorter than `num_steps`, or out of range (the
        message names the bad values and the first position); bad settings.

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=27, hidden_size=512, seed=1)
    result = evaluate(net, ids, num_steps=64)                     # the text8 metric
    result.nll_nats_per_window, result.bits_per_char              # ==> ~211, ~4.75 (untrained)
    evaluate(net, ids, mode="stream").nll_nats_per_char           # whole text as one sequence
    ```
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}.")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    if precision != "fp32" and mode == "dynamic":
        raise ValueError("dynamic evaluation runs in fp32 (its weight updates need it).")
    if dynamic is not None and mode != "dynamic":
        raise ValueError("dynamic= (its settings) applies to mode='dynamic' only.")
    if mode == "dynamic":
        if context or num_streams != 1 or chunk_size is not None:
            raise ValueError(
                "mode='dynamic' takes its segment length and streams from dynamic= "
                "(a DynamicSettings), not context / num_streams / chunk_size."
            )
        from probseq.evaluation.dynamic import dynamic_evaluate

        return dynamic_evaluate(
            model,
            ids,
            dynamic,
            train_ids=train_ids,
            params=params,
            temperature=temperature,
            cell=cell,
            num_steps=num_steps,
            progress=progress,
            jit_compile=bool(jit_compile),
        )
    resolved = resolve_model(model, params, temperature, cell)
    if precision != "fp32":
        kernels = reduced_precision_params(resolved.params, precision)
        resolved = resolved._replace(params=kernels, precision=precision)
    if num_steps is None:
        num_steps = resolved.default_num_steps or _DEFAULT_NUM_STEPS
    num_steps = check_positive_int("num_steps", num_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    num_streams = check_positive_int("num_streams", num_streams)
    if chunk_size is None:
        per_stream = _CHUNK_WINDOWS_ALL_STREAMS * num_steps // num_streams
        chunk_size = min(_CHUNK_WINDOWS * num_steps, max(num_steps, per_stream))
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context must be an int >= 0, got {context!r}.")
    if context and mode != "windows":
        raise ValueError(
            "context applies to mode='windows' only (a stream reads everything before)."
        )
    ids = check_ids(ids, resolved.vocab_size, num_steps)
    if ids.size < num_steps + context:
        raise ValueError(
            f"ids has length {ids.size}, shorter than context={context} + one window of "
            f"num_steps={num_steps}."
        )
    if mode == "windows":
        if num_streams != 1:
            raise ValueError("num_streams applies to mode='stream' only.")
        jit = False if jit_compile is None else jit_compile
        return _evaluate_windows(resolved, ids, num_steps, batch_size, progress, jit, int(context))
    if num_streams > ids.size:
        raise ValueError(f"num_streams={num_streams} exceeds the text length {ids.size}.")
    return _evaluate_stream(
        resolved,
        ids,
        num_steps,
        chunk_size,
        num_streams,
        progress,
        True if jit_compile is None else jit_compile,
    )


def _evaluate_windows(
    resolved: ResolvedModel,
    ids: np.ndarray,
    num_steps: int,
    batch_size: int,
    progress,
    jit_compile: bool,
    context: int = 0,
) -> EvaluationResult:
    num_windows = (ids.size - context) // num_steps
    width = context + num_steps  # each row: its context, then the window scored
    starts = np.arange(num_windows) * num_steps
    windows = ids[starts[:, None] + np.arange(width)[None, :]]
    batch = min(batch_size, num_windows)
    fn = _kernels.compiled("windows", jit_compile, resolved.cell, resolved.precision)
    temperature = tf.constant(resolved.temperature, resolved.params["output"]["bias"].dtype)
    draws = () if resolved.num_draws is None else (resolved.num_draws,)
    log_probs = np.empty(draws + (num_windows,), np.float64)
    padded = np.zeros((batch, width), np.int32)
    for start in range(0, num_windows, batch):
        count = min(batch, num_windows - start)
        padded[:count] = windows[start : start + count]
        padded[count:] = 0  # padding windows: any valid token, discarded below
        out = fn(resolved.params, tf.constant(padded), temperature).numpy()  # :: draws + [B]
        if context:  # log p(window | context) = log p(context, window) - log p(context)
            out = out - fn(resolved.params, tf.constant(padded[:, :context]), temperature).numpy()
        log_probs[..., start : start + count] = out[..., :count]
        if progress is not None:
            progress((start + count) * num_steps, num_windows * num_steps)
    dropped = ids.size - context - num_windows * num_steps
    return windows_result(
        log_probs, num_steps, dropped, temperature=resolved.temperature, context=context
    )


def _evaluate_stream(
    resolved: ResolvedModel,
    ids: np.ndarray,
    num_steps: int,
    chunk_size: int,
    num_streams: int,
    progress,
    jit_compile: bool,
) -> EvaluationResult:
    total_chars = ids.size
    streams, lengths = _split_streams(ids, num_streams)  # :: [B, L], [B]
    temperature = tf.constant(resolved.temperature, resolved.params["output"]["bias"].dtype)
    first, state = _kernels.compiled("start", False, resolved.cell, resolved.precision)(
        resolved.params, tf.constant(streams[:, 0]), temperature
    )
    totals = first.numpy().astype(np.float64).sum(axis=-1)  # :: draws
    done = num_streams
    num_positions = streams.shape[1] - 1  # input/target pairs per stream
    chunk = min(chunk_size, num_positions)
    fn = _kernels.compiled("chunk", jit_compile, resolved.cell, resolved.precision)
    offsets = np.arange(chunk)
    for start in range(0, num_positions, chunk):
        positions = start + offsets  # input positions; targets are one later
        valid = positions[None, :] + 1 < lengths[:, None]  # :: [B, C]
        inputs = _take(streams, positions)
        targets = _take(streams, positions + 1)
        out, state = fn(
            resolved.params,
            state,
            tf.constant(inputs),
            tf.constant(targets),
            tf.constant(valid),
            temperature,
        )
        totals = totals + out.numpy().astype(np.float64).sum(axis=-1)
        done += int(valid.sum())
        if progress is not None:
            progress(done, total_chars)
    if progress is not None and num_positions == 0:
        progress(done, total_chars)
    return stream_result(
        np.asarray(totals), total_chars, num_steps, num_streams, resolved.temperature
    )


def _split_streams(ids: np.ndarray, num_streams: int) -> tuple[np.ndarray, np.ndarray]:
    """`B` contiguous pieces of near-equal length, right-padded with 0: `[B, L]`, `[B]`."""
    if num_streams == 1:
        return ids[None, :], np.array([ids.size])
    pieces = np.array_split(ids, num_streams)
    lengths = np.array([piece.size for piece in pieces])
    streams = np.zeros((num_streams, lengths.max()), np.int32)
    for row, piece in zip(streams, pieces, strict=True):
        row[: piece.size] = piece
    return streams, lengths


def _take(streams: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`streams[:, positions]`, with positions past the end reading token 0 (padding)."""
    length = streams.shape[1]
    if positions[-1] < length:
        return np.ascontiguousarray(streams[:, positions[0] : positions[-1] + 1])
    out = np.zeros((streams.shape[0], positions.size), np.int32)
    inside = positions < length
    out[:, inside] = streams[:, positions[inside]]
    return out
