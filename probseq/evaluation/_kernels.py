"""Compiled scoring drivers: a batch of independent windows, and a chunk of a stream.

Both are `probseq.distributions.kernel.token_log_probs` (the one teacher-forced kernel
that `log_prob` uses too) plus the start step and the masking of padding.

Both take the params as an argument (a dict of tensors, optionally with a leading draw
dim `S`, written `pb` below) so one trace serves every model of the same shapes. The
compiled functions are built lazily, once per `jit_compile` setting, and traced once per
input shape; the drivers keep shapes fixed by padding.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from probseq.distributions.kernel import token_log_probs
from probseq.nn import Cell, cell_start, get_cell, param_batch_ndims, sizes_of


def _param_batch_shape(params: dict) -> tf.Tensor:
    return tf.shape(params["output"]["bias"])[: param_batch_ndims(params)]


def _broadcast_tokens(tokens: tf.Tensor, params: dict) -> tf.Tensor:
    """`rest + [T]` tokens -> `pb + rest + [T]` (the layout the nn core wants)."""
    if param_batch_ndims(params) == 0:
        return tokens
    return tf.broadcast_to(tokens, tf.concat([_param_batch_shape(params), tf.shape(tokens)], 0))


def _broadcast_state(state: tuple, lead: tf.Tensor) -> tuple:
    """Start state `pb + [H]` -> `pb + [B] + [H]` where `lead = pb + [B]`."""
    return tf.nest.map_structure(
        lambda s: tf.broadcast_to(s[..., None, :], tf.concat([lead, tf.shape(s)[-1:]], 0)), state
    )


def _time_major(x: tf.Tensor) -> tf.Tensor:
    rank = x.shape.rank
    return tf.transpose(x, [rank - 1, *range(rank - 1)])


def window_log_probs(
    params: dict,
    tokens: tf.Tensor,
    temperature: tf.Tensor | None,
    *,
    cell: Cell,
    compute_dtype=None,
    masks=None,
) -> tf.Tensor:
    """Log-probability of each window, every window started from a zero state.

    Args:
      params: params structure, param batch shape `pb` (`[]` or `[S]`).
      tokens: int32 `[B, T]` windows.
      temperature: scalar float, divides every logit (None: 1).
      cell: the network's `Cell`.
      compute_dtype, masks: the matmuls' precision and locked-dropout masks
        (`cell_logits`; training).

    Returns:
      `pb + [B]` log-likelihoods in nats (`log softmax(start)[x_1] + sum_{t>=2} ...`).
    """
    vocab_size, _ = sizes_of(params)
    tokens = _broadcast_tokens(tokens, params)  # :: pb + [B, T]
    lead = tf.shape(tokens)[:-1]  # pb + [B]
    start_logits, start_state = cell_start(params, cell=cell, compute_dtype=compute_dtype)
    first = tf.broadcast_to(start_logits[..., None, :], tf.concat([lead, [vocab_size]], 0))
    log_probs, _ = token_log_probs(
        params,
        tokens[..., :-1],
        _time_major(tokens),
        _broadcast_state(start_state, lead),
        cell=cell,
        temperature=temperature,
        first_logits=first,
        compute_dtype=compute_dtype,
        masks=masks,
    )  # :: [T] + pb + [B]
    return tf.reduce_sum(log_probs, axis=0)


def stream_start(
    params: dict, first_tokens: tf.Tensor, temperature: tf.Tensor, *, cell: Cell,
    compute_dtype=None,
) -> tuple[tf.Tensor, tuple]:  # fmt: skip
    """Score the first token of each stream from the start step; return the state after it.

    Args:
      params: params structure, param batch shape `pb`.
      first_tokens: int32 `[B]`, the first token of each of `B` streams.
      temperature: scalar float.

    Returns:
      log-probabilities `pb + [B]` in nats, and per-layer state `pb + [B, H]` after the
      start step (the state that reads the first token next).
    """
    logits, state = cell_start(params, cell=cell, compute_dtype=compute_dtype)
    log_probs = tf.nn.log_softmax(logits / temperature, axis=-1)
    lead = tf.concat([_param_batch_shape(params), tf.shape(first_tokens)], 0)
    return tf.gather(log_probs, first_tokens, axis=-1), _broadcast_state(state, lead)


def stream_chunk(
    params: dict,
    state: tuple,
    inputs: tf.Tensor,
    targets: tf.Tensor,
    mask: tf.Tensor,
    temperature: tf.Tensor,
    *,
    cell: Cell,
    compute_dtype=None,
) -> tuple[tf.Tensor, tuple]:
    """Teacher-forced pass over one chunk of `B` streams, carrying the LSTM state.

    Args:
      params: params structure, param batch shape `pb`.
      state: per-layer `LSTMState`, each `pb + [B, H]`, after the previous chunk.
      inputs: int32 `[B, C]` tokens read in this chunk.
      targets: int32 `[B, C]` the token following each input (the one scored).
      mask: bool `[B, C]`, False on padding (its targets are not scored).
      temperature: scalar float.

    Returns:
      summed log-likelihood of the chunk's targets `pb + [B]` in nats, and the new state
      (meaningful only if the chunk has no padding).
    """
    log_probs, state = token_log_probs(
        params,
        _broadcast_tokens(inputs, params),
        _time_major(_broadcast_tokens(targets, params)),
        state,
        cell=cell,
        temperature=temperature,
        compute_dtype=compute_dtype,
    )  # :: [C] + pb + [B]
    mask = _time_major(mask)  # :: [C, B]
    mask = tf.reshape(
        mask, tf.concat([tf.shape(mask)[:1], tf.ones_like(_param_batch_shape(params)), [-1]], 0)
    )
    log_probs = tf.where(mask, log_probs, tf.zeros_like(log_probs))
    return tf.reduce_sum(log_probs, axis=0), state


@functools.cache
def compiled(kind: str, jit_compile: bool, cell: Cell, precision: str = "fp32"):
    """The `tf.function` for `kind` in {"windows", "chunk", "start"}, the network's
    cell and the matmul precision (built on first use)."""
    fn = {"windows": window_log_probs, "chunk": stream_chunk, "start": stream_start}[kind]
    fn = functools.partial(fn, cell=cell, compute_dtype=None if precision == "fp32" else precision)
    return tf.function(fn, jit_compile=jit_compile, reduce_retracing=False)


def stream_log_prob(
    params: dict,
    ids: tf.Tensor,
    temperature: tf.Tensor,
    *,
    cell: str | Cell = "lstm",
    chunk_size: int = 1024,
) -> tf.Tensor:
    """`log p(ids)` of one whole text as one sequence, the state carried across it.

    The graph form of `evaluate(..., mode="stream")` for a text whose length is only
    known at run time (the exported SavedModel's `log_prob`): `stream_start` scores the
    first token, then `stream_chunk` runs over chunks of `chunk_size` characters inside
    a `tf.while_loop` (the last chunk padded and masked), so memory is bounded by the
    chunk.

    Args:
      params: params structure, param batch shape `pb`.
      ids: int32 `[N]`, `N >= 1`.
      temperature: scalar float.
      cell: the network's cell (`network.cell_type`).
      chunk_size: Python int, characters per chunk.

    Returns:
      `pb` log-likelihoods in nats.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    cell = get_cell(cell)
    first, state = stream_start(params, ids[:1], temperature, cell=cell)  # :: pb + [1]
    inputs, targets = ids[:-1], ids[1:]
    count = tf.shape(inputs)[0]
    num_chunks = (count + chunk_size - 1) // chunk_size
    pad = num_chunks * chunk_size - count

    def chunks(x):  # :: [num_chunks, 1, C]
        return tf.reshape(tf.pad(x, [[0, pad]]), [num_chunks, 1, chunk_size])

    mask = chunks(tf.ones_like(inputs, tf.bool))
    inputs, targets = chunks(inputs), chunks(targets)

    def body(i, total, state):
        log_lik, state = stream_chunk(
            params, state, inputs[i], targets[i], mask[i], temperature, cell=cell
        )
        return i + 1, total + log_lik, state

    _, total, _ = tf.while_loop(lambda i, *_: i < num_chunks, body, (tf.constant(0), first, state))
    return total[..., 0]
