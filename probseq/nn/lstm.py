"""Stacked LSTM language-model network as pure functions of a params structure.

The params structure is a dict of tensors (or `tf.Variable`s)::

    {
      "layer_0": {"input_kernel": [..., V, 4H],       # gathered, never multiplied
                  "recurrent_kernel": [..., H, 4H],
                  "bias": [..., 4H]},
      "layer_1": {"input_kernel": [..., H, 4H], ...},  # layers > 0
      ...
      "output": {"kernel": [..., H, V], "bias": [..., V]},
    }

`...` are optional leading *param batch* dims (for example S posterior draws); they are
the same for every leaf. Gate order in the `4H` axis is `i, f, o, u`; the cell is

    z = x Wx + h Wh + b,   i, f, o, u = split(z)
    c' = sigmoid(f + 1) * c + sigmoid(i) * tanh(u)
    h' = sigmoid(o) * tanh(c')

For token inputs `x Wx` is a row gather of `input_kernel`; it is computed for all time
steps at once, so only `h Wh` runs inside the (compiled) time loop. The very first step
of a sequence has *no* input token: its input term is zero, so `z = h Wh + b`.

Shape conventions. With unbatched params, token inputs have any leading shape `[..., T]`.
With params batch shape `pb` (rank k), token inputs must have shape `pb + rest + [T]`
(the caller broadcasts); every output then has the same leading dims.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

__all__ = [
    "LSTMState",
    "gate_step",
    "initial_state",
    "lstm_logits",
    "lstm_start",
    "lstm_step",
    "num_layers_of",
    "param_batch_ndims",
    "sizes_of",
]


class LSTMState(NamedTuple):
    """One layer's LSTM state: cell `c` and hidden `h`, each `[..., H]`."""

    c: tf.Tensor
    h: tf.Tensor


def num_layers_of(params: dict) -> int:
    """Number of LSTM layers in a params structure."""
    return sum(1 for k in params if k.startswith("layer_"))


def param_batch_ndims(params: dict) -> int:
    """Number of leading batch dims of a params structure (static)."""
    return params["output"]["bias"].shape.rank - 1


def sizes_of(params: dict) -> tuple[int, int]:
    """Static `(vocab_size, hidden_size)` of a params structure."""
    kernel = params["output"]["kernel"]
    return int(kernel.shape[-1]), int(kernel.shape[-2])


def initial_state(params: dict, batch_shape, dtype=None) -> tuple[LSTMState, ...]:
    """All-zero state, one `LSTMState` per layer, each tensor `batch_shape + [H]`."""
    _, hidden = sizes_of(params)
    dtype = dtype or params["output"]["kernel"].dtype
    shape = tf.concat([tf.cast(batch_shape, tf.int32), [hidden]], axis=0)
    zeros = tf.zeros(shape, dtype=dtype)
    return tuple(LSTMState(zeros, zeros) for _ in range(num_layers_of(params)))


def gate_step(z: tf.Tensor, c: tf.Tensor) -> LSTMState:
    """The LSTM cell update from pre-activations `z :: [..., 4H]` and cell `c :: [..., H]`."""
    i, f, o, u = tf.split(z, 4, axis=-1)
    c_new = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(u)
    h_new = tf.sigmoid(o) * tf.tanh(c_new)
    return LSTMState(c_new, h_new)


def _expand_param(p: tf.Tensor, k: int, extra: int, lead: int = 0) -> tf.Tensor:
    """Reshape a param leaf `pb + core` to `[1]*lead + pb + [1]*extra + core`."""
    if k == 0:
        return p
    shape = tf.shape(p)
    ones = tf.ones
    new_shape = tf.concat(
        [ones([lead], tf.int32), shape[:k], ones([extra], tf.int32), shape[k:]], axis=0
    )
    return tf.reshape(p, new_shape)


def _matmul(x: tf.Tensor, kernel: tf.Tensor, k: int, lead: int = 0) -> tf.Tensor:
    """`x :: [L]*lead + pb + rest + [H]` times `kernel :: pb + [H, K]`.

    Returns `[L]*lead + pb + rest + [K]`. Unbatched params (`k == 0`) give one plain GEMM
    over all leading dims; batched params one batched matmul over `pb`.
    """
    if k == 0:
        if x.shape.rank == 2:
            return tf.matmul(x, kernel)
        return tf.tensordot(x, kernel, 1)
    rank = x.shape.rank
    if lead:
        # Bring pb to the front so the batched matmul sees pb as its batch.
        perm = list(range(lead, lead + k)) + list(range(lead)) + list(range(lead + k, rank))
        x = tf.transpose(x, perm)
    shape = tf.shape(x)
    flat = tf.reshape(x, tf.concat([shape[:k], [-1, shape[-1]]], axis=0))
    out = tf.matmul(flat, kernel)
    out = tf.reshape(out, tf.concat([shape[:-1], tf.shape(kernel)[-1:]], axis=0))
    if lead:
        inv = list(range(k, k + lead)) + list(range(k)) + list(range(k + lead, rank))
        out = tf.transpose(out, inv)
    return out


