"""Tests for probseq.data.vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from probseq.data import UnknownCharacterError, Vocabulary


def test_from_text_sorts_by_code_point() -> None:
    vocab = Vocabulary.from_text("banana Band\n")
    assert vocab.symbols == ("\n", " ", "B", "a", "b", "d", "n")
    assert len(vocab) == 7
    assert "a" in vocab and "z" not in vocab and 3 not in vocab
    assert vocab.id_of("a") == 3


def test_from_text_covers_several_texts() -> None:
    assert Vocabulary.from_text(["ab", "", "ca"]).symbols == ("a", "b", "c")


@pytest.mark.parametrize(
    ("symbols", "match"),
    [
        ([], "at least one"),
        (["a", "a", "b"], "unique.*'a'"),
        (["ab"], "single char"),
        ([""], "single"),
    ],
)
def test_constructor_rejects_bad_symbols(symbols: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Vocabulary(symbols)


def test_from_empty_text_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        Vocabulary.from_text("")


def test_id_dtype_is_compact() -> None:
    small = Vocabulary([chr(i) for i in range(256)])
    large = Vocabulary([chr(i) for i in range(257)])
    assert small.id_dtype == np.uint8
    assert large.id_dtype == np.uint16
    assert small.encode("\x00\xff").dtype == np.uint8
    assert large.encode("\u0100").tolist() == [256]
    # 100M characters in uint8 storage is 100 MB.
    assert small.encode("ab").itemsize * 100_000_000 == 100_000_000


def test_encode_decode_roundtrip() -> None:
    text = "To be, or not to be: that is the question.\n"
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    assert ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(tf.constant(ids.astype(np.int32))) == text
    assert vocab.encode("").size == 0
    assert vocab.decode([]) == ""


def test_encode_non_ascii_and_astral() -> None:
    text = "héllo 😀 wörld"
    vocab = Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


def test_unknown_characters_error_names_them() -> None:
    vocab = Vocabulary.from_text("abcdefghijklmnopqrstuvwxyz ")
    text = "hello worlZ ZZ\n"
    with pytest.raises(UnknownCharacterError) as info:
        vocab.encode(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.unknown == {"Z": (3, 10), "\n": (1, 14)}
    message = str(err)
    assert "4 characters not in the vocabulary (27 symbols)" in message
    assert "'Z' (x3, first at position 10)" in message
    assert "'\\n' (x1, first at position 14)" in message
    assert "on_unknown='skip'" in message and "on_unknown='replace'" in message


def test_unknown_characters_beyond_table_and_many_kinds() -> None:
    vocab = Vocabulary.from_text("ab")
    text = "a" + "".join(chr(0x100 + i) for i in range(15)) + "\U0001f600"
    with pytest.raises(UnknownCharacterError, match=r"\.\.\. and 6 more") as info:
        vocab.encode(text)
    assert len(info.value.unknown) == 16
    assert info.value.unknown["\U0001f600"] == (1, 16)


def test_skip_and_replace() -> None:
    vocab = Vocabulary.from_text("ab ")
    ids, skipped = vocab.encode("a?b!", on_unknown="skip", return_num_unknown=True)
    assert vocab.decode(ids) == "ab" and skipped == 2
    ids, replaced = vocab.encode(
        "a?b!", on_unknown="replace", replacement=" ", return_num_unknown=True
    )
    assert vocab.decode(ids) == "a b " and replaced == 2
    ids, none = vocab.encode("ab", return_num_unknown=True)
    assert none == 0 and ids.tolist() == [1, 2]


def test_replace_needs_in_vocabulary_symbol() -> None:
    vocab = Vocabulary.from_text("ab")
    with pytest.raises(ValueError, match="replacement"):
        vocab.encode("a?", on_unknown="replace", replacement="?")
    with pytest.raises(ValueError, match="replacement"):
        vocab.encode("a?", on_unknown="replace")
    with pytest.raises(ValueError, match="on_unknown"):
        vocab.encode("a", on_unknown="ignore")  # type: ignore[call-overload]


def test_encode_spans_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from probseq.data import vocabulary

    monkeypatch.setattr(vocabulary, "_ENCODE_CHUNK_CHARS", 4)
    vocab = Vocabulary.from_text("abc")
    text = "abcXabcabXcaY"
    with pytest.raises(UnknownCharacterError) as info:
        vocab.encode(text)
    assert info.value.unknown == {"X": (2, 3), "Y": (1, 12)}
    assert vocab.decode(vocab.encode(text, on_unknown="skip")) == "abcabcabca"
    assert Vocabulary.from_text(text).symbols == tuple("XYabc")


def test_decode_rejects_out_of_range_and_bad_input() -> None:
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(ValueError, match=r"valid: 0\.\.2\): -1, 3, 7"):
        vocab.decode([0, 3, -1, 7, 3])
    with pytest.raises(TypeError, match="integer"):
        vocab.decode(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(np.zeros((2, 2), dtype=np.int32))


def test_equality_and_hash() -> None:
    a = Vocabulary.from_text("abc")
    assert a == Vocabulary(["a", "b", "c"])
    assert a != Vocabulary(["c", "b", "a"])
    assert hash(a) == hash(Vocabulary("abc"))
    assert a != "abc"
    assert "3 symbols" in repr(a)


def test_save_and_load(tmp_path) -> None:
    vocab = Vocabulary.from_text("héllo\n\t😀")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc == {"format": "probseq.vocabulary", "version": 1, "symbols": list(vocab.symbols)}
    assert Vocabulary.load(path) == vocab
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temp file left behind


def test_save_failure_leaves_no_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from probseq.data import vocabulary

    def broken_dumps(*args: object, **kwargs: object) -> str:
        raise RuntimeError("boom")

    path = tmp_path / "vocab.json"
    Vocabulary("ab").save(path)
    monkeypatch.setattr(vocabulary.json, "dumps", broken_dumps)
    with pytest.raises(RuntimeError):
        Vocabulary("xy").save(path)
    assert Vocabulary.load(path) == Vocabulary("ab")
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        ("{not json", "not valid JSON"),
        ('{"format": "other", "version": 1, "symbols": ["a"]}', "not a 'probseq.vocabulary'"),
        ('{"format": "probseq.vocabulary", "version": 2, "symbols": ["a"]}', "version 2"),
        ('{"format": "probseq.vocabulary", "version": 1}', "symbols"),
        ('{"format": "probseq.vocabulary", "version": 1, "symbols": ["a", "a"]}', "unique"),
        ("[1, 2]", "not a 'probseq.vocabulary'"),
    ],
)
def test_load_errors_name_the_path(tmp_path, content: str | None, match: str) -> None:
    path = tmp_path / "vocab.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)
