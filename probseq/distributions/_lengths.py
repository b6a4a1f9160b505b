"""Variable-length token sequences: an end token (`eos`), per-example `lengths`, ragged values.

A token distribution with `num_steps = T` is over sequences padded to `T`:

* `eos` (a token id): a sequence ends at its first EOS (which is scored) or at `T`.
  Positions after the first EOS are padding, not scored, and must hold EOS: the
  *canonical* padded form. A non-canonical value has probability 0 (`log_prob = -inf`).
  The probabilities of all canonical sequences sum to one.
* `lengths` (batch-shaped ints in `[0, T]`): only the first `L` positions are data.
  Without `eos` the first `L` tokens are scored, which is `p(x_1..x_L)`, exactly the
  unpadded sequence's log-probability; positions `>= L` are never read or scored (they
  may hold anything, e.g. `-1`). With `eos` the sequence is `x_1..x_L` followed by EOS
  at position `L` (when `L < T`), as if EOS padding started at `L`.
* A `tf.RaggedTensor` or a Python list of sequences of different lengths is padded and
  its row lengths act as `lengths` (rows hold at most `T` tokens).

The value may be shorter than `T` in its last axis when `eos` or `lengths` is set (a
bucketed batch); the kernel then runs over `min(T, width + 1)` steps with `eos`, or
`width` steps without.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["canonical_tokens", "dense_and_lengths", "finish_step"]


def dense_and_lengths(value, num_steps: int, name: str):
    """`(dense value, row lengths or None)` for a ragged value or a list of unequal rows.

    Other values are returned unchanged with `None`.
    """
    if isinstance(value, (list, tuple)) and value and _is_ragged_list(value):
        value = tf.ragged.constant(value, dtype=tf.int32)
    if not isinstance(value, tf.RaggedTensor):
        return value, None
    if value.dtype.is_floating or value.dtype.is_bool or not value.dtype.is_integer:
        raise TypeError(f"{name}: tokens must be integer token ids, got dtype {value.dtype.name}.")
    if value.ragged_rank != 1 or value.shape.rank != 2:
        raise ValueError(
            f"{name}: a ragged value must have shape [num_sequences, (length)], got "
            f"{value.shape} with ragged_rank {value.ragged_rank}."
        )
    lengths = tf.cast(value.row_lengths(), tf.int32)
    longest = tf.get_static_value(tf.reduce_max(lengths)) if tf.executing_eagerly() else None
    if longest is not None and longest > num_steps:
        raise ValueError(
            f"{name}: a sequence has {longest} tokens, more than num_steps={num_steps}."
        )
    dense = value.to_tensor(default_value=0)
    return dense, lengths


def _is_ragged_list(value) -> bool:
    try:
        array = np.asarray(value)
    except ValueError:  # NumPy >= 1.24: "inhomogeneous shape"
        return True
    return array.dtype == object


def canonical_tokens(x, lengths, eos: int | None, num_steps: int):
    """Padding-safe tokens, the scored positions, and whether each value is canonical.

    Args:
      x: int32 `rest + [W0]`, `W0 <= num_steps`.
      lengths: int32 broadcastable to `rest`: data positions per sequence.
      eos: the end token or None.
      num_steps: `T`.

    Returns:
      `(tokens, scored, canonical)`: tokens `rest + [W]` with every padding position
      replaced by EOS (or 0 without `eos`), so the network never reads out-of-range
      padding; bool `scored :: rest + [W]`; bool `canonical :: rest` (None without `eos`).
      `W = min(T, W0 + 1)` with `eos` (room for the EOS that ends a full-width row),
      else `W0`.
    """
    width0 = x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]
    if eos is not None:
        if isinstance(width0, int):
            width = min(num_steps, width0 + 1)
        else:
            width = tf.minimum(num_steps, width0 + 1)
        rank = x.shape.rank
        x = tf.pad(x, [[0, 0]] * (rank - 1) + [[0, width - width0]], constant_values=eos)
    else:
        width = width0
    positions = tf.range(width)
    inside = positions < tf.expand_dims(lengths, -1)  # :: rest + [W]
    pad = 0 if eos is None else eos
    x = tf.where(inside, x, tf.cast(pad, x.dtype))
    if eos is None:
        return x, inside, None
    is_eos = tf.equal(x, eos)
    first = tf.reduce_min(tf.where(is_eos, positions, width), axis=-1)  # :: rest
    after = positions > tf.expand_dims(first, -1)
    scored = tf.logical_not(after)
    canonical = tf.reduce_all(tf.logical_or(tf.logical_not(after), is_eos), axis=-1)
    return x, scored, canonical


def finish_step(token, done, t, *, eos: int | None, lengths):
    """Tokens after sequences ended: EOS (or 0 past `lengths` without `eos`).

    Args:
      token: int32 drawn tokens of step `t` (0-based), any shape.
      done: bool like `token`, True where the sequence emitted EOS before step `t`.
      t: scalar int32 step.
      eos: end token or None; lengths: None or int32 broadcastable to `token`.

    Returns:
      `(token, done)` for the next step.
    """
    stop = done
    if lengths is not None:
        stop = tf.logical_or(stop, t >= lengths)
    pad = 0 if eos is None else eos
    token = tf.where(stop, tf.cast(pad, token.dtype), token)
    if eos is not None:
        done = tf.logical_or(done, tf.equal(token, eos))
    elif lengths is not None:
        done = tf.logical_or(done, t + 1 >= lengths)
    return token, done
