"""Unit conversions for held-out likelihoods: nats, bits, perplexity, log-mean-exp.

Every function accepts Python floats, NumPy arrays or TensorFlow tensors and returns the
same kind (a tensor for a tensor input, NumPy otherwise), so it can be used both on
reported numbers and inside a `tf.function`.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

__all__ = ["LN2", "bits_per_char", "log_mean_exp", "nats_to_bits", "perplexity"]

LN2 = math.log(2.0)  # nats per bit


def nats_to_bits(nats):
    """Convert an information quantity from nats to bits: `nats / ln 2`.

    Args:
      nats: float, array or tensor of any shape, in nats.

    Returns:
      The same shape, in bits.

    #### Examples

    ```python
    nats_to_bits(math.log(2.0))  # ==> 1.0
    ```
    """
    if tf.is_tensor(nats):
        return nats / tf.constant(LN2, nats.dtype)
    return np.asarray(nats, dtype=np.float64) / LN2 if np.ndim(nats) else float(nats) / LN2


def bits_per_char(nll_nats_per_char):
    """Bits per character from a negative log-likelihood per character in nats.

    `bpc = nll_nats_per_char / ln 2`. The text8 reference (76.14 nats per 64-character
    window) is `76.14 / 64 / ln 2 = 1.716` bits/char.

    Args:
      nll_nats_per_char: float, array or tensor of any shape, nats per character.

    Returns:
      The same shape, bits per character.
    """
    return nats_to_bits(nll_nats_per_char)


def perplexity(nll_nats_per_char):
    """Per-character perplexity `exp(nll_nats_per_char)` (unitless, >= 1 for a valid NLL).

    Args:
      nll_nats_per_char: float, array or tensor of any shape, nats per character.

    Returns:
      The same shape; overflows to `inf` (without a warning) for huge NLLs.
    """
    if tf.is_tensor(nll_nats_per_char):
        return tf.exp(nll_nats_per_char)
    with np.errstate(over="ignore"):
        value = np.exp(np.asarray(nll_nats_per_char, dtype=np.float64))
    return value if np.ndim(value) else float(value)


def log_mean_exp(x, axis: int | None = None):
    """Numerically stable `log(mean(exp(x), axis))`.

    Used for Monte Carlo posterior-predictive estimates `log (1/S) sum_s p(x | w_s)` from
    per-draw log-likelihoods. Rows that are all `-inf` give `-inf` (not NaN).

    Args:
      x: float array or tensor, e.g. `[S, N]` log-likelihoods in nats.
      axis: axis to average over (`None`: all elements).

    Returns:
      `x` reduced over `axis` (a Python float when fully reduced and `x` is not a tensor).

    #### Examples

    ```python
    log_mean_exp(np.log([1.0, 3.0]))  # ==> log(2.0)
    ```
    """
    if tf.is_tensor(x):
        count = tf.cast(tf.size(x) if axis is None else tf.shape(x)[axis], x.dtype)
        return tf.reduce_logsumexp(x, axis=axis) - tf.math.log(count)
    x = np.asarray(x, dtype=np.float64)
    count = x.size if axis is None else x.shape[axis]
    if count == 0:
        raise ValueError("log_mean_exp of an empty array is undefined.")
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        value = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    value = np.squeeze(value, axis=axis) - math.log(count)
    return value if np.ndim(value) else float(value)
