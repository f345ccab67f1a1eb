"""Ctrl-C and SIGTERM during a publish: stop soon, and leave a true manifest.

Python's default answer to Ctrl-C (KeyboardInterrupt in the main thread)
does not stop the worker threads: a thread pool finishes every queued
request before the exception gets out, so a publish went on to the end and
then wrote no manifest. Instead the first signal only asks the publish to
stop: no request starts after it, those in flight get a short grace, the
manifest records what landed, and the publish fails with `Interrupted`. A
second signal exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from .errors import PublishError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long requests already on the wire may take to finish once asked to stop;
# those still running then are abandoned, and the next publish adopts them by ETag.
GRACE_S = 2.0


STOPPING = "s3-publish: stopping: no new requests; recording what landed (again to quit at once)"


def _write(line: str) -> None:
    os.write(2, line.encode() + b"\n")


# Where the first signal's line goes: standard error, or a live display's console while one is drawn,
# which would otherwise draw over it.
_tell: list[Callable[[str], None]] = [_write]


@contextlib.contextmanager
def told_through(print_line: Callable[[str], None]) -> Iterator[None]:
    """While a live display owns the terminal, the signal handler's line goes through its console."""
    _tell.append(print_line)
    try:
        yield
    finally:
        _tell.remove(print_line)


class Interrupted(PublishError):
    """Asked to stop by a signal; the exit code says which (130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class Stop:
    """Set once a signal asks the publish to stop; checked before each request starts."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int = signal.SIGINT

    def ask(self, signum: int) -> None:
        self.signum = signum
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def check(self, what: str) -> None:
        """Raise `Interrupted` if asked to stop, saying what was left undone."""
        if self:
            raise Interrupted(f"interrupted: {what}", self.signum)


@contextlib.contextmanager
def on_signals() -> Iterator[Stop]:
    """While publishing, SIGINT and SIGTERM ask to stop; a second one exits at once.

    Only the main thread can install signal handlers: elsewhere (a publish
    run from a thread) the process keeps its own and nothing changes here.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop:  # on a line of its own, whatever a display was drawing: nothing draws after this
            os.write(2, b"\ns3-publish: stopped at once; publish again to finish\n")
            os._exit(128 + signum)
        stop.ask(signum)
        tell = _tell[-1]
        if tell is _write:
            tell(STOPPING)
        else:  # a console's lock may be held by the code this handler interrupted: print once it is free
            threading.Thread(target=tell, args=(STOPPING,), daemon=True).start()

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
