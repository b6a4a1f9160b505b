"""Tests for probseq.data.pipelines (small arrays only: these run on 2 shared cores)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

from probseq.data import contiguous_batches, num_batches_per_epoch, random_windows


def _batches(ds: tf.data.Dataset, count: int) -> list[np.ndarray]:
    return [b.numpy() for b in ds.take(count)]


def _elements(ds: tf.data.Dataset, count: int) -> list[tuple[int, int, np.ndarray]]:
    return [(int(e["epoch"]), int(e["batch"]), e["windows"].numpy()) for e in ds.take(count)]


# --- random_windows ----------------------------------------------------------------------


def test_random_windows_shapes_and_substrings() -> None:
    ids = np.arange(500, dtype=np.uint16)  # each value is its own position
    batches = _batches(random_windows(ids, 7, 4, seed=3), 20)
    for batch in batches:
        assert batch.shape == (4, 7) and batch.dtype == np.int32
        starts = batch[:, :1]
        np.testing.assert_array_equal(batch, starts + np.arange(7))
        assert starts.min() >= 0 and starts.max() <= 500 - 7
    # The starts reach both ends eventually for a short array.
    starts = np.concatenate([b[:, 0] for b in _batches(random_windows(ids[:10], 7, 8, seed=0), 30)])
    assert set(starts.tolist()) == {0, 1, 2, 3}


def test_random_windows_deterministic_and_seed_dependent() -> None:
    ids = np.random.default_rng(0).integers(0, 65, size=2000).astype(np.uint8)
    a = _batches(random_windows(ids, 16, 8, seed=1), 5)
    b = _batches(random_windows(ids, 16, 8, seed=1), 5)
    c = _batches(random_windows(ids, 16, 8, seed=2), 5)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))
    assert not np.array_equal(a[0], a[1])


def test_random_windows_resume_and_length() -> None:
    ids = np.arange(300, dtype=np.uint16)
    full = _batches(random_windows(ids, 5, 3, seed=9, num_batches=10), 100)
    assert len(full) == 10
    resumed = _batches(random_windows(ids, 5, 3, seed=9, num_batches=10, start_batch=6), 100)
    assert len(resumed) == 4
    np.testing.assert_array_equal(np.stack(full[6:]), np.stack(resumed))


def test_random_windows_accepts_lists_and_tensors() -> None:
    as_list = _batches(random_windows(list(range(50)), 4, 2, seed=0), 2)
    as_tensor = _batches(random_windows(tf.range(50), 4, 2, seed=0), 2)
    np.testing.assert_array_equal(np.stack(as_list), np.stack(as_tensor))


def test_random_windows_errors() -> None:
    ids = np.arange(10, dtype=np.uint8)
    with pytest.raises(ValueError, match="ids has 10 elements, fewer than num_steps=11"):
        random_windows(ids, 11, 1, seed=0)
    with pytest.raises(TypeError, match="integers"):
        random_windows(np.linspace(0, 1, 10), 2, 1, seed=0)
    with pytest.raises(ValueError, match="num_steps"):
        random_windows(ids, 0, 1, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        random_windows(ids, 2, 0, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        random_windows(np.array([1, -1, 2]), 2, 1, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        random_windows(np.zeros((2, 5), dtype=np.uint8), 2, 1, seed=0)
    with pytest.raises(ValueError, match="past the end"):
        random_windows(ids, 2, 1, seed=0, num_batches=3, start_batch=4)


def test_compact_storage() -> None:
    from probseq.data.pipelines import _as_compact_ids

    assert _as_compact_ids(np.arange(200, dtype=np.int64)).dtype == np.uint8
    assert _as_compact_ids(np.array([0, 300])).dtype == np.uint16
    stored = _as_compact_ids(np.zeros(1000, dtype=np.uint8))
    assert stored.itemsize == 1  # 100M characters would take 100 MB


# --- contiguous_batches ------------------------------------------------------------------


def test_contiguous_layout_unshuffled() -> None:
    ids = np.arange(50, dtype=np.uint8)
    # (50 - 1) // (3 * 4) = 4 batches; rows of 4 * 4 = 16 predictions each.
    assert num_batches_per_epoch(50, 4, 3) == 4
    elements = _elements(contiguous_batches(ids, 4, 3, seed=0, shuffle=False), 8)
    assert [(e, b) for e, b, _ in elements] == [(0, 0), (0, 1), (0, 2), (0, 3)] + [
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    first = elements[0][2]
    assert first.shape == (3, 5) and first.dtype == np.int32
    np.testing.assert_array_equal(first[:, 0], [0, 16, 32])
    for (_, _, w), (_, _, nxt) in itertools.pairwise(elements[:4]):
        np.testing.assert_array_equal(w, w[:, :1] + np.arange(5))  # contiguous rows
        np.testing.assert_array_equal(w[:, -1], nxt[:, 0])  # state carries to next chunk
    np.testing.assert_array_equal(elements[4][2], elements[0][2])  # epochs repeat


def test_contiguous_covers_data_once_per_epoch() -> None:
    ids = np.arange(1000, dtype=np.uint16)
    n = num_batches_per_epoch(1000, 7, 5)
    elements = _elements(contiguous_batches(ids, 7, 5, seed=4, num_epochs=2), 10 * n)
    assert len(elements) == 2 * n
    for epoch in (0, 1):
        windows = [w for e, _, w in elements if e == epoch]
        targets = np.sort(np.concatenate([w[:, 1:].ravel() for w in windows]))
        np.testing.assert_array_equal(targets, np.arange(1, 5 * 7 * n + 1))
        inputs = np.sort(np.concatenate([w[:, :-1].ravel() for w in windows]))
        np.testing.assert_array_equal(inputs, np.arange(0, 5 * 7 * n))


def test_contiguous_reshuffles_per_epoch_deterministically() -> None:
    ids = np.arange(2000, dtype=np.uint16)
    n = num_batches_per_epoch(2000, 10, 4)

    def orders(seed: int) -> list[list[int]]:
        elements = _elements(contiguous_batches(ids, 10, 4, seed=seed, num_epochs=3), 3 * n)
        per_epoch: list[list[int]] = [[], [], []]
        for epoch, _, w in elements:
            per_epoch[epoch].append(int(w[0, 0]) // 10)
        return per_epoch

    a, b, c = orders(1), orders(1), orders(2)
    assert a == b
    assert a != c
    assert a[0] != a[1] != a[2]
    assert all(sorted(order) == list(range(n)) for order in a)


def test_contiguous_resume_matches_uninterrupted() -> None:
    ids = np.random.default_rng(1).integers(0, 80, size=3000).astype(np.uint8)
    n = num_batches_per_epoch(3000, 9, 6)
    full = _elements(contiguous_batches(ids, 9, 6, seed=7), 3 * n)
    resume_at = n + 5  # epoch 1, batch 5
    resumed = _elements(
        contiguous_batches(ids, 9, 6, seed=7, start_epoch=1, start_batch=5), 2 * n - 5
    )
    assert [(e, b) for e, b, _ in resumed] == [(e, b) for e, b, _ in full[resume_at:]]
    for (_, _, x), (_, _, y) in zip(resumed, full[resume_at:], strict=True):
        np.testing.assert_array_equal(x, y)


def test_contiguous_errors() -> None:
    ids = np.arange(12, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"ids has 12 elements.*at least 13"):
        contiguous_batches(ids, 4, 3, seed=0)
    assert num_batches_per_epoch(13, 4, 3) == 1
    with pytest.raises(ValueError, match=r"start_batch must be in \[0, 1\)"):
        contiguous_batches(np.arange(13), 4, 3, seed=0, start_batch=1)
    with pytest.raises(TypeError, match="integers"):
        contiguous_batches(np.array([True] * 20), 2, 2, seed=0)
    with pytest.raises(TypeError, match="seed"):
        contiguous_batches(np.arange(20), 2, 2, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_steps"):
        num_batches_per_epoch(20, -1, 2)
