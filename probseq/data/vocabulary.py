"""Character vocabularies: an ordered set of single-character symbols and their integer ids.

Encoding is vectorised with numpy (a lookup table indexed by Unicode code point) so that a
100-million-character corpus encodes in seconds. Ids are stored compactly: ``uint8`` for
vocabularies of at most 256 symbols, ``uint16`` up to 65,536 symbols.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from probseq.files import atomic_write_text

__all__ = ["UnknownCharacterError", "Vocabulary"]

OnUnknown = Literal["error", "skip", "replace"]

_FORMAT = "probseq.vocabulary"
_VERSION = 1
_MAX_SYMBOLS = 1 << 16
# Encode in slices so the temporary code-point arrays stay around 64 MB even for text8.
_ENCODE_CHUNK_CHARS = 1 << 24
# How many distinct unknown characters / bad ids an error message spells out.
_MAX_LISTED = 10


class UnknownCharacterError(ValueError):
    """Raised by :meth:`Vocabulary.encode` when the text has characters outside the vocabulary.

    Attributes:
        unknown: ``{char: (count, first_position)}`` for every unknown character, where
            ``first_position`` is the 0-based character offset of its first occurrence.
        vocab_size: Number of symbols in the vocabulary that was used.
    """

    def __init__(self, unknown: dict[str, tuple[int, int]], vocab_size: int) -> None:
        self.unknown = dict(unknown)
        self.vocab_size = vocab_size
        super().__init__(_unknown_message(self.unknown, vocab_size))

    def describe(self) -> str:
        """The unknown characters with counts and first positions, without the advice
        on Python keywords (a command-line tool adds its own flags)."""
        return _unknown_listing(self.unknown, self.vocab_size)


def _unknown_message(unknown: dict[str, tuple[int, int]], vocab_size: int) -> str:
    return (
        f"{_unknown_listing(unknown, vocab_size)}. Pass on_unknown='skip' to drop them or "
        "on_unknown='replace' with replacement=<symbol>."
    )


def _unknown_listing(unknown: dict[str, tuple[int, int]], vocab_size: int) -> str:
    # List the unknown characters in order of first appearance: that is where a user
    # looking at the text will find them.
    items = sorted(unknown.items(), key=lambda kv: kv[1][1])
    parts = [f"{ch!r} (x{count}, first at position {pos})" for ch, (count, pos) in items]
    listed = ", ".join(parts[:_MAX_LISTED])
    if len(parts) > _MAX_LISTED:
        listed += f", ... and {len(parts) - _MAX_LISTED} more"
    total = sum(count for count, _ in unknown.values())
    return (
        f"text contains {total} characters not in the vocabulary ({vocab_size} symbols): {listed}"
    )


def _code_points(text: str) -> np.ndarray:
    # UTF-32-LE is one little-endian uint32 per character, so the buffer *is* the code
    # point array. "surrogatepass" keeps lone surrogates (valid in a Python str) encodable.
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


class Vocabulary:
    """An ordered set of single-character symbols; symbol ``i`` has id ``i``.

    Args:
        symbols: The symbols in id order. Each must be a string of exactly one character;
            duplicates and an empty sequence are rejected with ``ValueError``. A plain
            string is taken as its sequence of characters.

    Use :meth:`from_text` to build the vocabulary of a text (symbols sorted by code point).
    """

    def __init__(self, symbols: Sequence[str]) -> None:
        if isinstance(symbols, str):
            symbols = list(symbols)
        symbols = tuple(symbols)
        if not symbols:
            raise ValueError("a vocabulary needs at least one symbol; got none")
        for i, s in enumerate(symbols):
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(
                    f"vocabulary symbols must be single characters; symbol {i} is {s!r}"
                )
        if len(set(symbols)) != len(symbols):
            dups = sorted(s for s, n in Counter(symbols).items() if n > 1)
            raise ValueError(f"vocabulary symbols must be unique; duplicated: {dups!r}")
        if len(symbols) > _MAX_SYMBOLS:
            raise ValueError(
                f"a vocabulary holds at most {_MAX_SYMBOLS} symbols (uint16 ids); "
                f"got {len(symbols)}"
            )
        self._symbols = symbols
        self._index = {s: i for i, s in enumerate(symbols)}
        self._id_dtype = np.dtype(np.uint8 if len(symbols) <= 256 else np.uint16)
        self._code_points = np.array([ord(s) for s in symbols], dtype=np.uint32)
        # table[cp] = id, or -1 for code points below the largest symbol that are unknown;
        # code points beyond the table are unknown too.
        table = np.full(int(self._code_points.max()) + 1, -1, dtype=np.int32)
        table[self._code_points] = np.arange(len(symbols), dtype=np.int32)
        self._table = table

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> Vocabulary:
        """Build the vocabulary of every distinct character in ``text``, sorted by code point.

        ``text`` may also be an iterable of strings (e.g. the splits of a corpus); the
        vocabulary then covers all of them. Raises ``ValueError`` if there are no characters.
        """
        texts = [text] if isinstance(text, str) else list(text)
        present = np.zeros(0, dtype=bool)
        for t in texts:
            for start in range(0, len(t), _ENCODE_CHUNK_CHARS):
                cps = _code_points(t[start : start + _ENCODE_CHUNK_CHARS])
                counts = np.bincount(cps)
                if counts.size > present.size:
                    present = np.pad(present, (0, counts.size - present.size))
                present[: counts.size] |= counts > 0
        if not present.any():
            raise ValueError("cannot build a vocabulary from empty text")
        return cls([chr(cp) for cp in np.flatnonzero(present)])

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols in id order."""
        return self._symbols

    @property
    def id_dtype(self) -> np.dtype:
        """Numpy dtype of encoded ids: ``uint8`` if ``len(self) <= 256``, else ``uint16``."""
        return self._id_dtype

    def __len__(self) -> int:
        return len(self._symbols)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        shown = "".join(self._symbols[:40])
        more = "..." if len(self._symbols) > 40 else ""
        return f"Vocabulary({len(self)} symbols: {shown!r}{more})"

    def id_of(self, symbol: str) -> int:
        """Return the id of ``symbol``; ``KeyError`` if it is not in the vocabulary."""
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"{symbol!r} is not in the vocabulary ({len(self)} symbols)") from None

    @overload
    def encode(
        self,
        text: str,
        on_unknown: OnUnknown = ...,
        replacement: str | None = ...,
        *,
        return_num_unknown: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def encode(
        self,
        text: str,
        on_unknown: OnUnknown = ...,
        replacement: str | None = ...,
        *,
        return_num_unknown: Literal[True],
    ) -> tuple[np.ndarray, int]: ...

    def encode(
        self,
        text: str,
        on_unknown: OnUnknown = "error",
        replacement: str | None = None,
        *,
        return_num_unknown: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, int]:
        """Map ``text`` to a 1-D array of ids of dtype :attr:`id_dtype`.

        Args:
            text: The string to encode (length ``n``).
            on_unknown: What to do with characters not in the vocabulary: ``"error"``
                raises :class:`UnknownCharacterError` naming each one with its count and
                first position; ``"skip"`` drops them (the result is shorter than ``n``);
                ``"replace"`` maps them to the id of ``replacement``.
            replacement: The in-vocabulary symbol used when ``on_unknown="replace"``.
            return_num_unknown: If true, return ``(ids, num_unknown)`` where
                ``num_unknown`` counts the characters that were skipped or replaced.

        Returns:
            ``ids`` of shape ``[n]`` (``[n - num_unknown]`` when skipping), or the tuple
            ``(ids, num_unknown)``.
        """
        if on_unknown not in ("error", "skip", "replace"):
            raise ValueError(f"on_unknown must be 'error', 'skip' or 'replace'; got {on_unknown!r}")
        replacement_id = -1
        if on_unknown == "replace":
            if replacement is None or replacement not in self:
                raise ValueError(
                    "on_unknown='replace' needs replacement=<a symbol of the vocabulary>; "
                    f"got {replacement!r}"
                )
            replacement_id = self._index[replacement]
        elif replacement is not None:
            raise ValueError("replacement= is only used with on_unknown='replace'")
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str; got {type(text).__name__}")

        pieces: list[np.ndarray] = []
        unknown: dict[str, tuple[int, int]] = {}
        num_unknown = 0
        table = self._table
        for start in range(0, len(text), _ENCODE_CHUNK_CHARS):
            cps = _code_points(text[start : start + _ENCODE_CHUNK_CHARS])
            # Code points past the table are clipped onto its last slot only to index
            # safely; the mask below marks them unknown regardless of that slot's value.
            beyond = cps >= table.size
            ids = table[np.minimum(cps, table.size - 1)]
            bad = beyond | (ids < 0)
            if bad.any():
                _record_unknown(unknown, cps, bad, start)
                num_unknown += int(np.count_nonzero(bad))
                if on_unknown == "skip":
                    ids = ids[~bad]
                elif on_unknown == "replace":
                    ids[bad] = replacement_id
            if on_unknown != "error" or not unknown:
                pieces.append(ids.astype(self._id_dtype))
        if unknown and on_unknown == "error":
            raise UnknownCharacterError(unknown, len(self))
        out = np.concatenate(pieces) if pieces else np.zeros(0, dtype=self._id_dtype)
        return (out, num_unknown) if return_num_unknown else out

    def decode(self, ids: Any) -> str:
        """Map a 1-D sequence of ids back to a string.

        Args:
            ids: Integer ids of shape ``[n]``: a numpy array, list, or ``tf.Tensor``.

        Raises:
            ValueError: if an id is outside ``[0, len(self))`` (the bad ids are named) or
                the input is not 1-D.
            TypeError: if the ids are not integers.
        """
        if hasattr(ids, "numpy"):  # tf.Tensor / EagerTensor without importing TensorFlow
            ids = ids.numpy()
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if arr.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids; got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"decode expects integer ids; got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            bad_values = np.unique(arr[bad])
            shown = ", ".join(str(int(v)) for v in bad_values[:_MAX_LISTED])
            if bad_values.size > _MAX_LISTED:
                shown += f", ... ({bad_values.size} distinct)"
            raise ValueError(
                f"ids out of range for a vocabulary of {len(self)} symbols "
                f"(valid: 0..{len(self) - 1}): {shown}"
            )
        cps = self._code_points[arr.astype(np.intp)]
        return cps.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-serialisable description ``{"format", "version", "symbols"}``."""
        return {"format": _FORMAT, "version": _VERSION, "symbols": list(self._symbols)}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary to ``path`` as JSON, atomically (temp file + ``os.replace``)."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Raises:
            ValueError: naming ``path`` if the file is missing, is not valid JSON, or is not
                a ``probseq.vocabulary`` version 1 document with valid symbols.
        """
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"vocabulary file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read vocabulary file {str(path)!r}: {e}") from e
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"vocabulary file {str(path)!r} is not valid JSON: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError(
                f"vocabulary file {str(path)!r} is not a {_FORMAT!r} document "
                '(expected a JSON object with "format": "probseq.vocabulary")'
            )
        if doc.get("version") != _VERSION:
            raise ValueError(
                f"vocabulary file {str(path)!r} has version {doc.get('version')!r}; "
                f"this probseq reads version {_VERSION}"
            )
        symbols = doc.get("symbols")
        if not isinstance(symbols, list):
            raise ValueError(f'vocabulary file {str(path)!r} has no "symbols" list')
        try:
            return cls(symbols)
        except ValueError as e:
            raise ValueError(f"vocabulary file {str(path)!r} is invalid: {e}") from e


def _record_unknown(
    unknown: dict[str, tuple[int, int]], cps: np.ndarray, bad: np.ndarray, offset: int
) -> None:
    """Merge the unknown code points of one chunk (``cps[bad]``) into ``unknown``."""
    positions = np.flatnonzero(bad)
    values, first, counts = np.unique(cps[positions], return_index=True, return_counts=True)
    for cp, i, count in zip(values.tolist(), first.tolist(), counts.tolist(), strict=True):
        ch = chr(cp)
        prev_count, prev_pos = unknown.get(ch, (0, offset + int(positions[i])))
        unknown[ch] = (prev_count + count, prev_pos)
