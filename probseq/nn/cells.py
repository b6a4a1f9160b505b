"""Recurrent cells (LSTM, GRU, basic tanh RNN) behind one functional interface.

Every cell uses one params structure, with a gate width of
`G * H` where `G` is the cell's number of gate blocks (LSTM 4, GRU 3, RNN 1)::

    {
      "layer_0": {"input_kernel": [..., V, G*H],      # gathered, never multiplied
                  "recurrent_kernel": [..., H, G*H],
                  "bias": [..., G*H]},
      "layer_l": {"input_kernel": [..., H, G*H], ...},  # layers l > 0
      "output": {"kernel": [..., H, V_out], "bias": [..., V_out]},   # optional
    }

`...` are optional leading *param batch* dims `pb`, the same for every leaf. A structure
without `"output"` (e.g. an encoder) works with `cell_hidden` / `cell_encode` only.

#### Cell equations

With `x` the layer input, `h` the previous hidden state, the input projection
`a = x Wx + b` (a row gather of `input_kernel` for tokens, plus the bias) and the recurrent
projection `r = h Wh` (one GEMM, the only matmul inside the time loop):

- `"lstm"` (gate order `i, f, o, u`; forget bias +1)::

      i, f, o, u = split(a + r)
      c' = sigmoid(f + 1) * c + sigmoid(i) * tanh(u)
      h' = sigmoid(o) * tanh(c')

- `"gru"`, the "reset-after" variant of cuDNN / PyTorch / Keras `reset_after=True`
  (gate order `r, z, n`; one bias, which sits outside the reset)::

      r = sigmoid(x Wr + b_r + h Ur)
      z = sigmoid(x Wz + b_z + h Uz)
      n = tanh(x Wn + b_n + r * (h Un))
      h' = (1 - z) * n + z * h

  Reset-after keeps one fused `h [Ur Uz Un]` GEMM per step; the original reset-before
  GRU (`n = tanh(x Wn + (r * h) Un + b_n)`) needs a second, dependent matmul per step.
  PyTorch's separate recurrent bias `b_hn` (inside the reset) is not used.

- `"rnn"` (Elman / basic tanh RNN)::

      h' = tanh(x Wx + h Wh + b)

Every function takes `cell=` (a registered name such as `"lstm"`, `"gru"`, `"rnn"`, or a
`Cell`), checked against the params' gate width; the default is `"lstm"`. A cell's
identity is stated, never guessed from the width: two cells with the same number of
gate blocks (an LSTM and a peephole or layer-normalized LSTM) have the same shapes and
different equations. Networks hold their `Cell` (`network.cell_type`) and every
distribution, evaluation kernel and posterior reads it from there. `register_cell` adds
a user-defined cell under its name.

The state of one layer is `LSTMState(c, h)` for the LSTM and `HiddenState(h)` for the
GRU and the RNN; every tensor is `[..., H]`. The first step of a sequence may read no
token: then `a = b`.

Init (`init_cell_params`): Glorot-uniform input and output kernels (layer 0's token
table with 4x the Glorot limit), an orthogonal recurrent kernel (orthonormal rows across
all gates), zero biases; for `"lstm"` identical to
`probseq.nn.init_lstm_params` for the same seed.

Shape conventions: with params batch shape `pb` (rank k), token inputs have shape
`pb + rest + [T]`; with unbatched params any `[..., T]`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from probseq.nn import threads
from probseq.seeds import split, stateless_seed

__all__ = [
    "CELL_NAMES",
    "Cell",
    "HiddenState",
    "LSTMState",
    "cell_encode",
    "cell_hidden",
    "cell_initial_state",
    "cell_layer",
    "cell_logits",
    "cell_param_shapes",
    "cell_start",
    "cell_step",
    "precision_dtype",
    "dropout_masks",
    "gate_step",
    "get_cell",
    "init_cell_params",
    "init_seed",
    "network_cell",
    "num_layers_of",
    "param_batch_ndims",
    "reduced_precision_params",
    "register_cell",
    "sizes_of",
    "slice_sizes",
    "split_rows",
]


class LSTMState(NamedTuple):
    """One LSTM layer's state: cell `c` and hidden `h`, each `[..., H]`."""

    c: tf.Tensor
    h: tf.Tensor


def gate_step(z: tf.Tensor, c: tf.Tensor) -> LSTMState:
    """The LSTM cell update from pre-activations `z :: [..., 4H]` and cell `c :: [..., H]`."""
    i, f, o, u = tf.split(z, 4, axis=-1)
    c_new = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(u)
    h_new = tf.sigmoid(o) * tf.tanh(c_new)
    return LSTMState(c_new, h_new)


