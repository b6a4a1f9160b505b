"""Ctrl-C for the `probseq` command: stop within seconds, never in the middle of a write.

Python's default handler raises `KeyboardInterrupt` wherever the main thread happens to
be. Three places make that unsafe or slow for a TensorFlow program: a checkpoint or
metrics file being written (a half-written run dir), code that swallows the exception
(a `__del__` or a callback called from C prints "Exception ignored" and training goes
on), and the very start (the exception surfaces as a traceback from deep inside
`import tensorflow`). `Interrupts` replaces the handler for the duration of a command:

* the first signal sets `requested` and raises `KeyboardInterrupt` at once, unless the
  main thread is inside a `protect()` block, where it is deferred to the block's end;
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

    def install(self) -> None:
        """Take over SIGINT (only possible, and only needed, in the main thread)."""
        self.requested = False
        self._pending = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        """Give SIGINT back to the handler that was there before `install`."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        again = self.requested
        self.requested = True
        if self._depth:
            self._pending = True
            if again:
                print("probseq: still writing files; stopping when done.", file=sys.stderr)
            return
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
        return command()
    except BaseException as error:
        if not (isinstance(error, KeyboardInterrupt) or INTERRUPTS.requested):
            raise
        message = str(error) if isinstance(error, TrainingInterrupted) else ""
        print(f"probseq: {message or nothing_saved}", file=sys.stderr, flush=True)
        return 130
    finally:
        INTERRUPTS.uninstall()
