"""Tests for probseq.data.sequences (tiny inputs only: these run on 2 shared cores)."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from probseq.data import (
    CorpusError,
    UnknownCharacterError,
    Vocabulary,
    bucketed_batches,
    default_bucket_boundaries,
    encode_sequences,
    num_bucketed_batches_per_epoch,
    parse_sequences,
    read_sequences,
    split_sequences,
    split_text,
)

# --- parse_sequences / read_sequences ----------------------------------------------------


def test_parse_lines_drops_blank_lines_and_carriage_returns() -> None:
    text = "first line\r\n\r\n   \n\t\n  inner  space \nlast\r"
    assert parse_sequences(text) == ["first line", "  inner  space ", "last"]
    assert parse_sequences("") == []
    assert parse_sequences("\n \n") == []
    # Only the "\r" of a line ending goes; one inside a line stays.
    assert parse_sequences("a\rb\r\n") == ["a\rb"]


def test_parse_records_are_separated_by_blank_lines() -> None:
    text = "\n\nname: a\r\nage: 1\n\n \n\nname: b\n  indented\n\t\nname: c"
    assert parse_sequences(text, structure="records") == [
        "name: a\nage: 1",
        "name: b\n  indented",
        "name: c",
    ]


def test_parse_rejects_unknown_structure() -> None:
    with pytest.raises(ValueError, match="structure must be one of"):
        parse_sequences("a", structure="paragraphs")  # type: ignore[arg-type]


def test_read_file_and_str_path(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes("\ufeffAnna\r\n\r\nBj\u00f6rn\r\n  \r\nCleo".encode())
    assert read_sequences(path) == ["Anna", "Bj\u00f6rn", "Cleo"]
    assert read_sequences(str(path)) == ["Anna", "Bj\u00f6rn", "Cleo"]
    assert read_sequences(path, structure="records") == ["Anna", "Bj\u00f6rn", "Cleo"]


def test_read_directory_in_sorted_order_without_spanning_files(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("b1\nb2\n")
    (tmp_path / "a.txt").write_text("a1\na2")  # no final newline: a2 must not join b1
    (tmp_path / "c.md").write_text("ignored\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.txt").write_text("not recursive\n")
    assert read_sequences(tmp_path) == ["a1", "a2", "b1", "b2"]
    assert read_sequences(tmp_path, structure="records") == ["a1\na2", "b1\nb2"]


def test_read_other_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\u00e9\nna\u00efve\n".encode("latin-1"))
    assert read_sequences(path, encoding="latin-1") == ["caf\u00e9", "na\u00efve"]


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"does not exist.*parse_sequences"):
        read_sequences(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe broken\n")
    with pytest.raises(CorpusError, match=r"bad\.txt.*not valid utf-8.*offset 3"):
        read_sequences(bad)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(CorpusError, match=r"no \*\.txt files"):
        read_sequences(empty_dir)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    with pytest.raises(CorpusError, match="no sequences: no non-blank line"):
        read_sequences(blank)
    with pytest.raises(CorpusError, match="no non-blank record"):
        read_sequences(blank, structure="records")
    with pytest.raises(ValueError, match="unknown encoding"):
        read_sequences(blank, encoding="no-such-codec")


# --- split_sequences ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [20, 21, 39, 100, 1234])
def test_split_is_contiguous_and_matches_the_corpus_convention(n: int) -> None:
    sequences = [f"s{i}" for i in range(n)]
    splits = split_sequences(sequences)
    assert list(splits) == ["train", "valid", "test"]
    assert splits["train"] + splits["valid"] + splits["test"] == sequences
    # Same counts as split_text gives in characters for a text of n characters.
    expected = [len(part) for part in split_text("x" * n)] if n >= 40 else None
    counts = [len(splits[k]) for k in ("train", "valid", "test")]
    assert counts[:2] == [n * 90 // 100, n * 5 // 100]
    if expected is not None:
        assert counts == expected


def test_split_custom_fractions_and_other_items() -> None:
    rows = [np.arange(i + 1) for i in range(10)]
    splits = split_sequences(rows, fractions=(0.6, 0.2, 0.2))
    assert [len(splits[k]) for k in ("train", "valid", "test")] == [6, 2, 2]
    assert splits["valid"][0] is rows[6]
    thirds = split_sequences(list(range(9)), fractions=(1 / 3, 1 / 3, 1 / 3))
    assert [len(thirds[k]) for k in ("train", "valid", "test")] == [3, 3, 3]


def test_split_errors() -> None:
    with pytest.raises(
        ValueError, match=r"19 sequences leave the 'valid' split empty.*at least 20"
    ):
        split_sequences(["x"] * 19)
    with pytest.raises(ValueError, match="sum to 1"):
        split_sequences(["x"] * 100, fractions=(0.9, 0.05, 0.1))
    with pytest.raises(ValueError, match="positive"):
        split_sequences(["x"] * 100, fractions=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="3 numbers"):
        split_sequences(["x"] * 100, fractions=(0.5, 0.5))


# --- encode_sequences ---------------------------------------------------------------------


def test_encode_appends_eos_to_every_row() -> None:
    vocab = Vocabulary("\nabc")
    ragged = encode_sequences(vocab, ["ab", "c", "cab"], eos=0)
    assert isinstance(ragged, tf.RaggedTensor) and ragged.dtype == tf.int32
    assert ragged.shape.as_list() == [3, None]
    assert ragged.to_list() == [[1, 2, 0], [3, 0], [3, 1, 2, 0]]
    # eos = V: a new id past the vocabulary.
    assert encode_sequences(vocab, ["a"], eos=4).to_list() == [[1, 4]]
    assert encode_sequences(vocab, ["ab", "c"], eos=None).to_list() == [[1, 2], [3]]
    assert encode_sequences(vocab, [], eos=0).shape.as_list() == [0, None]


def test_encode_unknown_characters() -> None:
    vocab = Vocabulary("ab")
    with pytest.raises(
        UnknownCharacterError, match=r"'z' \(x2, first in sequence 2 at position 1\)"
    ):
        encode_sequences(vocab, ["ab", "", "az", "zb"], eos=None)
    skipped = encode_sequences(vocab, ["azb", "zz", "b"], eos=2, on_unknown="skip")
    assert skipped.to_list() == [[0, 1, 2], [2], [1, 2]]
    replaced = encode_sequences(vocab, ["azb"], eos=None, on_unknown="replace", replacement="a")
    assert replaced.to_list() == [[0, 0, 1]]


def test_encode_eos_errors() -> None:
    vocab = Vocabulary("\nab")
    with pytest.raises(ValueError, match=r"eos must be None or an id in \[0, 3\]"):
        encode_sequences(vocab, ["a"], eos=4)
    with pytest.raises(ValueError, match="eos"):
        encode_sequences(vocab, ["a"], eos=-1)
    # A record holding "\n" cannot use "\n" as its end marker.
    with pytest.raises(ValueError, match=r"'\\n', which occurs inside sequence 1"):
        encode_sequences(vocab, ["ab", "a\nb"], eos=0)
    with pytest.raises(TypeError, match="sequence 1 is bytes"):
        encode_sequences(vocab, ["a", b"b"], eos=None)  # type: ignore[list-item]


# --- bucketed_batches ---------------------------------------------------------------------


def _unique_rows(n: int, max_len: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct rows of lengths in ``[2, max_len]``; the first two ids encode the index."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        tail = rng.integers(1, 30, size=rng.integers(0, max_len - 1))
        rows.append(np.concatenate([[i // 30 + 1, i % 30 + 1], tail]).astype(np.int64))
    return rows


def _take(ds: tf.data.Dataset, count: int) -> list[dict[str, np.ndarray]]:
    return list(ds.take(count).as_numpy_iterator())


def _row_keys(batch: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    return [tuple(t[:n].tolist()) for t, n in zip(batch["tokens"], batch["lengths"], strict=True)]


ROWS = _unique_rows(90, 40)


def test_batches_shapes_padding_and_contents() -> None:
    keys = {tuple(r.tolist()) for r in ROWS}
    ds = bucketed_batches(ROWS, 8, seed=0, pad_value=-1)
    assert ds.element_spec == {
        "tokens": tf.TensorSpec([None, None], tf.int32),
        "lengths": tf.TensorSpec([None], tf.int32),
    }
    for batch in _take(ds, 12):
        tokens, lengths = batch["tokens"], batch["lengths"]
        assert tokens.dtype == np.int32 and lengths.dtype == np.int32
        assert 1 <= tokens.shape[0] <= 8 and lengths.shape == (tokens.shape[0],)
        assert tokens.shape[1] == lengths.max()
        mask = np.arange(tokens.shape[1]) < lengths[:, None]
        assert (tokens[~mask] == -1).all()
        assert set(_row_keys(batch)) <= keys


@pytest.mark.parametrize("boundaries", [None, (5, 10, 20), (3, 12, 100)])
def test_epoch_covers_every_sequence_once_within_bucket_bounds(
    boundaries: tuple[int, ...] | None,
) -> None:
    lengths = np.array([r.size for r in ROWS])
    per_epoch = num_bucketed_batches_per_epoch(ROWS, 8, bucket_boundaries=boundaries)
    bounds = default_bucket_boundaries(lengths, 8) if boundaries is None else boundaries
    if lengths.max() > bounds[-1]:
        bounds = (*bounds, int(lengths.max()))
    counts = np.bincount(np.searchsorted(bounds, lengths), minlength=len(bounds))
    assert per_epoch == sum(-(-c // 8) for c in counts)
    batches = _take(bucketed_batches(ROWS, 8, seed=3, bucket_boundaries=boundaries), 2 * per_epoch)
    expected = collections.Counter(tuple(r.tolist()) for r in ROWS)
    epochs = [batches[:per_epoch], batches[per_epoch:]]
    for epoch in epochs:
        assert collections.Counter(k for b in epoch for k in _row_keys(b)) == expected
        for batch in epoch:
            # Every row of a batch is in one bucket, and the padding stays below its bound.
            bucket = np.searchsorted(bounds, batch["lengths"])
            assert (bucket == bucket[0]).all()
            assert batch["tokens"].shape[1] <= bounds[bucket[0]]
        # Only the last batch of a bucket may be short.
        sizes = collections.Counter(len(b["lengths"]) for b in epoch)
        assert sum(n for size, n in sizes.items() if size < 8) <= len(bounds)
    # Each epoch is reshuffled.
    assert [_row_keys(b) for b in epochs[0]] != [_row_keys(b) for b in epochs[1]]


def test_default_boundaries_are_length_quantiles() -> None:
    lengths = np.arange(1, 101)
    assert default_bucket_boundaries(lengths, 10) == (13, 25, 38, 50, 63, 75, 88, 100)
    assert default_bucket_boundaries(lengths, 10, max_buckets=4) == (25, 50, 75, 100)
    # Fewer than two batches' worth: a single bucket up to the longest length.
    assert default_bucket_boundaries(lengths, 60) == (100,)
    assert default_bucket_boundaries([3, 3, 3, 3, 7], 1) == (3, 7)


def test_deterministic_resumable_and_seed_dependent() -> None:
    per_epoch = num_bucketed_batches_per_epoch(ROWS, 8)
    full = _take(bucketed_batches(ROWS, 8, seed=5), 2 * per_epoch + 3)
    again = _take(bucketed_batches(ROWS, 8, seed=5), 2 * per_epoch + 3)
    other = _take(bucketed_batches(ROWS, 8, seed=6), per_epoch)
    assert [_row_keys(b) for b in full] == [_row_keys(b) for b in again]
    assert [_row_keys(b) for b in full[:per_epoch]] != [_row_keys(b) for b in other]
    for k in (1, per_epoch - 1, per_epoch, 2 * per_epoch + 1):
        resumed = _take(bucketed_batches(ROWS, 8, seed=5, start_batch=k), 2)
        skipped = _take(bucketed_batches(ROWS, 8, seed=5).skip(k), 2)
        for a, b, c in zip(resumed, skipped, full[k : k + 2], strict=True):
            np.testing.assert_array_equal(a["tokens"], b["tokens"])
            np.testing.assert_array_equal(a["tokens"], c["tokens"])
            np.testing.assert_array_equal(a["lengths"], c["lengths"])


def test_ragged_and_list_inputs_give_the_same_stream() -> None:
    vocab = Vocabulary("abcdefgh")
    texts = ["abc", "h", "gfedcba", "bb", "cabbage", "face", "dead", "a", "bead", "ached"]
    ragged = encode_sequences(vocab, texts, eos=len(vocab))
    rows = [vocab.encode(t).tolist() + [len(vocab)] for t in texts]
    a = _take(bucketed_batches(ragged, 3, seed=1), 6)
    b = _take(bucketed_batches(rows, 3, seed=1), 6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["tokens"], y["tokens"])
        np.testing.assert_array_equal(x["lengths"], y["lengths"])
    decoded = {
        vocab.decode(t[: n - 1]) for x in a for t, n in zip(x["tokens"], x["lengths"], strict=True)
    }
    assert decoded <= set(texts)


def test_max_length_truncates_long_sequences() -> None:
    per_epoch = num_bucketed_batches_per_epoch(ROWS, 8, max_length=12)
    batches = _take(bucketed_batches(ROWS, 8, seed=2, max_length=12), per_epoch)
    expected = collections.Counter(tuple(r[:12].tolist()) for r in ROWS)
    assert collections.Counter(k for b in batches for k in _row_keys(b)) == expected
    assert max(b["tokens"].shape[1] for b in batches) == 12
    assert max(int(b["lengths"].max()) for b in batches) == 12


def test_bucketed_batches_errors() -> None:
    with pytest.raises(TypeError, match="encode strings"):
        bucketed_batches(["abc"], 2, seed=0)
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        bucketed_batches([[1], [], [2]], 2, seed=0)
    with pytest.raises(ValueError, match="sequences is empty"):
        bucketed_batches([], 2, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        bucketed_batches([[1]], 0, seed=0)
    with pytest.raises(ValueError, match="increasing positive"):
        bucketed_batches([[1]], 1, seed=0, bucket_boundaries=(4, 4))
    with pytest.raises(ValueError, match="start_batch"):
        bucketed_batches([[1]], 1, seed=0, start_batch=-1)
    with pytest.raises(ValueError, match="max_length"):
        bucketed_batches([[1]], 1, seed=0, max_length=0)
    with pytest.raises(TypeError, match="integers"):
        bucketed_batches([[0.5]], 1, seed=0)
    with pytest.raises(TypeError, match="seed"):
        bucketed_batches([[1]], 1, seed=None)  # type: ignore[arg-type]