class HiddenState(NamedTuple):
    """One layer's state for cells whose state is the hidden vector alone: `h :: [..., H]`."""

    h: tf.Tensor


@dataclasses.dataclass(frozen=True)
class Cell:
    """A recurrent cell: its gate count and its update rule.

    Attributes:
      name: `"lstm"`, `"gru"` or `"rnn"`.
      num_gates: `G`, the number of `H`-wide blocks of the pre-activations.
      update: `(a, r, state) -> state`, with `a :: [..., G*H]` the input projection
        (bias included), `r :: [..., G*H]` the recurrent projection `h Wh` and `state`
        the layer's previous state.
      zero_state: `zeros :: [..., H] -> state`.
    """

    name: str
    num_gates: int
    update: Callable
    zero_state: Callable


def _lstm_update(a: tf.Tensor, r: tf.Tensor, state: LSTMState) -> LSTMState:
    return gate_step(a + r, state.c)


def _gru_update(a: tf.Tensor, r: tf.Tensor, state: HiddenState) -> HiddenState:
    a_r, a_z, a_n = tf.split(a, 3, axis=-1)
    r_r, r_z, r_n = tf.split(r, 3, axis=-1)
    reset = tf.sigmoid(a_r + r_r)
    update = tf.sigmoid(a_z + r_z)
    candidate = tf.tanh(a_n + reset * r_n)
    return HiddenState((1.0 - update) * candidate + update * state.h)


def _rnn_update(a: tf.Tensor, r: tf.Tensor, state: HiddenState) -> HiddenState:
    del state
    return HiddenState(tf.tanh(a + r))


def _normalize(x: tf.Tensor, eps: float = 1e-5) -> tf.Tensor:
    """Layer normalization over the last axis without gain or bias."""
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + eps)


def _lnlstm_update(a: tf.Tensor, r: tf.Tensor, state: LSTMState) -> LSTMState:
    """Layer-normalized LSTM (Ba et al., 2016, without learned gains): each gate's
    recurrent pre-activation `h Wh` and the new cell state are normalized over their `H`
    units; the input projection keeps the bias (it carries the gates' offsets)."""
    r = tf.concat([_normalize(part) for part in tf.split(r, 4, axis=-1)], axis=-1)
    i, f, o, u = tf.split(a + r, 4, axis=-1)
    c_new = tf.sigmoid(f + 1.0) * state.c + tf.sigmoid(i) * tf.tanh(u)
    return LSTMState(c_new, tf.sigmoid(o) * tf.tanh(_normalize(c_new)))


_CELLS = {
    "lstm": Cell("lstm", 4, _lstm_update, lambda zeros: LSTMState(zeros, zeros)),
    "lnlstm": Cell("lnlstm", 4, _lnlstm_update, lambda zeros: LSTMState(zeros, zeros)),
    "gru": Cell("gru", 3, _gru_update, HiddenState),
    "rnn": Cell("rnn", 1, _rnn_update, HiddenState),
}
CELL_NAMES = tuple(_CELLS)  # the built-in cells


