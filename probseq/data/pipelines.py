"""Seeded, resumable ``tf.data`` input pipelines over a 1-D array of character ids.

The ids stay in their compact storage dtype (``uint8`` / ``uint16``: 100 MB for text8)
and are cast to ``int32`` one batch at a time. Randomness uses stateless ops whose seed
is derived from ``(seed, batch or epoch index)``, so any batch can be produced directly:
resuming at a position gives exactly the batches an uninterrupted run would have seen,
without replaying the earlier ones. (Stateless streams are reproducible for a given
TensorFlow version; TensorFlow does not promise identical values across versions.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from probseq.checks import check_positive_int

__all__ = ["contiguous_batches", "num_batches_per_epoch", "random_windows"]

# Distinct stream ids keep the two pipelines' random numbers unrelated for the same seed.
_RANDOM_WINDOWS_STREAM = 0x57494E44  # "WIND"
_CONTIGUOUS_STREAM = 0x43484E4B  # "CHNK"
_INT64_MAX = np.iinfo(np.int64).max


def num_batches_per_epoch(num_ids: int, num_steps: int, batch_size: int) -> int:
    """Batches per epoch of :func:`contiguous_batches` for ``num_ids`` ids.

    Each of the ``batch_size`` rows is a contiguous stream of ``n * num_steps + 1`` ids
    (consecutive rows share one boundary id), so ``n = (num_ids - 1) // (batch_size *
    num_steps)``; the remainder at the end of the data is dropped.
    """
    _check_positive(num_steps=num_steps, batch_size=batch_size)
    return max(0, (int(num_ids) - 1) // (batch_size * num_steps))


def random_windows(
    ids: Any,
    num_steps: int,
    batch_size: int,
    *,
    seed: int,
    num_batches: int | None = None,
    start_batch: int = 0,
) -> tf.data.Dataset:
    """Batches of windows at independent, uniformly random positions.

    Batch ``k`` holds ``batch_size`` windows ``ids[s : s + num_steps]`` with starts ``s``
    drawn uniformly from ``[0, len(ids) - num_steps]`` by ``tf.random.stateless_uniform``
    seeded from ``(seed, k)`` (the text8 tutorial's sampler). A window is a whole
    sequence: to train next-symbol prediction on ``T`` steps, ask for ``num_steps = T + 1``
    and use ``w[:, :-1]`` / ``w[:, 1:]``.

    Args:
        ids: 1-D non-negative integer ids (numpy array, list or tensor), ideally
            ``uint8``/``uint16`` as produced by :meth:`Vocabulary.encode`.
        num_steps: Window length ``T >= 1``.
        batch_size: Windows per batch ``B >= 1``.
        seed: Python int; the same seed gives the same stream.
        num_batches: Length of the stream (batches ``0 .. num_batches - 1``); ``None``
            for an infinite stream.
        start_batch: Index of the first batch produced; batches before it are skipped in
            O(1), so resuming after ``k`` batches uses ``start_batch=k``.

    Returns:
        A prefetched dataset of ``int32`` tensors of shape ``[B, T]``.

    Raises:
        TypeError: non-integer ids. ValueError: bad sizes or ids shorter than ``T``.
    """
    data = _as_compact_ids(ids)
    _check_positive(num_steps=num_steps, batch_size=batch_size)
    if data.size < num_steps:
        raise ValueError(
            f"ids has {data.size} elements, fewer than num_steps={num_steps} needed for one window"
        )
    stop = _check_range(start_batch, num_batches, "start_batch", "num_batches")
    base_seed = _base_seed(seed, _RANDOM_WINDOWS_STREAM)
    table = tf.constant(data)
    num_starts = data.size - num_steps + 1
    offsets = tf.range(num_steps, dtype=tf.int64)

    def batch(k: tf.Tensor) -> tf.Tensor:
        batch_seed = tf.random.experimental.stateless_fold_in(base_seed, k)
        starts = tf.random.stateless_uniform(
            [batch_size], seed=batch_seed, minval=0, maxval=num_starts, dtype=tf.int64
        )
        return tf.cast(tf.gather(table, starts[:, None] + offsets), tf.int32)

    indices = tf.data.Dataset.range(start_batch, stop)
    return indices.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
        tf.data.AUTOTUNE
    )


def contiguous_batches(
    ids: Any,
    num_steps: int,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    start_epoch: int = 0,
    start_batch: int = 0,
    num_epochs: int | None = None,
) -> tf.data.Dataset:
    """char-rnn style batches for truncated backpropagation through time.

    The ids are laid out as ``B = batch_size`` contiguous rows: row ``r`` is
    ``ids[r*M : r*M + M + 1]`` with ``M = n * T``, ``n`` = :func:`num_batches_per_epoch`
    and ``T = num_steps`` (the tail of the data that does not fill a row is dropped).
    Chunk ``j`` is the ``[B, T + 1]`` window ``rows[:, j*T : j*T + T + 1]``; consecutive
    chunks overlap by one id, so ``inputs = w[:, :-1]`` and ``targets = w[:, 1:]``, and
    every target position in ``ids[1 : B*M + 1]`` is predicted exactly once per epoch.

    With ``shuffle=False`` the chunks come in order ``0, 1, ..., n-1`` and the recurrent
    state at the end of chunk ``j`` is the right initial state for chunk ``j + 1`` in every
    row. With ``shuffle=True`` (as char-rnn's loader) the chunk order is re-permuted each
    epoch with a seed derived from ``(seed, epoch)``; that breaks state carrying across
    chunks, so callers that carry state must pass ``shuffle=False``.

    Args:
        ids: 1-D non-negative integer ids, ideally ``uint8``/``uint16``.
        num_steps: ``T >= 1``, the number of predictions per row and chunk.
        batch_size: ``B >= 1`` rows.
        seed: Python int seeding the per-epoch permutations.
        shuffle: Re-permute the chunk order every epoch.
        start_epoch: Epoch of the first element (for resuming).
        start_batch: Position within ``start_epoch`` of the first element (for resuming);
            must be ``< n``. Resuming at ``(epoch, batch)`` yields the same elements as an
            uninterrupted run from there.
        num_epochs: Stop after epoch ``num_epochs - 1``; ``None`` repeats forever.

    Returns:
        A prefetched dataset of dicts: ``"windows"``: ``int32 [B, T + 1]``; ``"epoch"``
        and ``"batch"``: ``int64`` scalars, the position of this element (``"batch"`` is
        the position in the epoch's order, not the chunk index). To resume after an
        element at ``(e, b)``, pass ``start_epoch=e, start_batch=b + 1`` (or ``e + 1, 0``
        when ``b + 1 == n``).

    Raises:
        TypeError: non-integer ids. ValueError: bad sizes, or fewer than
        ``batch_size * num_steps + 1`` ids.
    """
    data = _as_compact_ids(ids)
    _check_positive(num_steps=num_steps, batch_size=batch_size)
    n = num_batches_per_epoch(data.size, num_steps, batch_size)
    if n < 1:
        raise ValueError(
            f"ids has {data.size} elements; one batch of batch_size={batch_size} rows of "
            f"num_steps={num_steps} (+1 target) needs at least {batch_size * num_steps + 1}"
        )
    stop_epoch = _check_range(start_epoch, num_epochs, "start_epoch", "num_epochs")
    if not 0 <= start_batch < n:
        raise ValueError(
            f"start_batch must be in [0, {n}) ({n} batches per epoch); got {start_batch}"
        )
    base_seed = _base_seed(seed, _CONTIGUOUS_STREAM)
    table = tf.constant(data)
    row_length = n * num_steps
    row_starts = tf.range(batch_size, dtype=tf.int64) * row_length
    offsets = tf.range(num_steps + 1, dtype=tf.int64)
    positions = tf.range(n, dtype=tf.int64)
    first_skip = tf.constant(start_batch, tf.int64)
    no_skip = tf.constant(0, tf.int64)

    def epoch_elements(epoch: tf.Tensor) -> tf.data.Dataset:
        if shuffle:
            keys = tf.random.stateless_uniform(
                [n],
                seed=tf.random.experimental.stateless_fold_in(base_seed, epoch),
                minval=None,
                maxval=None,
                dtype=tf.int64,
            )
            order = tf.argsort(keys, stable=True)
        else:
            order = positions
        elements = tf.data.Dataset.from_tensor_slices(
            (tf.fill([n], epoch), positions, tf.cast(order, tf.int64))
        )
        return elements.skip(tf.where(tf.equal(epoch, start_epoch), first_skip, no_skip))

    def gather(epoch: tf.Tensor, position: tf.Tensor, chunk: tf.Tensor) -> dict[str, tf.Tensor]:
        starts = row_starts + chunk * num_steps
        windows = tf.cast(tf.gather(table, starts[:, None] + offsets), tf.int32)
        return {"windows": windows, "epoch": epoch, "batch": position}

    epochs = tf.data.Dataset.range(start_epoch, stop_epoch)
    return (
        epochs.flat_map(epoch_elements)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _as_compact_ids(ids: Any) -> np.ndarray:
    """Validate ids as a 1-D non-negative integer array in the smallest unsigned dtype."""
    if hasattr(ids, "numpy"):
        ids = ids.numpy()
    arr = np.asarray(ids)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integers; got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D; got shape {arr.shape}")
    if arr.dtype in (np.uint8, np.uint16) or arr.size == 0:
        return arr
    low, high = int(arr.min()), int(arr.max())
    if low < 0:
        raise ValueError(f"ids must be non-negative; found {low}")
    # Keep storage compact: a 100M-id int64 array would otherwise cost 800 MB.
    for dtype in (np.uint8, np.uint16, np.int32):
        if high <= np.iinfo(dtype).max:
            return arr.astype(dtype, copy=False)
    raise ValueError(f"ids must fit in int32; found {high}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        check_positive_int(name, value)


def _check_range(start: int, count: int | None, start_name: str, count_name: str) -> int:
    """Validate ``0 <= start <= count`` and return the exclusive stop of the range."""
    if count is not None and count < 0:
        raise ValueError(f"{count_name} must be >= 0 or None; got {count}")
    if start < 0:
        raise ValueError(f"{start_name} must be >= 0; got {start}")
    if count is not None and start > count:
        raise ValueError(f"{start_name}={start} is past the end ({count_name}={count})")
    return _INT64_MAX if count is None else count


def _base_seed(seed: int, stream: int) -> tf.Tensor:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if not -(2**63) <= int(seed) < 2**63:
        raise ValueError(f"seed must fit in int64; got {seed}")
    return tf.constant([int(seed), stream], dtype=tf.int64)
