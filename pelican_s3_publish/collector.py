"""The garbage collector, kept from walking the same large tables over and over.

Reading a bucket and planning make hundreds of thousands of small objects
that hold no reference cycles (the walk's names, fingerprints, records,
the listing), and nearly all of them live to the end. CPython counts every
one it makes, and each time the survivors have grown by a quarter it walks
them all again in a full collection: at 100,000 files, 0.7 s of a no-op's
4 to 5.5 s of CPU (bench/NOTES.md, seventeenth pass).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_off() -> Iterator[None]:
    """No collection inside: the few cycles made meanwhile are collected after. After, the collector as it
    was (a program that turned it off keeps it off)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


@contextmanager
def others_set_aside() -> Iterator[None]:
    """Collections inside walk only what is made inside: a publish at the end of a build, with every
    article still in memory (a full collection walked them all: 0.03 s on the bench site)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def set_aside() -> None:
    """What is alive now lives as long as this process, and no later collection walks it: the helper's
    libraries and bucket once it has read the bucket, so the requests it then serves are not held up."""
    gc.freeze()
