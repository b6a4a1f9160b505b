"""The one seed rule of probseq, on the public `tfp.random` API.

Every stochastic function in probseq takes `seed=` and reads it with `stateless_seed`:

* a Python int `s` means the stateless pair `[s, 0]` (TFP alone treats an int as a
  *stateful* seed, a fresh draw on every call, so the same int would not give the same
  result twice); ints outside `[0, 2**31)` map to `[s mod 2**31, (s // 2**31) mod 2**31]`
  (TFP's joint distributions pass such ints to their parts);
* a pair of ints, or an integer `[2]` tensor (int64 is cast to the int32 pair it
  denotes), is used as it is;
* None draws a fresh seed (not reproducible).

A use that must not share its random stream with another use of the same seed passes a
`salt` (TFP folds the salt's hash into the pair): e.g. the encoder-decoder sampler. Per
step or per draw, seeds are `split` (`tfp.random.split_seed`) or folded with the step
number, so the same seed gives the same result in eager mode, `tf.function` and after a
resume. The data pipelines derive their stream from `(seed, stream id)` with their own
fixed ids (probseq/data/pipelines.py), so data order never depends on model seeds.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["split", "stateless_seed"]


def stateless_seed(seed, salt: str | None = None) -> tf.Tensor:
    """An int32 `[2]` stateless seed by the rule above (None: a fresh one).

    Args:
      seed: None, a Python int, a pair of ints, or an integer `[2]` tensor.
      salt: optional string that gives this use its own stream.

    #### Examples

    ```python
    probseq.seeds.stateless_seed(7)        # ==> [7, 0]
    probseq.seeds.stateless_seed((7, 0))   # ==> [7, 0]
    ```
    """
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int, a pair of ints or a [2] tensor, got {seed!r}.")
    if isinstance(seed, (int, np.integer)):
        seed = int(seed)  # (s, 0) for 0 <= s < 2**31; larger ints (TFP passes such) fold in
        seed = (seed % 2**31, (seed // 2**31) % 2**31)
    if seed is not None:
        seed = tf.convert_to_tensor(seed)
        if seed.dtype.is_integer and seed.dtype != tf.int32:
            seed = tf.cast(seed, tf.int32)
    return tfp.random.sanitize_seed(seed, salt=salt)


def split(seed, n) -> tf.Tensor:
    """`n` independent stateless seeds `[n, 2]` from one (`tfp.random.split_seed`).

    `n` may be a Python int or a scalar int32 tensor; the result is a tensor in both cases
    (so that `split(seed, n)[t]` works inside a `tf.while_loop`).
    """
    return tfp.random.split_seed(stateless_seed(seed), n=tf.convert_to_tensor(n, tf.int32))