def register_cell(cell: Cell, *, replace: bool = False) -> Cell:
    """Make `cell` available by its name (e.g. `LSTMNetwork(..., cell="peephole")`).

    A `Cell` gives `num_gates` (`G`: the params have gate width `G * H` and the shapes of
    the built-in cells), `update(a, r, state) -> state` with `a = x Wx + b` and
    `r = h Wh` (each `[..., G*H]`), and `zero_state(zeros [..., H]) -> state` (a
    NamedTuple whose last field is the hidden vector `h`). Passing the `Cell` object
    itself as `cell=` also works: the network registers it under its name, because a
    network passed through `tf.function` is rebuilt from its cell's name (so two
    different cells cannot share one).

    Raises:
      ValueError: the name is taken (by a built-in cell always; by another registered
        cell unless `replace=True`).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"register_cell takes a Cell, got {type(cell).__name__}.")
    if cell.name in CELL_NAMES or (cell.name in _CELLS and not replace):
        raise ValueError(f"a cell named {cell.name!r} is already registered.")
    _CELLS[cell.name] = cell
    return cell


def get_cell(cell: str | Cell) -> Cell:
    """The registered `Cell` of that name (a `Cell` is returned as is)."""
    if isinstance(cell, Cell):
        return cell
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {sorted(_CELLS)} (registered), got {cell!r}.")
    return _CELLS[cell]


def network_cell(network) -> Cell:
    """The `Cell` a network states: its `cell_type`, else the cell named by its `cell`,
    else (a network-like object that states none) the LSTM. Never read from shapes."""
    cell_type = getattr(network, "cell_type", None)
    return cell_type if cell_type is not None else get_cell(getattr(network, "cell", "lstm"))


# ------------------------------------------------------------------------ init
def _glorot(shape: list[int], seed, dtype) -> tf.Tensor:
    limit = (6.0 / (shape[-2] + shape[-1])) ** 0.5
    return tf.random.stateless_uniform(shape, seed, -limit, limit, dtype=dtype)


# The layer-0 input kernel is a lookup table for one-hot tokens: one row is active at a
# time, so the Glorot fan-in (V) understates the per-unit input. Scaling its Glorot limit
# by 4 (and the joint orthogonal recurrent init below) made a 2x256 char-LM on Shakespeare
# learn markedly faster: 3.34 vs 3.75 bits/char of training NLL after 250 steps
# (docs/ARCHITECTURE.md, "Initialization").
INPUT_TABLE_SCALE = 4.0


def _orthogonal(hidden: int, width: int, seed, dtype) -> tf.Tensor:
    """`[H, width]` with orthonormal rows (width >= H), as Keras' Orthogonal initializer."""
    gaussian = tf.random.stateless_normal([width, hidden], seed, dtype=dtype)
    q, r = tf.linalg.qr(gaussian)  # q :: [width, H], orthonormal columns
    q = q * tf.sign(tf.linalg.diag_part(r))[None, :]  # Haar-distributed (Mezzadri 2007)
    return tf.transpose(q)


def init_cell_params(
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    cell: str | Cell = "lstm",
    output_size: int | None = None,
    output: bool = True,
    seed=None,
    dtype=tf.float32,
) -> dict:
    """A freshly initialized params structure (plain tensors) for `cell`.

    Args:
      vocab_size: number of input symbols (rows of `layer_0/input_kernel`).
      hidden_size: `H`, units per layer.
      num_layers: stacked layers.
      cell: `"lstm"`, `"gru"` or `"rnn"`.
      output_size: columns of the output head (default `vocab_size`).
      output: include the `"output"` head (False for an encoder).
      seed: stateless seed: a pair of ints or shape-[2] tensor, or a Python int `s`
        (taken as the pair `(s, 0)`, so it is reproducible); None draws a fresh one.
      dtype: float dtype.

    Returns:
      The params dict; leaves `[V, G*H]`, `[H, G*H]`, `[G*H]`, `[H, V_out]`, `[V_out]`.
    """
    gates = get_cell(cell).num_gates
    seeds = split(init_seed(seed), 2 * num_layers + 1)
    params = {}
    for index in range(num_layers):
        rows = vocab_size if index == 0 else hidden_size
        params[f"layer_{index}"] = {
            "input_kernel": _glorot([rows, gates * hidden_size], seeds[2 * index], dtype)
            * (INPUT_TABLE_SCALE if index == 0 else 1.0),
            "recurrent_kernel": _orthogonal(
                hidden_size, gates * hidden_size, seeds[2 * index + 1], dtype
            ),
            "bias": tf.zeros([gates * hidden_size], dtype),
        }
    if output:
        columns = vocab_size if output_size is None else output_size
        params["output"] = {
            "kernel": _glorot([hidden_size, columns], seeds[-1], dtype),
            "bias": tf.zeros([columns], dtype),
        }
    return params


def cell_param_shapes(
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    cell: str | Cell = "lstm",
    output_size: int | None = None,
    output: bool = True,
) -> dict:
    """The shapes (`tf.TensorShape` leaves) of `init_cell_params`'s params, without
    creating them."""
    width = get_cell(cell).num_gates * hidden_size
    shapes = {
        f"layer_{index}": {
            "input_kernel": [vocab_size if index == 0 else hidden_size, width],
            "recurrent_kernel": [hidden_size, width],
            "bias": [width],
        }
        for index in range(num_layers)
    }
    if output:
        columns = vocab_size if output_size is None else output_size
        shapes["output"] = {"kernel": [hidden_size, columns], "bias": [columns]}
    return {
        group: {key: tf.TensorShape(shape) for key, shape in leaves.items()}
        for group, leaves in shapes.items()
    }


