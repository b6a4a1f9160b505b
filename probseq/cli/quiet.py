"""Keep TensorFlow's C++ log lines off a command-line user's terminal.

`TF_CPP_MIN_LOG_LEVEL` silences most of TensorFlow's C++ logging, but not all of it: the
plugin registrations printed while TensorFlow loads (before it reads the variable) and
XLA's absl-logged lines at run time ("Compiled cluster using XLA!", "Ignoring Assert
operator ...") go straight to file descriptor 2. `StderrFilter` puts a pipe in front of
descriptor 2 and a thread that copies everything through except whole lines in
TensorFlow's log formats. Partial lines (a progress bar's `\\r` updates) pass through at
once. Used only by the `probseq` console script, and only when the user has not set
`TF_CPP_MIN_LOG_LEVEL` to ask for logs.
"""

from __future__ import annotations

import os
import re
import sys
import threading

__all__ = ["StderrFilter", "is_tensorflow_log_line", "quiet_tensorflow_logs"]

_LOG_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]"  # absl: I0000 00:00:... x.cc:1]
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TensorFlow: 2026-01-01 ...: I tensorflow
    rb"|WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|To enable the following instructions: .* rebuild TensorFlow)"
)
_LOG_PREFIX = re.compile(rb"^(?:[IWEF]\d|\d{4}-|[IWEF]$)")
_LOG_TEXTS = (b"WARNING: All log messages before absl", b"To enable the following instructions")


def _may_become_log_line(partial: bytes) -> bool:
    """A partial line that may still turn out to be a log line (held back until its end)."""
    if _LOG_PREFIX.match(partial):
        return True
    return any(text.startswith(partial[: len(text)]) for text in _LOG_TEXTS)


def is_tensorflow_log_line(line: bytes) -> bool:
    """Whether `line` (bytes, with or without its newline) is one of TensorFlow's logs."""
    return bool(_LOG_LINE.match(line))


class StderrFilter:
    """Drops TensorFlow's C++ log lines from file descriptor 2 (see the module docstring)."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        read_end, write_end = os.pipe()
        sys.stderr.flush()
        self._saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._copy, args=(read_end,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Restore descriptor 2 and wait until everything written so far is copied."""
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # the pipe's last write end closes: the copier sees EOF
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = None

    def _copy(self, read_end: int) -> None:
        pending = b""
        out = self._saved
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line + b"\n" for line in lines if not is_tensorflow_log_line(line)]
            if pending and not _may_become_log_line(pending):
                kept.append(pending)
                pending = b""
            if kept:
                _write_all(out, b"".join(kept))
        if pending and not is_tensorflow_log_line(pending):
            _write_all(out, pending)
        os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def quiet_tensorflow_logs() -> StderrFilter | None:
    """For an experiment script's entry point, before TensorFlow is imported: filter
    TensorFlow's log lines from stderr for the rest of the process, unless the user asked
    for logs (`TF_CPP_MIN_LOG_LEVEL` set to 0 or 1). Returns the filter (None if off)."""
    import atexit

    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") not in ("2", "3"):
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    stderr_filter = StderrFilter()
    stderr_filter.start()
    atexit.register(stderr_filter.stop)
    return stderr_filter
