"""Ctrl-C for the `probseq` command: stop within seconds, never in the middle of a write.

Python's default handler raises `KeyboardInterrupt` wherever the main thread happens to
be. Three places make that unsafe or slow for a TensorFlow program: a checkpoint or
metrics file being written (a half-written run dir), code that swallows the exception
(a `__del__` or a callback called from C prints "Exception ignored" and training goes
on), and the very start (the exception surfaces as a traceback from deep inside
`import tensorflow`). `Interrupts` replaces the handler for the duration of a command:

* the first signal sets `requested` and raises `KeyboardInterrupt` at once, unless the
  main thread is inside a `protect()` block, where it is deferred to the block's end, or
  inside an import: C code that calls `__import__` (TensorFlow's nest utilities do)
  turns an exception raised there into a `SystemError` and prints its traceback, so the
  interrupt is re-raised by a SIGALRM 50 ms later, once the import has returned;
* `check()` (called after every training step) raises again if a raised interrupt was
  swallowed somewhere;
* the command's entry point turns any error raised after a request into the exit code
  130 with one line of explanation (no traceback).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["INTERRUPTS", "Interrupts", "TrainingInterrupted", "run_interruptible"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `train` after it saved a checkpoint; the message says which and how
    to resume."""


class Interrupts:
    """SIGINT handling of one command-line invocation (see the module docstring)."""

    def __init__(self) -> None:
        self.requested = False
        self._depth = 0
        self._pending = False
        self._previous = None
        self._previous_alarm = None
        self._deferring = 0

    def install(self) -> None:
        """Take over SIGINT (only possible, and only needed, in the main thread)."""
        self.requested = False
        self._pending = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._previous_alarm = signal.signal(signal.SIGALRM, self._retry)

    def uninstall(self) -> None:
        """Give SIGINT (and SIGALRM) back to the handlers that were there before."""
        if self._previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGINT, self._previous)
            signal.signal(signal.SIGALRM, self._previous_alarm)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        again = self.requested
        self.requested = True
        if self._depth:
            self._pending = True
            if again:
                print("probseq: still writing files; stopping when done.", file=sys.stderr)
            return
        if self._deferring:
            return  # `check()` raises it after the current step
        if _in_import(frame):
            self._pending = True
            signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block (training) in which Ctrl-C takes effect at the next `check()` (after
        the current step) instead of wherever the main thread is: raised inside
        TensorFlow's tracing, where C++ calls back into Python, it becomes a SystemError
        with a printed traceback."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def _retry(self, signum, frame) -> None:
        """SIGALRM after an interrupt deferred out of an import: raise it now."""
        if not self._pending or self._depth or self._deferring:
            return  # raised already, or a protect() block or check() will raise it
        if _in_import(frame):
            signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
            return
        self._pending = False
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def protect(self) -> Iterator[None]:
        """A block that a Ctrl-C does not cut short (it takes effect at the block's end)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pending:
                self._pending = False
                raise KeyboardInterrupt

    def check(self) -> None:
        """Raise `KeyboardInterrupt` if an interrupt was requested (and maybe swallowed)."""
        if self.requested and not self._depth:
            raise KeyboardInterrupt


_RETRY_SECONDS = 0.05


def _in_import(frame) -> bool:
    """Whether the main thread is inside Python's import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


# The one instance of the process (signals are per process).
INTERRUPTS = Interrupts()


def run_interruptible(command, *, nothing_saved: str) -> int:
    """Run `command()` (returning an exit status) under `INTERRUPTS`; Ctrl-C gives 130.

    On an interrupt, prints one line: the `TrainingInterrupted` message of `train` (what
    was saved and how to resume), or `nothing_saved`; never a traceback. Any exception
    raised after Ctrl-C was pressed (TensorFlow's import can turn it into another error)
    counts as the interrupt.
    """
    INTERRUPTS.install()
    try:
        status = command()
        if INTERRUPTS.requested:  # deferred (e.g. out of an import) and never raised
            raise KeyboardInterrupt
        return status
    except BaseException as error:
        if not (isinstance(error, KeyboardInterrupt) or INTERRUPTS.requested):
            raise
        message = str(error) if isinstance(error, TrainingInterrupted) else ""
        print(f"probseq: {message or nothing_saved}", file=sys.stderr, flush=True)
        return 130
    finally:
        INTERRUPTS.uninstall()
