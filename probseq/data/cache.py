"""Where downloaded and extracted corpora are kept.

The cache directory is, in order of precedence: the ``cache_dir`` argument, the
``PROBSEQ_CACHE_DIR`` environment variable, ``$XDG_CACHE_HOME/probseq``, and
``~/.cache/probseq``. It is created only when something has to be written to it, so a
read-only, pre-populated cache works.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "CacheDirError", "ensure_writable_dir", "resolve_cache_dir"]

CACHE_DIR_ENV = "PROBSEQ_CACHE_DIR"


class CacheDirError(OSError):
    """The cache directory cannot be created or written to.

    The message names the directory and how to choose another one.
    """


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache directory to use (not created, not checked).

    Args:
        cache_dir: Explicit directory; if ``None`` use ``$PROBSEQ_CACHE_DIR``, then
            ``$XDG_CACHE_HOME/probseq``, then ``~/.cache/probseq``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # XDG says relative values are invalid and must be ignored.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "probseq"
    return Path.home() / ".cache" / "probseq"


def ensure_writable_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and check that files can be created in it.

    Raises:
        CacheDirError: naming the directory and the remedy (``cache_dir=`` or
            ``$PROBSEQ_CACHE_DIR``) if it cannot be created or written.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A real write is the only reliable test: os.access is wrong for root, ACLs and
        # read-only mounts.
        with tempfile.TemporaryFile(dir=directory, prefix=".probseq-write-test-"):
            pass
    except OSError as e:
        raise CacheDirError(
            f"cannot use {str(directory)!r} as the probseq cache directory "
            f"({e.strerror or e}). Pass cache_dir=<a writable directory> or set the "
            f"{CACHE_DIR_ENV} environment variable to one."
        ) from e
    return directory