def init_seed(seed) -> tf.Tensor:
    """A stateless seed; a Python int `s` becomes `(s, 0)`.

    `samplers.sanitize_seed(int)` draws the pair with a *stateful* op, so the same int
    would give different weights on every call; initialization must be reproducible.
    """
    return stateless_seed(seed)


# --------------------------------------------------------------- static sizes
def num_layers_of(params: dict) -> int:
    """Number of recurrent layers in a params structure."""
    return _num_layers(params)


def param_batch_ndims(params: dict) -> int:
    """Number of leading (param batch) dims of a params structure (static)."""
    return params["layer_0"]["bias"].shape.rank - 1


def sizes_of(params: dict) -> tuple[int, int]:
    """Static `(output_size, hidden_size)` of a params structure with an output head (the
    output size is the vocabulary size of a token model)."""
    return int(params["output"]["kernel"].shape[-1]), _hidden_size(params)


def _num_layers(params: dict) -> int:
    return sum(1 for key in params if key.startswith("layer_"))


def _batch_ndims(params: dict) -> int:
    return params["layer_0"]["recurrent_kernel"].shape.rank - 2


def _hidden_size(params: dict) -> int:
    return int(params["layer_0"]["recurrent_kernel"].shape[-2])


def _checked_cell(params: dict, cell: str | Cell | None) -> Cell:
    """`cell` (None: `"lstm"`) checked against the params' gate width."""
    kernel = params["layer_0"]["recurrent_kernel"]
    hidden, width = kernel.shape[-2], kernel.shape[-1]
    cell = get_cell("lstm" if cell is None else cell)
    if hidden is not None and width is not None and width != cell.num_gates * hidden:
        raise ValueError(
            f"params have gate width {width} for hidden size {hidden}, but cell "
            f"{cell.name!r} needs {cell.num_gates} * {hidden} = {cell.num_gates * hidden}; "
            "pass the cell the params were made for (cell=...)."
        )
    return cell


def cell_initial_state(
    params: dict, batch_shape, *, cell: str | Cell | None = None, dtype=None
) -> tuple:
    """All-zero state, one per layer (`LSTMState` or `HiddenState`), each `batch + [H]`."""
    cell = _checked_cell(params, cell)
    dtype = dtype or params["layer_0"]["bias"].dtype  # (kernels may be bf16 copies)
    shape = tf.concat([tf.cast(batch_shape, tf.int32), [_hidden_size(params)]], axis=0)
    zeros = tf.zeros(shape, dtype=dtype)
    return tuple(cell.zero_state(zeros) for _ in range(_num_layers(params)))


# ------------------------------------------------------- param-batch plumbing
def dropout_masks(rate: float, state, seed) -> tuple | None:
    """Locked (variational) dropout masks for `cell_logits(..., masks=)`: per layer a
    `{0, 1 / (1 - rate)}` multiplier shaped like that layer's hidden state, drawn once
    per sequence and shared over its steps (Gal & Ghahramani, 2016). None for
    `rate == 0`. `seed`: a stateless seed (one stream per layer is split from it)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}.")
    if rate == 0.0:
        return None
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(state))
    keep = 1.0 - rate
    masks = []
    for index, layer_state in enumerate(state):
        h = layer_state[-1]
        draw = tf.random.stateless_uniform(tf.shape(h), seed=seeds[index], dtype=h.dtype)
        masks.append(tf.cast(draw < keep, h.dtype) / keep)
    return tuple(masks)


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


def precision_dtype(precision) -> tf.DType | None:
    """The matmul dtype of a precision: None for fp32 (`None`, `"fp32"`, `"float32"`),
    `tf.bfloat16` for `"bf16"` / `"bfloat16"` / `tf.bfloat16`."""
    if isinstance(precision, tf.DType):
        precision = precision.name
    if precision is None or precision in ("fp32", "float32"):
        return None
    if precision in ("bf16", "bfloat16"):
        return tf.bfloat16
    raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")


def reduced_precision_params(params: dict, precision) -> dict:
    """`params` with the matmul kernels (every `recurrent_kernel`, the `input_kernel` of
    layers above the first, the output `kernel`) cast to the precision's dtype, for
    inference: the kernels then run in it without a cast per step. Layer 0's token table
    (a gather, no matmul) and the biases stay as they are. Unchanged for fp32."""
    dtype = precision_dtype(precision)
    if dtype is None:
        return params

    def cast(path, leaf):
        name = path[-1]
        if name == "recurrent_kernel" or (name == "kernel" and path[0] == "output"):
            return tf.cast(leaf, dtype)
        if name == "input_kernel" and path[0] != "layer_0":
            return tf.cast(leaf, dtype)
        return leaf

    return {
        group: {name: cast((group, name), leaf) for name, leaf in leaves.items()}
        for group, leaves in params.items()
    }


def _matmul(
    x: tf.Tensor, kernel: tf.Tensor, k: int, lead: int = 0, compute: tf.DType | None = None
) -> tf.Tensor:
    """`x :: [L]*lead + pb + rest + [H]` times `kernel :: pb + [H, K]` -> `... + [K]`.

    With `compute` (e.g. `tf.bfloat16`) both operands are cast to it (a no-op for a kernel
    already in it) and the product (accumulated in fp32 by the CPU kernels) cast back to
    `x`'s dtype."""
    if compute is not None and compute != x.dtype:
        product = _matmul(tf.cast(x, compute), tf.cast(kernel, compute), k, lead)
        return tf.cast(product, x.dtype)
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


