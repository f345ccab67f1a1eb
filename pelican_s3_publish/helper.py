"""The helper process's side: it resolves the bucket, reads it, then carries out the parent's requests.

What it says goes through a pipe, pickled: the manifest object, then the
listing (`Listing`), or a `Failed`; then, for each request (number,
operation, arguments, progress wanted), the bytes a write has sent so far
(number, None, bytes) and its answer (number, True, value) or failure
(number, False, `Failed` or `WriteConflict`). `early_read.ChildRead` is the
parent's side.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from . import collector
from .bucket import Bucket, Capabilities, WriteConflict
from .errors import PublishError, RefusedError, SettingsError
from .local import READ_BLOCK, Ahead, fingerprinted, hash_ahead, still_as_hashed
from .manifest import MANIFEST_NAME, Listed
from .remote import checked_in_parts, manifest_from
from .settings import Settings

HELPER_FAILED = "the helper process that reads and writes the bucket failed"


@dataclass(frozen=True)
class Failed:
    """The child's failure, worded for the user."""

    exit_code: int
    message: str

    def error(self) -> PublishError:
        """Raised in the parent as the child raised it: the same words and exit code."""
        kind = {SettingsError.exit_code: SettingsError, RefusedError.exit_code: RefusedError}.get(self.exit_code)
        error = (kind or PublishError)(self.message)
        error.exit_code = self.exit_code
        return error


def failed(error: Exception) -> Failed:
    """A failure of the user's as it was said; anything else in the one line every failure is."""
    if isinstance(error, PublishError):
        return Failed(error.exit_code, str(error))
    return Failed(PublishError.exit_code, f"{HELPER_FAILED}: {type(error).__name__}: {error}")


@dataclass(frozen=True)
class Listing:
    """The listing, as little as says it all: the parent builds it from the manifest it decoded."""

    unlike: dict[str, Listed]  # by relative path, the listed objects no record stands for
    unlisted: frozenset[str]  # recorded paths the listing does not have


def let_go_of_the_terminal() -> None:
    """A forked child holds no copy of the parent's standard streams: whoever reads the parent's output
    (a pipe, `| tee`, a CI step) would otherwise wait for the child to end, after a failed publish too.
    It says everything through its pipe."""
    nothing = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(nothing, stream)
    os.close(nothing)


def answer(settings: Settings, to_parent: BinaryIO, requests: BinaryIO) -> None:
    """(bucket name, manifest object) at once, then `Listing`; or `Failed`. Then the parent's requests,
    until it is done.

    The manifest goes as the bytes read: the parent decodes it, so no object
    of it is pickled and rebuilt. Ctrl-C at the terminal, and a SIGTERM sent
    to the whole process group (as CI runners stop a job), are for the
    parent: it stops, then still needs the child to record what landed. The
    child ends when the parent does, whatever ended it.
    """
    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, signal.SIG_IGN)
    telling = threading.Lock()

    def tell(said: object) -> None:
        with telling:
            pickle.dump(said, to_parent, protocol=pickle.HIGHEST_PROTOCOL)
            to_parent.flush()

    try:
        with collector.held_off():  # botocore's import and resolution, then the records and the listing
            from .bucket import S3Bucket

            bucket = S3Bucket(settings)
            found = bucket.get(settings.prefix + MANIFEST_NAME)
            tell((bucket.name, found))
            manifest = manifest_from(found, bucket.name, settings.prefix, with_sha256=False)  # checked, not kept
            listing = checked_in_parts(bucket, settings.prefix, manifest, settings.workers)
            unlike = {relpath: entry for relpath, entry in listing.items() if isinstance(entry, Listed)}
            unlisted = frozenset(relpath for relpath in manifest.records if relpath not in listing)
            tell(Listing(unlike, unlisted))
            del found, manifest, listing, unlike, unlisted  # before the collector is back: it need not walk them
            collector.set_aside()
    except Exception as error:  # one line, as every failure is; not a traceback on the build's terminal
        tell(failed(error))
        return
    serve(bucket, requests, tell, settings.workers)


