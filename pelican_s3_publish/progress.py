"""The progress bar: files and bytes done against the total, on a terminal, for publishes that take a while.

A publish that ends within about a second shows only its summary line; a
longer one shows a bar on the console it was given: Pelican's own rich
console inside a build (rich 14.1 nests it under Pelican's "Generating..."
spinner; 13.x crashed on two live displays), standard error from the command
line. Nothing is drawn when that console is not a terminal, so CI logs get
the summary line only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from . import stopping
from .report import size_text
from .transfer import Tally

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

SHOW_AFTER_S = 1.0


class ProgressBar:
    """A listener for `Tally`, drawn once the publish has run SHOW_AFTER_S; a context manager that clears it."""

    def __init__(self, console: Console, started: float | None = None) -> None:
        self._console = console
        self._started = time.monotonic() if started is None else started
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()
        self._telling = contextlib.ExitStack()

    def __call__(self, tally: Tally) -> None:
        with self._lock:
            if self._bar is None:
                if time.monotonic() - self._started < SHOW_AFTER_S:
                    return
                self._start(tally)
            assert self._bar is not None and self._task is not None
            sent = f"{size_text(tally.bytes)} of {size_text(tally.total_bytes)}"
            self._bar.update(self._task, completed=tally.files, sent=sent)

    def _start(self, tally: Tally) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("s3-publish:"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files, {task.fields[sent]}"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=self._console,
            transient=True,
        )
        self._task = self._bar.add_task("publish", total=tally.total_files, sent="")
        self._bar.start()

    def __enter__(self) -> ProgressBar:
        self._telling.enter_context(stopping.told_through(self._print))
        return self

    def _print(self, line: str) -> None:
        """Above the bar and any display the console draws (Pelican's spinner), not under them."""
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
        self._telling.close()