def _row_gather(kernel: tf.Tensor, k: int, rest: int) -> Callable:
    """`gather(tokens)`: rows of `kernel :: pb + [V, F]` for `tokens :: pb + rest` (rank
    `rest` after the `k` param batch dims) -> `pb + rest + [F]`.

    With a param batch, the batch is folded into the row index of one flat table
    (`row = p * V + token`), computed once, so the returned function is one gather.
    """
    if k == 0:
        return lambda tokens: tf.gather(kernel, tokens)
    shape = tf.shape(kernel)
    flat = tf.reshape(kernel, [-1, shape[-1]])
    offsets = tf.range(tf.reduce_prod(shape[:k])) * shape[-2]
    offsets = tf.reshape(offsets, tf.concat([shape[:k], tf.ones([rest], tf.int32)], 0))

    def gather(tokens):
        same = tokens.dtype == offsets.dtype
        return tf.gather(flat, tokens + (offsets if same else tf.cast(offsets, tokens.dtype)))

    return gather


# ------------------------------------------------------------------ the core
def _recur(
    read: Callable, num_steps, recurrent_kernel, state, cell: Cell, keep_outputs: bool, compute
):
    """The time loop: `state = cell.update(read(t), h Wh, state)` for `t < num_steps`.

    `read(t)` returns step `t`'s input projection `batch + [G*H]` (bias included). With
    `compute` the product `h Wh` runs in that dtype, and its weight gradient is
    accumulated over the steps in fp32 (see `_low_precision_product`).
    """
    k = recurrent_kernel.shape.rank - 2
    outputs = tf.TensorArray(state.h.dtype, size=num_steps, element_shape=state.h.shape)
    product = functools.partial(_matmul, kernel=recurrent_kernel, k=k, compute=compute)
    if compute is not None and compute != recurrent_kernel.dtype and k == 0:
        product = _low_precision_product(recurrent_kernel, compute)

    def body(t, state, outputs):
        new = cell.update(read(t), product(state.h), state)
        if keep_outputs:
            outputs = outputs.write(t, new.h)
        return t + 1, new, outputs

    _, state, outputs = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), state, outputs),
        maximum_iterations=num_steps,
    )
    return (outputs.stack() if keep_outputs else None), state


def _low_precision_product(kernel: tf.Tensor, compute: tf.DType) -> Callable:
    """`product(h) = h @ kernel` in `compute` (bf16) inside a time loop, the kernel cast
    ONCE before the loop, with the weight gradient accumulated over the steps in fp32.

    Cast inside the loop instead, TensorFlow would cast the whole `[H, G*H]` kernel every
    step and keep every step's cast copy for the backward pass: at H = 512 that costs as
    much as the bf16 matmul saves. Captured as it is, the bf16 kernel's gradient would
    accumulate over the steps in bf16. So the product has its own gradient: `dh = dy
    W^T` from the bf16 copy, `dW = h^T dy` in bf16 cast to the fp32 kernel's dtype,
    which the loop's gradient sums in fp32.
    """
    low = tf.cast(kernel, compute)

    @tf.custom_gradient
    def product(h, kernel):
        h_low = tf.cast(h, compute)
        out = tf.cast(tf.matmul(h_low, low), h.dtype)

        def grad(dy):
            dy_low = tf.cast(dy, compute)
            dh = tf.cast(tf.matmul(dy_low, low, transpose_b=True), h.dtype)
            dw = tf.cast(tf.matmul(h_low, dy_low, transpose_a=True), kernel.dtype)
            return dh, dw

        return out, grad

    def call(h):  # a batch of more than one axis: the kernel cast inside the loop
        return product(h, kernel) if h.shape.rank == 2 else _matmul(h, kernel, 0, compute=compute)

    return call