class Hashing:
    """What this process hashes for the parent's scan: the files a build has written, while it goes on,
    by real path (the scan then only checks that each is still the file that was hashed,
    `local.hash_ahead`); and files the scan hands over once this process is idle (`local.Beside`)."""

    OPERATIONS = frozenset({"hash_ahead", "hashed_ahead", "fingerprinted"})

    def __init__(self) -> None:
        self._hashed: dict[str, Ahead] = {}
        self._done = False  # the parent has taken what there is: hashing more would only slow its scan
        self._lock = threading.Lock()  # batches are hashed side by side

    def hash_ahead(self, paths: list[str]) -> None:
        buffer = bytearray(READ_BLOCK)
        for path in paths:
            if self._done:
                return
            hashed = hash_ahead(path, buffer)
            if hashed is not None:
                with self._lock:
                    self._hashed[hashed[0]] = hashed[1]

    def hashed_ahead(self) -> tuple[int, dict[str, Ahead]]:
        """How many files were hashed, and those still as they were, now that the build is done: checked
        here while the parent walks the output."""
        with self._lock:
            self._done = True
            hashed = list(self._hashed.items())
        return len(hashed), {path: ahead for path, ahead in hashed if still_as_hashed(path, ahead)}

    fingerprinted = staticmethod(fingerprinted)  # what a scan hands over, in this process's own thread


class Knowing:
    """What the store does, found out once: the parent asks as soon as it has read a bucket without a
    manifest, so that the probe's round trips pass while it scans, and asks again when it needs the answer."""

    OPERATIONS = frozenset({"know"})

    def __init__(self, bucket: Bucket) -> None:
        self._bucket = bucket
        self._found: Future[Capabilities] | None = None  # the probe's answer, or why it failed
        self._probing = threading.Lock()  # held while the store may be probed: a second question waits

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        with self._probing:
            if known is not None:  # kept in the manifest; probed again if found at another address
                return self._bucket.know(known, prefix)
            if self._found is None:
                self._found = Future()
                try:
                    self._found.set_result(self._bucket.know(None, prefix))
                except Exception as error:
                    self._found.set_exception(error)
        return self._found.result()

    def settled(self) -> None:
        """Waits for a probe under way, which removes its objects whatever happens, and lets none start:
        this process is ending."""
        self._probing.acquire()


def serve(bucket: Bucket, requests: BinaryIO, tell: Callable[[object], None], workers: int) -> None:
    """Each request carried out beside the others, as the parent's workers each wait for their own.

    A closed pipe ends the child, whatever else is in flight: the parent is
    done, or gone, and a write it will never hear of is one it never made.
    A probe of the store is let finish, so that it leaves nothing behind.
    """
    knowing = Knowing(bucket)
    answers = {**dict.fromkeys(Hashing.OPERATIONS, Hashing()), **dict.fromkeys(Knowing.OPERATIONS, knowing)}

    def carry_out(number: int | None, operation: str, arguments: tuple[Any, ...], progress: bool) -> None:
        if number is None:  # asked without a number (files to hash ahead): carried out, nothing said back
            getattr(answers[operation], operation)(*arguments)
            return
        if progress:  # a write, whose last argument says how: told as it goes
            arguments = (*arguments[:-1], replace(arguments[-1], progress=lambda sent: tell((number, None, sent))))
        try:
            outcome = getattr(answers.get(operation, bucket), operation)
            tell((number, True, outcome(*arguments) if callable(outcome) else outcome))
        except WriteConflict as conflict:  # not a failure: the parent decides what it means
            tell((number, False, conflict))
        except Exception as error:
            tell((number, False, failed(error)))

    pool = ThreadPoolExecutor(max_workers=workers)
    while True:
        try:
            request = pickle.load(requests)
        except (EOFError, pickle.UnpicklingError, OSError):
            knowing.settled()
            os._exit(0)
        pool.submit(carry_out, *request)


def answer_parent() -> None:
    """A new interpreter's entry: settings in on stdin, then the requests; the answers out on stdout."""
    answer(pickle.load(sys.stdin.buffer), sys.stdout.buffer, sys.stdin.buffer)
