"""The LSTM case of the recurrent core, under its historical names.

`lstm_logits`, `lstm_step`, `lstm_start` and `initial_state` are `probseq.nn.cells`'
`cell_logits`, `cell_step`, `cell_start` and `cell_initial_state` with `cell="lstm"`; the
params layout, shape conventions and equations are documented there. In short::

    z = x Wx + h Wh + b,   i, f, o, u = split(z)
    c' = sigmoid(f + 1) * c + sigmoid(i) * tanh(u)
    h' = sigmoid(o) * tanh(c')

with `x Wx` a row gather of `layer_0/input_kernel` computed for all time steps at once, so
only `h Wh` runs inside the compiled time loop, and no input token at the first step.
"""

from __future__ import annotations

import tensorflow as tf

from probseq.nn.cells import (
    LSTMState,
    cell_initial_state,
    cell_logits,
    cell_start,
    cell_step,
    gate_step,
)

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


def num_layers_of(params: dict) -> int:
    """Number of recurrent layers in a params structure."""
    return sum(1 for k in params if k.startswith("layer_"))


def param_batch_ndims(params: dict) -> int:
    """Number of leading batch dims of a params structure (static)."""
    return params["layer_0"]["bias"].shape.rank - 1


def sizes_of(params: dict) -> tuple[int, int]:
    """Static `(vocab_size, hidden_size)` of a params structure with an output head."""
    kernel = params["output"]["kernel"]
    return int(kernel.shape[-1]), int(kernel.shape[-2])


def initial_state(params: dict, batch_shape, dtype=None) -> tuple[LSTMState, ...]:
    """All-zero LSTM state, one `LSTMState` per layer, each tensor `batch_shape + [H]`."""
    return cell_initial_state(params, batch_shape, cell="lstm", dtype=dtype)


def lstm_logits(
    params: dict, tokens: tf.Tensor, state: tuple[LSTMState, ...], *, time_major: bool = False
) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """Teacher-forced pass: logits `pb + rest + [T, V]` (or `[T] + ...`), final state."""
    return cell_logits(params, tokens, state, cell="lstm", time_major=time_major)


def lstm_step(
    params: dict, token: tf.Tensor | None, state: tuple[LSTMState, ...]
) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """One step through all layers: logits `pb + rest + [V]` and the new state."""
    return cell_step(params, token, state, cell="lstm")


def lstm_start(params: dict) -> tuple[tf.Tensor, tuple[LSTMState, ...]]:
    """The first step (zero state, no input): logits `pb + [V]`, state `pb + [H]`."""
    return cell_start(params, cell="lstm")
