"""The garbage collector held off while a publish makes its large tables.

Reading a bucket and planning make hundreds of thousands of small objects
that hold no reference cycles (the walk's names, fingerprints, records,
the listing), and nearly all of them live to the end. CPython counts every
one it makes, and each time the survivors have grown by a quarter it walks
them all again in a full collection: at 100,000 files, a fifth of a
no-op's CPU (bench/NOTES.md, seventeenth pass). Held off, the few cycles
made meanwhile are collected after, as they would have been.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_off() -> Iterator[None]:
    """No collection inside; after, the collector as it was (a program that turned it off keeps it off)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
