"""Record-structured text: one sequence per line (or per record), split, encoded and bucketed.

The pipeline for data whose examples are whole sequences of different lengths (names,
sentences, records)::

    sequences = read_sequences("names.txt")                    # list[str], one per line
    splits = split_sequences(sequences)                        # contiguous 90/5/5
    train = encode_sequences(vocab, splits["train"], eos=eos)  # int32 ragged [N, None]
    batches = bucketed_batches(train, 64, seed=0)              # {"tokens", "lengths"}

:func:`bucketed_batches` is an infinite, seeded stream: each epoch visits every
sequence exactly once, and batch ``k`` is a pure function of ``(seed, k)``, so resuming
with ``start_batch=k`` gives exactly the batches an uninterrupted run would have seen (as
:func:`~probseq.data.pipelines.random_windows`; stateless ops, reproducible for a given
TensorFlow version).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import tensorflow as tf

from probseq.data.corpora import SPLITS, CorpusError
from probseq.data.pipelines import _as_compact_ids, _base_seed, _check_positive
from probseq.data.vocabulary import OnUnknown, UnknownCharacterError, Vocabulary

__all__ = [
    "bucketed_batches",
    "default_bucket_boundaries",
    "encode_sequences",
    "num_bucketed_batches_per_epoch",
    "parse_sequences",
    "read_sequences",
    "split_sequences",
]

Structure = Literal["lines", "records"]
T = TypeVar("T")

_STRUCTURES = ("lines", "records")
_BUCKETED_STREAM = 0x42554B54  # "BUKT": unrelated to the window pipelines' streams
_INT64_MAX = np.iinfo(np.int64).max
_DEFAULT_MAX_BUCKETS = 8
_MAX_LISTED = 10


def parse_sequences(text: str, *, structure: Structure = "lines") -> list[str]:
    """Split a string into sequences.

    Lines are separated by ``"\\n"``; one trailing ``"\\r"`` per line (from ``"\\r\\n"``)
    is removed. A line that is empty or only whitespace is *blank*.

    - ``structure="lines"``: every non-blank line is one sequence, kept as it is (leading,
      inner and trailing spaces included).
    - ``structure="records"``: records are runs of non-blank lines separated by one or
      more blank lines; a record is its lines joined by ``"\\n"`` (no final newline).

    Returns:
        The sequences in order of appearance (``[]`` if the text has none).
    """
    _check_structure(structure)
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if structure == "lines":
        return [line for line in lines if line.strip()]
    records: list[str] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line)
        elif current:
            records.append("\n".join(current))
            current = []
    if current:
        records.append("\n".join(current))
    return records


def read_sequences(
    source: str | os.PathLike[str],
    *,
    structure: Structure = "lines",
    encoding: str = "utf-8",
) -> list[str]:
    """Read the sequences of a text file or of a directory of ``*.txt`` files.

    ``source`` is always a path (a ``str`` too, as for :func:`load_corpus`); to split an
    in-memory string use :func:`parse_sequences`. A directory's ``*.txt`` files (not
    recursive) are read in sorted name order; a sequence never spans two files. Each file
    is decoded with ``encoding`` (a leading byte-order mark is dropped) and split by
    :func:`parse_sequences` with ``structure``.

    Returns:
        The sequences, ``N >= 1`` strings.

    Raises:
        CorpusError: the path does not exist or cannot be read, a directory has no
            ``*.txt`` file, a file does not decode (naming the file, byte and offset), or
            no sequence was found. ValueError: unknown ``structure`` or ``encoding``.
    """
    _check_structure(structure)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    path = Path(source).expanduser()
    if not path.exists():
        raise CorpusError(
            f"{str(path)!r} does not exist (read_sequences reads files; to split a string, "
            "use parse_sequences)"
        )
    if path.is_dir():
        files = sorted((p for p in path.glob("*.txt") if p.is_file()), key=lambda p: p.name)
        if not files:
            raise CorpusError(f"directory {str(path)!r} contains no *.txt files")
    else:
        files = [path]
    sequences: list[str] = []
    for file in files:
        sequences.extend(parse_sequences(_read_text(file, encoding), structure=structure))
    if not sequences:
        unit = "line" if structure == "lines" else "record"
        raise CorpusError(f"{str(path)!r} has no sequences: no non-blank {unit} found")
    return sequences


def split_sequences(
    sequences: Sequence[T], fractions: Sequence[float] = (0.9, 0.05, 0.05)
) -> dict[str, list[T]]:
    """Split sequences contiguously, in order, into ``"train"``, ``"valid"``, ``"test"``.

    With ``N`` sequences and fractions ``(f_train, f_valid, f_test)`` (positive, summing
    to 1): ``n_train = floor(N f_train)``, ``n_valid = floor(N f_valid)``, test gets the
    rest, so the three concatenate back to ``sequences``. Each fraction is read as the
    nearest fraction with a denominator up to 10^6 (``0.9`` is 9/10, ``1 / 3`` is 1/3), so
    the default is the corpora's convention ``n_train = N * 90 // 100``, ``n_valid =
    N * 5 // 100`` (:func:`split_text`), by sequence count instead of characters.

    Raises:
        ValueError: bad fractions, or a split would be empty (naming the minimum ``N``).
    """
    exact = _check_fractions(fractions)
    n = len(sequences)
    counts = _split_counts(n, exact)
    if min(counts) < 1:
        empty = SPLITS[counts.index(min(counts))]
        raise ValueError(
            f"{n} sequences leave the {empty!r} split empty with fractions "
            f"{tuple(fractions)}; a sequence in every split takes at least "
            f"{_min_sequences(exact)} sequences"
        )
    n_train, n_valid, _ = counts
    items = list(sequences)
    return {
        "train": items[:n_train],
        "valid": items[n_train : n_train + n_valid],
        "test": items[n_train + n_valid :],
    }


def encode_sequences(
    vocabulary: Vocabulary,
    sequences: Sequence[str],
    *,
    eos: int | None,
    on_unknown: OnUnknown = "error",
    replacement: str | None = None,
) -> tf.RaggedTensor:
    """Encode each sequence with ``vocabulary``, appending the end-of-sequence id ``eos``.

    Args:
        vocabulary: The character vocabulary (``V`` symbols).
        sequences: ``N`` strings.
        eos: Id appended to every row, or ``None`` for none. Either the id of a symbol of
            the vocabulary that no sequence contains (e.g. ``"\\n"`` for lines), or ``V``,
            a new id past the vocabulary (the model then needs ``vocab_size = V + 1``).
        on_unknown, replacement: As for :meth:`Vocabulary.encode`.

    Returns:
        ``int32`` ragged tensor of shape ``[N, None]``; row ``i`` has ``len(sequences[i])``
        ids (fewer with ``on_unknown="skip"``) plus one for ``eos``.

    Raises:
        UnknownCharacterError: naming each unknown character with its count and the
            first sequence and position where it occurs. ValueError: ``eos`` outside
            ``[0, V]`` or occurring inside a sequence.
    """
    v = len(vocabulary)
    if eos is not None and (
        isinstance(eos, bool) or not isinstance(eos, (int, np.integer)) or not 0 <= eos <= v
    ):
        raise ValueError(
            f"eos must be None or an id in [0, {v}] (a symbol's id, or {v} for a new "
            f"symbol); got {eos!r}"
        )
    texts = list(sequences)
    for i, s in enumerate(texts):
        if not isinstance(s, str):
            raise TypeError(f"sequences must be strings; sequence {i} is {type(s).__name__}")
    lengths = np.array([len(s) for s in texts], dtype=np.int64)
    if on_unknown == "skip":
        # Skipping changes the row lengths, so each row is encoded on its own.
        rows = [vocabulary.encode(s, "skip", replacement).astype(np.int32) for s in texts]
        ids = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        lengths = np.array([r.size for r in rows], dtype=np.int64)
    else:
        # One call for the joined text: encoding keeps every length, so it splits back.
        try:
            ids = vocabulary.encode("".join(texts), on_unknown, replacement).astype(np.int32)
        except UnknownCharacterError as e:
            raise _unknown_in_sequences(e, lengths, v) from None
    ends = np.cumsum(lengths)
    if eos is not None and eos < v and (ids == eos).any():
        first = int(np.searchsorted(ends, np.flatnonzero(ids == eos)[0], side="right"))
        raise ValueError(
            f"eos={eos} is the id of {vocabulary.symbols[eos]!r}, which occurs inside "
            f"sequence {first}; choose a symbol no sequence contains, or eos={v}"
        )
    if eos is not None:
        ids = np.insert(ids, ends, np.int32(eos))
        lengths = lengths + 1
    return tf.RaggedTensor.from_row_lengths(tf.constant(ids, tf.int32), tf.constant(lengths))


def default_bucket_boundaries(
    lengths: Any, batch_size: int, *, max_buckets: int = _DEFAULT_MAX_BUCKETS
) -> tuple[int, ...]:
    """Bucket upper bounds at the quantiles of the sequence lengths.

    With ``N`` lengths, ``K = clip(N // batch_size, 1, max_buckets)`` and bound ``i`` is
    the smallest observed length ``L`` with at least ``i N / K`` lengths ``<= L``
    (``i = 1 .. K``); equal bounds merge. So buckets hold about ``N / K >= batch_size``
    sequences each, the last bound is the longest length, and a batch's padding stays
    within its bucket's span of lengths.

    Args:
        lengths: ``[N]`` positive integers.
        batch_size: ``B``, the batch size the buckets will be cut into.
        max_buckets: ``K``'s upper limit.

    Returns:
        Increasing upper bounds, at most ``K`` of them.
    """
    _check_positive(batch_size=batch_size, max_buckets=max_buckets)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size == 0:
        raise ValueError(f"lengths must be a non-empty 1-D array; got shape {lengths.shape}")
    k = min(max_buckets, max(1, lengths.size // batch_size))
    bounds = np.quantile(lengths, np.arange(1, k + 1) / k, method="inverted_cdf")
    return tuple(int(b) for b in np.unique(bounds))


def num_bucketed_batches_per_epoch(
    sequences: Any,
    batch_size: int,
    *,
    bucket_boundaries: Sequence[int] | None = None,
    max_length: int | None = None,
) -> int:
    """Batches per epoch ``E`` of :func:`bucketed_batches` with the same arguments.

    ``E = sum_b ceil(n_b / batch_size)`` over the buckets' sizes ``n_b``.
    """
    _, lengths = _flatten(sequences, max_length)
    _, _, sizes = _bucket_plan(lengths, batch_size, bucket_boundaries)
    return int(sizes.size)


def bucketed_batches(
    sequences: Any,
    batch_size: int,
    *,
    seed: int,
    start_batch: int = 0,
    bucket_boundaries: Sequence[int] | None = None,
    pad_value: int = 0,
    max_length: int | None = None,
) -> tf.data.Dataset:
    """An infinite, seeded, resumable stream of padded batches of similar-length sequences.

    #### Sampling scheme

    Sequences are assigned to buckets by length: with increasing upper bounds
    ``u_0 < ... < u_{K-1}``, bucket ``i`` holds the lengths in ``(u_{i-1}, u_i]``
    (``u_{-1} = 0``; an extra last bucket up to the longest length is added if ``u_{K-1}``
    is shorter). Each epoch ``e`` draws a permutation of the sequences, cuts every bucket
    (in that order) into consecutive batches of ``B`` sequences, the last one of a bucket
    smaller if ``n_b`` is not a multiple of ``B``, and visits the epoch's
    ``E = sum_b ceil(n_b / B)`` batches in a second random order. So an epoch contains
    every sequence exactly once, ``E`` is the same for every epoch, and batch ``k`` is
    batch ``k mod E`` of epoch ``k // E``, with the epoch's randomness drawn by stateless
    ops from ``(seed, e)``: it is a pure function of ``(seed, k)``.

    Args:
        sequences: ``N`` integer sequences: an ``[N, None]`` ``tf.RaggedTensor`` (as from
            :func:`encode_sequences`) or a list of 1-D integer arrays; each non-empty.
        batch_size: ``B >= 1``, the largest number of sequences in a batch.
        seed: Python int; the same seed gives the same stream.
        start_batch: Index of the first batch; resuming after ``k`` batches uses
            ``start_batch=k`` and costs one epoch's shuffle, not ``k`` batches.
        bucket_boundaries: Increasing positive upper bounds ``u_i``; default
            :func:`default_bucket_boundaries` of the lengths (after truncation).
        pad_value: Token id written after each row's end.
        max_length: If given, longer sequences are *truncated* to their first
            ``max_length`` ids (with ``eos``, a truncated row has no EOS: under a
            distribution with ``num_steps = max_length`` that is the event "no EOS within
            ``num_steps``", scored as the prefix). ``None`` keeps every id.

    Returns:
        A prefetched dataset of dicts ``{"tokens": int32 [b, L], "lengths": int32 [b]}``
        with ``b <= B`` and ``L = max(lengths) <= u_i`` of the batch's bucket ``i``;
        ``tokens[r, lengths[r]:] == pad_value``.

    Raises:
        TypeError: non-integer sequences (strings: encode them first) or seed.
        ValueError: no sequences, an empty sequence, bad sizes or boundaries.
    """
    _check_positive(batch_size=batch_size)
    if isinstance(start_batch, bool) or not isinstance(start_batch, (int, np.integer)):
        raise TypeError(f"start_batch must be an int; got {type(start_batch).__name__}")
    if start_batch < 0:
        raise ValueError(f"start_batch must be >= 0; got {start_batch}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)):
        raise TypeError(f"pad_value must be an int; got {type(pad_value).__name__}")
    base_seed = _base_seed(seed, _BUCKETED_STREAM)
    flat, lengths = _flatten(sequences, max_length)
    _, bucket_ids, sizes = _bucket_plan(lengths, batch_size, bucket_boundaries)
    num_sequences, per_epoch = lengths.size, sizes.size
    values = tf.constant(flat)
    row_splits = tf.constant(np.concatenate([[0], np.cumsum(lengths)]), tf.int64)
    buckets = tf.constant(bucket_ids, tf.int64)
    batch_sizes = tf.constant(sizes, tf.int64)
    first_epoch = start_batch // per_epoch
    first_skip = tf.constant(start_batch % per_epoch, tf.int64)
    no_skip = tf.constant(0, tf.int64)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order_seed, batch_seed = tf.unstack(
            tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(base_seed, epoch), num=2
            )
        )
        # A uniform permutation, then a stable sort by bucket: random order within buckets.
        order = _random_permutation(num_sequences, order_seed)
        order = tf.gather(order, tf.argsort(tf.gather(buckets, order), stable=True))
        rows = tf.RaggedTensor.from_row_lengths(order, batch_sizes, validate=False)
        rows = tf.gather(rows, _random_permutation(per_epoch, batch_seed))  # [E, None]
        skip = tf.where(tf.equal(epoch, first_epoch), first_skip, no_skip)
        return tf.data.Dataset.from_tensor_slices(rows).skip(skip)

    def gather(rows: tf.Tensor) -> dict[str, tf.Tensor]:
        table = tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)
        batch = tf.gather(table, rows)  # [b, None]
        batch = batch.with_flat_values(tf.cast(batch.flat_values, tf.int32))
        return {
            "tokens": batch.to_tensor(default_value=tf.constant(pad_value, tf.int32)),
            "lengths": tf.cast(batch.row_lengths(), tf.int32),
        }

    epochs = tf.data.Dataset.range(first_epoch, _INT64_MAX)
    return (
        epochs.flat_map(epoch_batches)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _check_structure(structure: str) -> None:
    if structure not in _STRUCTURES:
        raise ValueError(f"structure must be one of {_STRUCTURES}; got {structure!r}")


def _read_text(path: Path, encoding: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CorpusError(f"cannot read {str(path)!r}: {e}") from e
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{str(path)!r} is not valid {encoding} (byte {data[e.start : e.start + 1]!r} at "
            f"offset {e.start}); pass its encoding=, or convert it, e.g. `iconv -t utf-8`"
        ) from None
    return text.removeprefix("\ufeff")


def _check_fractions(fractions: Sequence[float]) -> tuple[Fraction, ...]:
    values = tuple(fractions)
    if len(values) != len(SPLITS):
        raise ValueError(f"fractions must be 3 numbers (train, valid, test); got {values!r}")
    try:
        # The nearest simple fraction: 0.9 is 9/10 and 1 / 3 is 1/3, not their binary floats.
        exact = tuple(Fraction(float(f)).limit_denominator(10**6) for f in values)
    except (TypeError, ValueError):
        raise ValueError(f"fractions must be numbers; got {values!r}") from None
    if min(exact) <= 0 or abs(float(sum(exact)) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be positive and sum to 1; got {values!r}")
    return exact


def _split_counts(n: int, exact: tuple[Fraction, ...]) -> list[int]:
    n_train = n * exact[0].numerator // exact[0].denominator
    n_valid = n * exact[1].numerator // exact[1].denominator
    return [n_train, n_valid, n - n_train - n_valid]


def _min_sequences(exact: tuple[Fraction, ...]) -> int:
    """The smallest ``N`` leaving no split empty (``max_i ceil(1 / f_i)`` is enough when the
    fractions sum to exactly 1; the search goes further for sums within rounding of 1)."""
    enough = max(-(-q.denominator // q.numerator) for q in exact)
    candidates = range(1, 2 * enough + 2)
    return next((m for m in candidates if min(_split_counts(m, exact)) >= 1), 2 * enough + 2)


def _unknown_in_sequences(
    error: UnknownCharacterError, lengths: np.ndarray, vocab_size: int
) -> UnknownCharacterError:
    """Restate an error about the joined text by sequence index and position in it."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    located: dict[str, tuple[int, int]] = {}
    parts = []
    for ch, (count, pos) in sorted(error.unknown.items(), key=lambda kv: kv[1][1]):
        i = int(np.searchsorted(starts, pos, side="right")) - 1
        located[ch] = (count, pos - int(starts[i]))
        parts.append(f"{ch!r} (x{count}, first in sequence {i} at position {located[ch][1]})")
    listed = ", ".join(parts[:_MAX_LISTED])
    if len(parts) > _MAX_LISTED:
        listed += f", ... and {len(parts) - _MAX_LISTED} more"
    located_error = UnknownCharacterError(located, vocab_size)
    total = sum(count for count, _ in located.values())
    located_error.args = (
        f"the sequences contain {total} characters not in the vocabulary ({vocab_size} "
        f"symbols): {listed}. Pass on_unknown='skip' to drop them or on_unknown='replace' "
        "with replacement=<symbol>.",
    )
    return located_error


def _flatten(sequences: Any, max_length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ids (compact dtype) and int64 row lengths, truncated to ``max_length``."""
    if max_length is not None:
        _check_positive(max_length=max_length)
    if isinstance(sequences, tf.RaggedTensor):
        if sequences.shape.rank != 2 or sequences.ragged_rank != 1:
            raise ValueError(f"sequences must be a [N, None] ragged tensor; got {sequences.shape}")
        flat = sequences.flat_values.numpy()
        lengths = sequences.row_lengths().numpy().astype(np.int64)
    else:
        rows = []
        for i, s in enumerate(sequences):
            if isinstance(s, str):
                raise TypeError(
                    "sequences must be integer ids; encode strings with encode_sequences"
                )
            row = np.asarray(s.numpy() if hasattr(s, "numpy") else s)
            if row.ndim != 1:
                raise ValueError(f"sequence {i} must be 1-D; got shape {row.shape}")
            rows.append(row)
        lengths = np.array([r.size for r in rows], dtype=np.int64)
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int32)
    if lengths.size == 0:
        raise ValueError("sequences is empty")
    if (lengths == 0).any():
        raise ValueError(f"sequence {int(np.argmin(lengths))} is empty; every sequence needs ids")
    flat = _as_compact_ids(flat)
    if max_length is not None and lengths.max() > max_length:
        position = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = flat[position < max_length]
        lengths = np.minimum(lengths, max_length)
    return flat, lengths


def _bucket_plan(
    lengths: np.ndarray, batch_size: int, boundaries: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper bounds ``[K]``, each sequence's bucket ``[N]`` and the epoch's batch sizes ``[E]``.

    Batch sizes are listed bucket by bucket (``B, B, ..., n_b - (c_b - 1) B`` for bucket
    ``b`` with ``c_b = ceil(n_b / B)`` batches), matching sequences sorted by bucket.
    """
    _check_positive(batch_size=batch_size)
    if boundaries is None:
        bounds = np.array(default_bucket_boundaries(lengths, batch_size), dtype=np.int64)
    else:
        bounds = np.asarray(list(boundaries))
        if (
            bounds.ndim != 1
            or bounds.size == 0
            or not np.issubdtype(bounds.dtype, np.integer)
            or bounds[0] < 1
            or (np.diff(bounds) <= 0).any()
        ):
            raise ValueError(
                f"bucket_boundaries must be increasing positive integers; got {list(boundaries)!r}"
            )
        bounds = bounds.astype(np.int64)
        if lengths.max() > bounds[-1]:
            bounds = np.append(bounds, lengths.max())
    bucket_ids = np.searchsorted(bounds, lengths, side="left")
    counts = np.bincount(bucket_ids, minlength=bounds.size)
    sizes: list[int] = []
    for n_b in counts.tolist():
        full, rest = divmod(n_b, batch_size)
        sizes += [batch_size] * full + ([rest] if rest else [])
    return bounds, bucket_ids, np.array(sizes, dtype=np.int64)


def _random_permutation(n: int, seed: tf.Tensor) -> tf.Tensor:
    """A uniform permutation of ``range(n)`` (int32) from a stateless seed."""
    keys = tf.random.stateless_uniform([n], seed=seed, minval=None, maxval=None, dtype=tf.int64)
    return tf.argsort(keys, stable=True)