def cell_layer(
    inputs: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    state,
    *,
    cell: str | Cell | None = None,
    keep_outputs: bool = True,
    compute_dtype=None,
) -> tuple[tf.Tensor | None, tuple]:
    """Run one layer over time; only `h Wh` and the cell update sit inside the loop.

    Args:
      inputs: `[T] + batch + [G*H]`, the input projections `x Wx + b` (time-major).
      recurrent_kernel: `pb + [H, G*H]`; `batch = pb + rest`.
      state: the layer's initial state (`LSTMState` / `HiddenState`), tensors `batch + [H]`.
      cell: the cell (None: inferred from the kernel's width).
      keep_outputs: also return the hidden outputs (False: final state only).
      compute_dtype: the recurrent product's precision (`precision_dtype()`; None: fp32).

    Returns:
      hidden outputs `[T] + batch + [H]` (or None), and the final state.
    """
    cell = _checked_cell({"layer_0": {"recurrent_kernel": recurrent_kernel}}, cell)
    num_steps = tf.shape(inputs)[0]
    projections = tf.TensorArray(inputs.dtype, size=num_steps).unstack(inputs)
    return _recur(
        projections.read,
        num_steps,
        recurrent_kernel,
        state,
        cell,
        keep_outputs,
        precision_dtype(compute_dtype),
    )


def _token_reader(layer: dict, tokens_tm: tf.Tensor, k: int) -> Callable:
    """`read(t)`: layer 0's input projection at step `t`, gathered inside the time loop.

    The bias is folded into the `[V, G*H]` table once (`W_in + b`), and each step gathers
    its `batch` rows from that small table. Building the whole `[T] + batch + [G*H]`
    projection before the loop instead costs several passes over a large tensor (the
    gather, the bias add, the loop's copy; backward: the stack, a bias reduction over
    `T * batch` rows, the gather gradient), measured 7-15% slower on the benchmark's
    training and evaluation cases (benchmarks/ANALYSIS.md).
    """
    table = layer["input_kernel"] + layer["bias"][..., None, :]  # :: pb + [V, G*H]
    steps = tf.TensorArray(tokens_tm.dtype, size=tf.shape(tokens_tm)[0]).unstack(tokens_tm)
    gather = _row_gather(table, k, tokens_tm.shape.rank - 1 - k)
    return lambda t: gather(steps.read(t))


def _stack_layers(
    params: dict, tokens_tm: tf.Tensor, state, cell: Cell, keep_top: bool, masks=None,
    compute=None,
):  # fmt: skip
    """All layers over time-major tokens `[T] + pb + rest`; top outputs and final states.

    `masks` (optional, one per layer, each `pb + rest + [H]`): multipliers of each layer's
    outputs at every step (locked dropout); layer `l`'s mask scales the input of layer
    `l + 1`, the last one the top outputs. The carried states are never masked.
    """
    k = _batch_ndims(params)
    extra = tokens_tm.shape.rank - 1 - k  # rank of `rest`
    num_steps = tf.shape(tokens_tm)[0]
    num_layers = _num_layers(params)
    x = None
    final = []
    for index in range(num_layers):
        layer = params[f"layer_{index}"]
        keep = keep_top or index < num_layers - 1
        if index == 0:
            read = _token_reader(layer, tokens_tm, k)
            x, last = _recur(
                read, num_steps, layer["recurrent_kernel"], state[0], cell, keep, compute
            )
        else:
            a = _matmul(x, layer["input_kernel"], k, lead=1, compute=compute)
            a = a + _expand_param(layer["bias"], k, extra, lead=1)
            x, last = cell_layer(
                a, layer["recurrent_kernel"], state[index], cell=cell, keep_outputs=keep,
                compute_dtype=compute,
            )  # fmt: skip
        if masks is not None and x is not None:
            x = x * masks[index]  # :: [T] + pb + rest + [H] times pb + rest + [H]
        final.append(last)
    return x, tuple(final)


def _in_xla_context() -> bool:
    try:  # private, but the only way to ask; without it we just never cut under XLA
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):  # pragma: no cover - depends on TF internals
        return False