def _gather_rows(kernel: tf.Tensor, tokens: tf.Tensor, k: int, lead: int = 0) -> tf.Tensor:
    """Input projection as a row gather: `tokens :: [L]*lead + pb + rest` -> `+ [4H]`."""
    if k == 0:
        return tf.gather(kernel, tokens)
    # Fold the param batch into the row index of one flat table: row = p * V + token.
    shape = tf.shape(kernel)
    pb, vocab = shape[:k], shape[-2]
    flat_kernel = tf.reshape(kernel, [-1, shape[-1]])
    offsets = tf.range(tf.reduce_prod(pb), dtype=tokens.dtype) * tf.cast(vocab, tokens.dtype)
    rest = tokens.shape.rank - lead - k
    offsets = tf.reshape(
        offsets, tf.concat([tf.ones([lead], tf.int32), pb, tf.ones([rest], tf.int32)], 0)
    )
    return tf.gather(flat_kernel, tokens + offsets)


def _run_layer(
    xz: tf.Tensor, recurrent_kernel: tf.Tensor, state: LSTMState, k: int
) -> tuple[tf.Tensor, LSTMState]:
    """Run one layer over time; only `h Wh` and the gate math are inside the loop.

    Args:
      xz: `[T] + batch + [4H]`, input projections with the bias already added.
      recurrent_kernel: `pb + [H, 4H]`.
      state: initial `LSTMState`, each `batch + [H]`.

    Returns:
      hidden outputs `[T] + batch + [H]` and the final state.
    """
    num_steps = tf.shape(xz)[0]
    inputs = tf.TensorArray(xz.dtype, size=num_steps).unstack(xz)
    outputs = tf.TensorArray(xz.dtype, size=num_steps, element_shape=state.h.shape)

    def body(t, c, h, outputs):
        new = gate_step(inputs.read(t) + _matmul(h, recurrent_kernel, k), c)
        return t + 1, new.c, new.h, outputs.write(t, new.h)

    _, c, h, outputs = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), state.c, state.h, outputs),
        maximum_iterations=num_steps,
    )
    return outputs.stack(), LSTMState(c, h)


def lstm_logits(
    params: dict,
    tokens: tf.Tensor,
    state: tuple[LSTMState, ...],
    *,
    time_major: bool = False,
) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """Teacher-forced pass: next-token logits after each input token.

    Layer by layer: the input projection of a whole layer is one gather (layer 0) or one
    GEMM (layers above), then a loop over time for the recurrence.

    Args:
      params: params structure (see module docstring), param batch shape `pb`.
      tokens: int `pb + rest + [T]` input tokens, all in `[0, V)`.
      state: per-layer `LSTMState`, each tensor `pb + rest + [H]`.
      time_major: return logits as `[T] + pb + rest + [V]` (saves a transpose).

    Returns:
      logits :: `pb + rest + [T, V]` (or time-major), and the final state.
    """
    k = param_batch_ndims(params)
    rank = tokens.shape.rank
    tokens_tm = tf.transpose(tokens, [rank - 1] + list(range(rank - 1)))  # [T] + pb + rest
    extra = rank - 1 - k  # rank of `rest`
    x = None
    final = []
    for index in range(num_layers_of(params)):
        layer = params[f"layer_{index}"]
        if index == 0:
            xz = _gather_rows(layer["input_kernel"], tokens_tm, k, lead=1)
        else:
            xz = _matmul(x, layer["input_kernel"], k, lead=1)
        xz = xz + _expand_param(layer["bias"], k, extra, lead=1)
        x, last = _run_layer(xz, layer["recurrent_kernel"], state[index], k)
        final.append(last)
    out = params["output"]
    logits = _matmul(x, out["kernel"], k, lead=1) + _expand_param(out["bias"], k, extra, lead=1)
    if not time_major:
        logits = tf.transpose(logits, list(range(1, rank)) + [0, rank])
    return logits, tuple(final)


def lstm_step(
    params: dict, token: tf.Tensor | None, state: tuple[LSTMState, ...]
) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """One step through all layers.

    Args:
      params: params structure with param batch shape `pb`.
      token: int `pb + rest` input token, or `None` for "no input" (the first step).
      state: per-layer `LSTMState`, each `pb + rest + [H]`.

    Returns:
      logits :: `pb + rest + [V]` for the next token, and the new state.
    """
    k = param_batch_ndims(params)
    new_states = []
    x = None
    for layer_index in range(num_layers_of(params)):
        layer = params[f"layer_{layer_index}"]
        c, h = state[layer_index]
        extra = h.shape.rank - 1 - k
        z = _matmul(h, layer["recurrent_kernel"], k)
        z = z + _expand_param(layer["bias"], k, extra)
        if layer_index == 0:
            if token is not None:
                z = z + _gather_rows(layer["input_kernel"], token, k)
        else:
            z = z + _matmul(x, layer["input_kernel"], k)
        new = gate_step(z, c)
        new_states.append(new)
        x = new.h
    out = params["output"]
    extra = x.shape.rank - 1 - k
    logits = _matmul(x, out["kernel"], k) + _expand_param(out["bias"], k, extra)
    return logits, tuple(new_states)


def lstm_start(params: dict) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """The first step of every sequence: zero state, no input token.

    Returns logits :: `pb + [V]` for the first token and the state after it
    (`pb + [H]` per layer). Depends on the params only.
    """
    k = param_batch_ndims(params)
    batch = tf.shape(params["output"]["bias"])[:k]
    return lstm_step(params, None, initial_state(params, batch))
