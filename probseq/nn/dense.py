"""The functional core for real-valued inputs: a dense input encoder instead of a gather.

Params layout as in `probseq.nn.cells`, with layer 0 multiplying its input::

    layer_0:  input_kernel [..., D, G*H] (x W_in, one GEMM over all steps), recurrent_kernel,
              bias
    layer_l:  as for tokens (l >= 1)
    output:   kernel [..., H, P], bias [..., P]   (P: the emission head's parameters)

A step that reads "no input" (the first step of a sequence) has a zero input term, as for
tokens: `a = b`. Leading param batch dims `pb` are allowed on every leaf; inputs are then
`pb + rest + [T, D]`.
"""

from __future__ import annotations

import tensorflow as tf

from probseq.nn.cells import (
    Cell,
    _batch_ndims,
    _checked_cell,
    _expand_param,
    _matmul,
    _num_layers,
    cell_layer,
)

__all__ = ["dense_outputs", "dense_step"]


def dense_outputs(
    params: dict, inputs: tf.Tensor, state, *, cell: str | Cell = "lstm", time_major=False
) -> tuple[tf.Tensor, tuple]:
    """Teacher-forced pass over real-valued inputs: the head's parameters after each step.

    Args:
      params: params structure (dense layer 0, an `"output"` head), param batch `pb`.
      inputs: float `pb + rest + [T, D]`, step `t`'s input.
      state: per-layer states, tensors `pb + rest + [H]`.
      cell: the cell the params are for.
      time_major: return `[T] + pb + rest + [P]`.

    Returns:
      outputs `pb + rest + [T, P]` (or time-major) and the final per-layer state.
    """
    cell = _checked_cell(params, cell)
    k = _batch_ndims(params)
    rank = inputs.shape.rank
    x = tf.transpose(inputs, [rank - 2, *range(rank - 2), rank - 1])  # :: [T] + lead + [D]
    extra = rank - 2 - k
    final = []
    for index in range(_num_layers(params)):
        layer = params[f"layer_{index}"]
        a = _matmul(x, layer["input_kernel"], k, lead=1)
        a = a + _expand_param(layer["bias"], k, extra, lead=1)
        x, last = cell_layer(a, layer["recurrent_kernel"], state[index], cell=cell)
        final.append(last)
    out = params["output"]
    outputs = _matmul(x, out["kernel"], k, lead=1) + _expand_param(out["bias"], k, extra, lead=1)
    if not time_major:
        rank = outputs.shape.rank
        outputs = tf.transpose(outputs, [*range(1, rank - 1), 0, rank - 1])
    return outputs, tuple(final)


def dense_step(
    params: dict, inputs: tf.Tensor | None, state, *, cell: str | Cell = "lstm"
) -> tuple[tf.Tensor, tuple]:
    """One step through all layers and the head.

    Args:
      params: params structure, param batch `pb`.
      inputs: float `pb + rest + [D]`, or None for "no input" (the first step).
      state: per-layer states, tensors `pb + rest + [H]`.

    Returns:
      the head's parameters `pb + rest + [P]` and the new state.
    """
    cell = _checked_cell(params, cell)
    k = _batch_ndims(params)
    x = inputs
    new_states = []
    for index in range(_num_layers(params)):
        layer = params[f"layer_{index}"]
        layer_state = state[index]
        extra = layer_state.h.shape.rank - 1 - k
        a = _expand_param(layer["bias"], k, extra)
        if x is not None:
            a = a + _matmul(x, layer["input_kernel"], k)
        new = cell.update(a, _matmul(layer_state.h, layer["recurrent_kernel"], k), layer_state)
        new_states.append(new)
        x = new.h
    out = params["output"]
    extra = x.shape.rank - 1 - k
    return _matmul(x, out["kernel"], k) + _expand_param(out["bias"], k, extra), tuple(new_states)
