"""Plain-numpy reference for `LSTMAutoregressive` and small helpers for its contract tests.

Nothing here imports the library's math: the reference re-implements the cell equations
of DESIGN.md directly (gate order i, f, o, u; forget bias +1; the first step reads no
token), so a test comparing against it checks the library rather than itself.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import tensorflow as tf

import probseq


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def to_numpy(params: dict) -> dict:
    """A params structure (Variables / Tensors) as float64 numpy arrays."""
    return tf.nest.map_structure(lambda p: np.asarray(p, dtype=np.float64), params)


def num_layers(params: dict) -> int:
    return sum(1 for key in params if key.startswith("layer_"))


def np_step(params: dict, token: int | None, state: list[tuple[np.ndarray, np.ndarray]]):
    """One step of the stacked cell for *unbatched* numpy params.

    `token is None` means "no input": the input term of layer 0 is zero.
    Returns `(logits :: [V], new_state)`.
    """
    new_state = []
    x = None
    for index in range(num_layers(params)):
        layer = params[f"layer_{index}"]
        c, h = state[index]
        hidden = h.shape[-1]
        if index == 0:
            wx = 0.0 if token is None else layer["input_kernel"][token]
        else:
            wx = x @ layer["input_kernel"]
        z = wx + h @ layer["recurrent_kernel"] + layer["bias"]
        i, f, o, u = (z[k * hidden : (k + 1) * hidden] for k in range(4))
        c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(u)
        h = sigmoid(o) * np.tanh(c)
        new_state.append((c, h))
        x = h
    logits = x @ params["output"]["kernel"] + params["output"]["bias"]
    return logits, new_state


def zero_state(params: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    hidden = params["output"]["kernel"].shape[-2]
    return [(np.zeros(hidden), np.zeros(hidden)) for _ in range(num_layers(params))]


def np_log_prob_one(params: dict, x, prefix=None, temperature: float | None = None) -> float:
    """`log p(x | prefix)` of one sequence `x :: [T]` for unbatched numpy params."""
    temperature = 1.0 if temperature is None else float(temperature)
    logits, state = np_step(params, None, zero_state(params))
    for token in [] if prefix is None else list(prefix):
        logits, state = np_step(params, int(token), state)
    total = 0.0
    for t, token in enumerate(x):
        total += log_softmax(logits / temperature)[int(token)]
        if t + 1 < len(x):
            logits, state = np_step(params, int(token), state)
    return total


def np_first_step_probs(params: dict, token: int | None = None) -> np.ndarray:
    """Next-token probabilities after one step from the zero state."""
    logits, _ = np_step(params, token, zero_state(params))
    return np.exp(log_softmax(logits))


def np_log_prob(
    params: dict,
    x: np.ndarray,
    *,
    params_batch_ndims: int = 0,
    prefix=None,
    temperature=None,
) -> np.ndarray:
    """Reference `log_prob` with full TFP broadcasting, by an explicit loop.

    Args:
      params: numpy params with `params_batch_ndims` leading batch dims on every leaf.
      x: int `sample + batch + [T]` (any leading shape broadcastable against the batch).
      prefix: None or int `[..., P]`.
      temperature: None or float array (batch dims only).

    Returns:
      float64 `broadcast(x.shape[:-1], batch_shape)`.
    """
    x = np.asarray(x)
    k = params_batch_ndims
    parts = [params["output"]["bias"].shape[:k]]
    if prefix is not None:
        prefix = np.asarray(prefix)
        parts.append(prefix.shape[:-1])
    if temperature is not None:
        temperature = np.asarray(temperature, dtype=np.float64)
        parts.append(temperature.shape)
    batch = np.broadcast_shapes(*parts)
    out_shape = np.broadcast_shapes(x.shape[:-1], batch)
    x = np.broadcast_to(x, out_shape + x.shape[-1:])
    result = np.empty(out_shape)
    for index in np.ndindex(*out_shape):
        b = index[len(out_shape) - len(batch) :]  # the batch part of the index
        p_index = _index_for(parts[0], b)
        sub = tf.nest.map_structure(lambda leaf, ix=p_index: leaf[ix], params)
        pre = None if prefix is None else prefix[_index_for(prefix.shape[:-1], b)]
        temp = None if temperature is None else temperature[_index_for(temperature.shape, b)]
        result[index] = np_log_prob_one(sub, x[index], pre, temp)
    return result


def _index_for(shape: tuple[int, ...], batch_index: tuple[int, ...]) -> tuple[int, ...]:
    """Index into an array of `shape` broadcast (right-aligned) to the batch."""
    tail = batch_index[len(batch_index) - len(shape) :] if shape else ()
    return tuple(0 if n == 1 else i for i, n in zip(tail, shape, strict=True))


def all_sequences(vocab_size: int, num_steps: int) -> np.ndarray:
    """Every sequence of `num_steps` tokens, `[V**T, T]` int32, in lexicographic order."""
    return np.array(list(itertools.product(range(vocab_size), repeat=num_steps)), np.int32)


def randomized_network(
    vocab_size: int = 3,
    hidden_size: int = 4,
    num_layers: int = 1,
    seed: int = 0,
    scale: float = 0.7,
    dtype=tf.float64,
) -> probseq.LSTMNetwork:
    """A seeded network whose variables (biases included) are all perturbed.

    The fresh init has zero biases, so the first step from the zero state would give
    uniform probabilities; perturbing every variable makes every term of the cell matter.
    """
    # A pair seed: stateless, so the same arguments give the same network in any order.
    net = probseq.LSTMNetwork(vocab_size, hidden_size, num_layers, seed=(seed, 0), dtype=dtype)
    rng = np.random.default_rng(seed + 1000)
    for variable in tf.nest.flatten(net.params):
        variable.assign_add(scale * rng.standard_normal(variable.shape))
    return net


def perturbed_params(net: probseq.LSTMNetwork, batch_shape, seed: int, scale: float = 0.5):
    """`net.params` with leading `batch_shape`, each batch member independently perturbed."""
    rng = np.random.default_rng(seed)
    batch_shape = tuple(batch_shape)
    return tf.nest.map_structure(
        lambda v: tf.constant(
            v.numpy() + scale * rng.standard_normal(batch_shape + tuple(v.shape)), v.dtype
        ),
        net.params,
    )


def bernstein_radius(p: np.ndarray, n: int, delta: float) -> np.ndarray:
    """Half-width `eps` with `P(|K/n - p| >= eps) <= delta` for `K ~ Binomial(n, p)`.

    Bernstein's inequality for the mean of n i.i.d. indicators (|X - p| <= 1, variance
    s2 = p (1 - p)) gives `P(|K/n - p| >= eps) <= 2 exp(-n eps^2 / (2 s2 + 2 eps / 3))`.
    Setting the right side to `delta` and writing `a = log(2 / delta) / n` leaves the
    quadratic `eps^2 - (2a/3) eps - 2 a s2 = 0`, whose positive root is returned. Unlike a
    normal approximation this is a rigorous bound, also for tiny `p`.
    """
    a = math.log(2.0 / delta) / n
    return a / 3.0 + np.sqrt(a * a / 9.0 + 2.0 * a * p * (1.0 - p))


def eos_canonical(rows: np.ndarray, eos: int) -> np.ndarray:
    """Whether each row `[T]` holds only EOS after its first EOS (the canonical padding)."""
    out = []
    for row in np.asarray(rows):
        hits = np.flatnonzero(row == eos)
        out.append(hits.size == 0 or bool(np.all(row[hits[0] :] == eos)))
    return np.array(out, bool)
