"""Argument checking for `evaluate`: the model, its params, the temperature and the ids."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from probseq.distributions import LSTMAutoregressive
from probseq.nn import (
    Cell,
    LSTMNetwork,
    ParamsSpec,
    cell_initial_state,
    get_cell,
    network_cell,
    num_layers_of,
    sizes_of,
)


class ResolvedModel(NamedTuple):
    """What the kernels need: a params snapshot and the scoring settings."""

    params: dict  # plain tensors, leaves `[S] + core` or `core`
    vocab_size: int
    num_draws: int | None  # None: no draw dim
    temperature: float
    default_num_steps: int | None
    cell: Cell  # stated by the network, or given with a params dict
    precision: str = "fp32"  # the matmuls' (params' kernels cast to it for "bf16")


def resolve_model(model, params, temperature, cell=None) -> ResolvedModel:
    """Read params, sizes, cell and temperature from an `LSTMNetwork`, distribution or dict."""
    default_num_steps = None
    stated = None
    if isinstance(model, LSTMAutoregressive):
        if model.prefix is not None:
            raise ValueError(
                "evaluate scores text from a zero LSTM state; got an LSTMAutoregressive "
                "with a prefix. Evaluate the unprimed distribution (prefix=None), or "
                "prepend the prefix to the text yourself."
            )
        if model.temperature is not None:
            if temperature is not None:
                raise ValueError(
                    "temperature was given both by the LSTMAutoregressive and as an "
                    "argument; pass only one."
                )
            temperature = model.temperature
        default_num_steps = model.num_steps
        model_params = model.params_in_use
        stated = network_cell(model.network)
    elif isinstance(model, LSTMNetwork):
        model_params = model.params
        stated = network_cell(model)
    elif isinstance(model, dict):
        model_params = model
    else:
        raise TypeError(
            "model must be an LSTMNetwork, an LSTMAutoregressive or a params dict, "
            f"got {type(model).__name__}."
        )
    snapshot = _snapshot_params(model_params if params is None else params)
    num_draws = _num_draws(snapshot)
    if params is not None and model_params is not params:
        _check_core_shapes(snapshot, _snapshot_params(model_params), num_draws)
    vocab_size, _ = sizes_of(snapshot)
    if stated is not None and cell is not None and get_cell(cell) != stated:
        raise ValueError(
            f"cell={get_cell(cell).name!r} was given, but the model's network has cell "
            f"{stated.name!r}; pass only one."
        )
    chosen = stated or get_cell("lstm" if cell is None else cell)
    cell_initial_state(snapshot, [], cell=chosen)  # the gate width must match the cell
    return ResolvedModel(
        snapshot,
        vocab_size,
        num_draws,
        _check_temperature(temperature),
        default_num_steps,
        chosen,
    )


def _snapshot_params(params) -> dict:
    """Params as plain tensors (variables read once), after checking the layout."""
    if not isinstance(params, dict) or "output" not in params or "layer_0" not in params:
        raise ValueError(
            "params must be a dict with keys 'layer_0', ..., 'output' as built by "
            "probseq.nn.init_lstm_params (or LSTMNetwork.params)."
        )
    num_layers = num_layers_of(params)
    expected = {f"layer_{i}" for i in range(num_layers)} | {"output"}
    if set(params) != expected:
        raise ValueError(f"params keys must be {sorted(expected)}, got {sorted(params)}.")
    snapshot = tf.nest.map_structure(tf.convert_to_tensor, params)
    dtypes = {leaf.dtype for leaf in tf.nest.flatten(snapshot)}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating:
        raise TypeError(f"params must all share one float dtype, got {sorted(map(str, dtypes))}.")
    return snapshot


def _num_draws(params: dict, spec: ParamsSpec | None = None) -> int | None:
    """Size of the leading draw dim shared by all leaves (None if there is none)."""
    spec = spec or ParamsSpec.infer(params)
    _, batch = spec.check(params, max_batch_ndims=1, hint=" (S draws; reshape them to [S, ...])")
    if batch.rank == 0:
        return None
    if batch[0] is None or batch[0] < 1:
        raise ValueError(f"the draw dim of params must be static and >= 1, got {batch[0]}.")
    return int(batch[0])


def _check_core_shapes(params: dict, reference: dict, num_draws: int | None) -> None:
    """Explicit params must match the model's own layout (up to the draw dim)."""
    _num_draws(params, ParamsSpec.infer(reference))


def _check_temperature(temperature) -> float:
    if temperature is None:
        return 1.0
    value = np.asarray(tf.convert_to_tensor(temperature))
    if value.ndim != 0:
        raise ValueError(f"temperature must be a scalar, got shape {list(value.shape)}.")
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"temperature must be positive and finite, got {value}.")
    return value


def check_ids(ids, vocab_size: int, num_steps: int) -> np.ndarray:
    """Token ids as a 1-D int32 NumPy array, after type, shape, length and range checks."""
    if tf.is_tensor(ids):
        ids = ids.numpy()
    array = np.asarray(ids)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"ids must be an integer array, got dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {list(array.shape)}.")
    if array.size < num_steps:
        raise ValueError(
            f"ids has length {array.size}, shorter than one window of num_steps={num_steps}."
        )
    bad = (array < 0) | (array >= vocab_size)
    if bad.any():
        positions = np.flatnonzero(bad)
        values = np.unique(array[positions])
        shown = ", ".join(map(str, values[:10])) + (", ..." if values.size > 10 else "")
        raise ValueError(
            f"ids must be in [0, {vocab_size}) (vocab_size={vocab_size}); found "
            f"{positions.size} out-of-range id(s) with values {{{shown}}}, first at "
            f"position {positions[0]}."
        )
    return array.astype(np.int32, copy=False)