def slice_sizes(rows, axis: int, state) -> list[int] | None:
    """How to cut `rows` independent batch rows into concurrently running slices.

    Args:
      rows: the number of rows (static int or tensor).
      axis: the rows' axis in the `state` tensors.
      state: the per-layer recurrent states the loops start from (their hidden sizes
        give the work per row).

    Returns the slice sizes (`parallel_chains()` of them, as even as possible), or None
    for no cut: one chain configured, `rows` not static, too little work per slice
    (`probseq.nn.threads.cut_pays`), inside an XLA compilation (XLA runs the loops one
    after another, measured slower), or state tensors without `rows` at `axis`.
    """
    chains = threads.parallel_chains()
    rows = tf.get_static_value(rows) if tf.is_tensor(rows) else rows
    if chains < 2 or rows is None or _in_xla_context():
        return None
    hidden_sizes = []
    for layer_state in state:
        for tensor in layer_state:
            if tensor.shape.rank is None or tensor.shape[axis] != rows:
                return None
        hidden_sizes.append(layer_state[-1].shape[-1])
    if None in hidden_sizes or not threads.cut_pays(int(rows), hidden_sizes, chains):
        return None
    base, extra = divmod(int(rows), chains)
    return [base + (i < extra) for i in range(chains)]


def split_rows(structure, sizes: list[int], axis: int) -> list:
    """Cut every tensor of `structure` along `axis` into `sizes`: one structure per slice."""
    pieces = [tf.split(t, sizes, axis=axis) for t in tf.nest.flatten(structure)]
    return [
        tf.nest.pack_sequence_as(structure, [parts[i] for parts in pieces])
        for i in range(len(sizes))
    ]


def _layers(
    params: dict, tokens: tf.Tensor, state, cell: Cell, keep_top: bool, masks=None, compute=None
):
    """All layers over `tokens :: pb + rest + [T]`: top outputs `[T] + pb + rest + [H]`
    (time-major; None unless `keep_top`) and the final per-layer states; `masks` as in
    `_stack_layers`.

    With `parallel_chains() > 1` and a large enough batch, the first `rest` axis is cut
    into independent slices that run concurrently (see `parallel_chains`).
    """
    k = _batch_ndims(params)
    tokens = tf.convert_to_tensor(tokens)
    rank = tokens.shape.rank
    tokens_tm = tf.transpose(tokens, [rank - 1] + list(range(rank - 1)))  # [T] + pb + rest
    state = tuple(state)
    sizes = None if rank < k + 2 else slice_sizes(tokens_tm.shape[1 + k], k, state)
    if masks is not None:
        masks = tuple(masks)
        if len(masks) != len(state):
            raise ValueError(f"masks: one per layer ({len(state)}), got {len(masks)}.")
    if sizes is None:
        return _stack_layers(params, tokens_tm, state, cell, keep_top, masks, compute)
    token_slices = tf.split(tokens_tm, sizes, axis=1 + k)
    state_slices = split_rows(state, sizes, axis=k)
    mask_slices = [None] * len(sizes) if masks is None else split_rows(masks, sizes, axis=k)
    parts = [
        _stack_layers(params, t, s, cell, keep_top, m, compute)
        for t, s, m in zip(token_slices, state_slices, mask_slices, strict=True)
    ]
    x = tf.concat([p[0] for p in parts], axis=1 + k) if keep_top else None
    final = tf.nest.map_structure(lambda *s: tf.concat(s, axis=k), *[p[1] for p in parts])
    return x, final


def _to_batch_major(x: tf.Tensor) -> tf.Tensor:
    """`[T] + lead + [F]` -> `lead + [T, F]`."""
    rank = x.shape.rank
    return tf.transpose(x, list(range(1, rank - 1)) + [0, rank - 1])


def cell_hidden(
    params: dict,
    tokens: tf.Tensor,
    state,
    *,
    cell: str | Cell | None = None,
    time_major: bool = False,
) -> tuple[tf.Tensor, tuple]:
    """Teacher-forced pass without the output head: top-layer hidden outputs.

    Args:
      params: params structure (the `"output"` head is not needed), param batch `pb`.
      tokens: int `pb + rest + [T]`, all in `[0, V)`.
      state: per-layer states, tensors `pb + rest + [H]`.
      cell: the cell matching the params (None: inferred from the gate width).
      time_major: return `[T] + pb + rest + [H]`.

    Returns:
      hidden :: `pb + rest + [T, H]` (or time-major), and the final per-layer state.
    """
    cell = _checked_cell(params, cell)
    hidden, final = _layers(params, tokens, state, cell, keep_top=True)
    return (hidden if time_major else _to_batch_major(hidden)), final


