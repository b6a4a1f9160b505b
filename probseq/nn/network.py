"""`LSTMNetwork`: a `tf.Module` owning the `tf.Variable`s of an LSTM params structure."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_probability.python.internal import samplers

__all__ = ["LSTMNetwork", "init_lstm_params"]


def _glorot(shape: list[int], seed, dtype) -> tf.Tensor:
    limit = (6.0 / (shape[-2] + shape[-1])) ** 0.5
    return tf.random.stateless_uniform(shape, seed, -limit, limit, dtype=dtype)


def _orthogonal_blocks(hidden: int, blocks: int, seed, dtype) -> tf.Tensor:
    """`[H, blocks*H]`: `blocks` independent orthogonal `H x H` matrices side by side."""
    gaussian = tf.random.stateless_normal([blocks, hidden, hidden], seed, dtype=dtype)
    q, r = tf.linalg.qr(gaussian)
    # Sign correction makes Q Haar-distributed (Mezzadri 2007).
    q = q * tf.sign(tf.linalg.diag_part(r))[:, None, :]
    return tf.concat(tf.unstack(q), axis=-1)


def init_lstm_params(
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    seed=None,
    dtype=tf.float32,
) -> dict:
    """A freshly initialized params structure (plain tensors).

    Input and output kernels are Glorot-uniform, recurrent kernels orthogonal per gate,
    biases zero (the forget gate's +1 lives in the cell equation).
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        # A Python int seeds the initialization reproducibly (TFP's sanitize_seed would
        # turn it into a draw from stateful ops, which differs from call to call).
        seed = (int(seed), 0)
    seeds = samplers.split_seed(samplers.sanitize_seed(seed), n=2 * num_layers + 1)
    params = {}
    for index in range(num_layers):
        rows = vocab_size if index == 0 else hidden_size
        params[f"layer_{index}"] = {
            "input_kernel": _glorot([rows, 4 * hidden_size], seeds[2 * index], dtype),
            "recurrent_kernel": _orthogonal_blocks(hidden_size, 4, seeds[2 * index + 1], dtype),
            "bias": tf.zeros([4 * hidden_size], dtype),
        }
    params["output"] = {
        "kernel": _glorot([hidden_size, vocab_size], seeds[-1], dtype),
        "bias": tf.zeros([vocab_size], dtype),
    }
    return params


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


class LSTMNetwork(tf.Module):
    """Stacked LSTM with token inputs and a logits head, as trainable variables.

    Args:
      vocab_size: number of symbols `V`.
      hidden_size: LSTM units per layer `H`.
      num_layers: number of stacked LSTM layers.
      seed: initialization seed (int, pair of ints or shape-[2] tensor); the same seed
        gives the same weights. `None` draws a fresh one.
      dtype: float dtype of the variables.

    `.params` is the nested dict of `tf.Variable`s that the functional core in
    `probseq.nn` consumes (layout in `probseq.nn.lstm`).

    #### Examples

    ```python
    net = probseq.LSTMNetwork(vocab_size=27, hidden_size=64, seed=1)
    net.params["layer_0"]["recurrent_kernel"].shape  # ==> [64, 256]
    ```
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed=None,
        dtype=tf.float32,
        name: str | None = None,
    ):
        super().__init__(name=name or "LSTMNetwork")
        self.vocab_size = _check_positive_int("vocab_size", vocab_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.dtype = tf.as_dtype(dtype)
        with self.name_scope:
            init = init_lstm_params(vocab_size, hidden_size, num_layers, seed, self.dtype)
            self.params = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=True), init)

    def __repr__(self) -> str:
        return (
            f"LSTMNetwork(vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
            f"num_layers={self.num_layers})"
        )