def cell_encode(params: dict, tokens: tf.Tensor, state, *, cell: str | Cell | None = None) -> tuple:
    """Final per-layer state after reading `tokens :: pb + rest + [T]` (an encoder pass).

    Same as `cell_hidden(...)[1]` without materializing the top layer's outputs.
    """
    cell = _checked_cell(params, cell)
    return _layers(params, tokens, state, cell, keep_top=False)[1]


def cell_logits(
    params: dict,
    tokens: tf.Tensor,
    state,
    *,
    cell: str | Cell | None = None,
    time_major: bool = False,
    masks=None,
    compute_dtype=None,
) -> tuple[tf.Tensor, tuple]:
    """Teacher-forced pass: next-token logits after each input token.

    Works for every cell (the default is the LSTM).

    Args:
      params: params structure with an `"output"` head, param batch shape `pb`.
      tokens: int `pb + rest + [T]`, all in `[0, V)`.
      state: per-layer states, tensors `pb + rest + [H]`.
      cell: the cell matching the params (None: inferred from the gate width).
      time_major: return logits as `[T] + pb + rest + [V_out]`.
      masks: optional locked-dropout multipliers, one per layer, each `pb + rest + [H]`
        (e.g. `probseq.nn.dropout_masks`): layer `l`'s outputs are scaled by `masks[l]`
        at every step before the next layer (the last: before the output head). The
        states carried in time are not masked.
      compute_dtype: precision of the matmuls (`"bf16"` or `tf.bfloat16`: inputs and
        kernels cast to bfloat16, products cast back; gates, states and the logits stay
        in the params' dtype). None: the params' dtype.

    Returns:
      logits :: `pb + rest + [T, V_out]` (or time-major), and the final state.
    """
    cell = _checked_cell(params, cell)
    k = _batch_ndims(params)
    tokens = tf.convert_to_tensor(tokens)
    extra = tokens.shape.rank - 1 - k
    compute = precision_dtype(compute_dtype)
    hidden, final = _layers(params, tokens, state, cell, True, masks, compute)
    out = params["output"]
    logits = _matmul(hidden, out["kernel"], k, lead=1, compute=compute)
    logits = logits + _expand_param(out["bias"], k, extra, lead=1)
    return (logits if time_major else _to_batch_major(logits)), final


def cell_step(
    params: dict,
    token: tf.Tensor | None,
    state,
    *,
    cell: str | Cell | None = None,
    compute_dtype=None,
) -> tuple[tf.Tensor, tuple]:
    """One step through all layers and the output head.

    Args:
      params: params structure with param batch shape `pb`.
      token: int `pb + rest`, or None for "no input" (the first step of a sequence).
      state: per-layer states, tensors `pb + rest + [H]`.
      cell: the cell matching the params (None: inferred from the gate width).

    Returns:
      logits :: `pb + rest + [V_out]` for the next token, and the new state.
    """
    cell = _checked_cell(params, cell)
    k = _batch_ndims(params)
    new_states = []
    x = None
    compute = precision_dtype(compute_dtype)
    for index in range(_num_layers(params)):
        layer = params[f"layer_{index}"]
        layer_state = state[index]
        extra = layer_state.h.shape.rank - 1 - k
        a = _expand_param(layer["bias"], k, extra)
        if index == 0:
            if token is not None:
                token = tf.convert_to_tensor(token)
                gather = _row_gather(layer["input_kernel"], k, token.shape.rank - k)
                a = a + gather(token)
        else:
            a = a + _matmul(x, layer["input_kernel"], k, compute=compute)
        r = _matmul(layer_state.h, layer["recurrent_kernel"], k, compute=compute)
        new = cell.update(a, r, layer_state)
        new_states.append(new)
        x = new.h
    out = params["output"]
    extra = x.shape.rank - 1 - k
    logits = _matmul(x, out["kernel"], k, compute=compute) + _expand_param(out["bias"], k, extra)
    return logits, tuple(new_states)


def cell_start(
    params: dict, *, cell: str | Cell | None = None, compute_dtype=None
) -> tuple[tf.Tensor, tuple]:
    """The first step of a sequence: zero state, no input token.

    Returns logits :: `pb + [V_out]` and the state after it (`pb + [H]` per layer).
    """
    k = _batch_ndims(params)
    batch = tf.shape(params["layer_0"]["bias"])[:k]
    state = cell_initial_state(params, batch, cell=cell)
    return cell_step(params, None, state, cell=cell, compute_dtype=compute_dtype)
