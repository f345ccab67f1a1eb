"""The bucket read started early, so its round trips overlap with other work; a `BucketRead` each way.

- `ThreadRead`: in a thread of this process; for `--history` and rollbacks,
  which wait for it at once.
- `ChildRead`: in a child process, which the parent's interpreter lock cannot
  slow: botocore's resolution is 0.25 s of Python. Forked (nothing to import
  again) while the parent runs no other thread: the command line at its start,
  a Pelican build before its console's spinner; else, and off Linux, a new
  interpreter. The child then stays, and sends what the publish writes
  (`ChildBucket`): the parent never imports botocore, and a publish that
  changes one page does not resolve the bucket a second time; a publish of
  `MANY_WRITES` or more sends those from a bucket of its own (`writer`). During a
  build it also hashes each page as it is written (`hash_ahead`); once it has
  read the bucket, it hashes half of what the scan has left (`fingerprint`).
  A bucket without a manifest is asked what its store does as soon as it is
  read (`_probe_ahead`), so that the probe's round trips pass meanwhile.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, TypeVar

from . import helper, log
from .bucket import EVERY_KEY, PLAIN, Bucket, Capabilities, Head, KeyRange, Version, Write, WriteConflict
from .bucket.interface import Progress
from .errors import PublishError
from .headers import Headers
from .local import Ahead, Beside, Found
from .manifest import Listed, Manifest, RemoteState, Stored
from .remote import fetch, manifest_from
from .settings import Settings

MANY_WRITES = 500  # from this many, a publish writes from its own process: see `ChildRead.writer`
AHEAD_BATCH = 32  # files sent to be hashed ahead at a time: a write to the pipe for each would cost the build more
CHILD_ENDS_S = 5.0  # after the parent is done: it ends as soon as it reads that, whatever it was doing
_T = TypeVar("_T")
CAN_FORK = sys.platform == "linux"  # elsewhere a fork without exec is unsafe once system libraries are loaded


class BucketRead(Protocol):
    def manifest(self) -> Manifest:
        """The manifest, once read: what a publish can work on before the listing comes."""
        ...

    def result(self) -> tuple[Bucket, RemoteState]:
        """The bucket, resolved once for the whole publish, and what it held."""
        ...

    def hashed_ahead(self) -> Callable[[], dict[str, Ahead]]:
        """Asks, now the build is done, for the files it wrote that were hashed while it went on and are
        still as they were: a function that waits for them, by real path (`local.scan`'s `ahead`)."""
        ...

    def beside(self) -> Beside | None:
        """Where the scan can hand files to hash, once it is idle (`local.scan`'s `beside`)."""
        ...

    def writer(self, bucket: Bucket, writes: int) -> Callable[[], Bucket]:
        """What sends a publish's `writes` site objects, asked for once the store is known (`Bucket.know`):
        `bucket`, or one made meanwhile."""
        ...

    def close(self) -> None:
        """The publish is done with the bucket."""
        ...


class ThreadRead:
    """The bucket made and read in a daemon thread: a publish that fails first does not wait for it."""

    def __init__(self, make_bucket: Callable[[], Bucket], prefix: str, workers: int) -> None:
        def read() -> tuple[Bucket, RemoteState]:
            bucket = make_bucket()
            return bucket, fetch(bucket, prefix, workers)

        self._answer = _in_thread(read, "s3-publish-read")

    def manifest(self) -> Manifest:
        return self.result()[1].manifest  # what reads in a thread waits for it at once

    def hashed_ahead(self) -> Callable[[], dict[str, Ahead]]:
        return dict  # nothing hashes ahead beside a read in a thread

    def beside(self) -> None:
        return None  # nothing beside: this process hashes all

    def writer(self, bucket: Bucket, writes: int) -> Callable[[], Bucket]:
        return lambda: bucket  # in this process already

    def result(self) -> tuple[Bucket, RemoteState]:
        return self._answer.result()

    def close(self) -> None:
        pass  # the thread has ended, or ends with its read


class ChildRead:
    """The bucket resolved and read in a child process: forked, or a new interpreter (`fork=False`).

    The child says two things: the manifest object as soon as it has it,
    which the parent decodes while the child lists; then the listing. It
    then answers the parent's requests (`ChildBucket`) until the parent is
    done (`close`) or gone. If the publish fails first, nobody waits for it.

    Without `waits_at_close` (a build), a child with no request under way is
    not waited for at `close`: it has only to end, and the kernel letting go
    of its memory (about 75 MB, 8-12 ms here) passes beside the end of
    Pelican's run. The hearing thread reaps it.
    """

    def __init__(self, settings: Settings, fork: bool, waits_at_close: bool = True) -> None:
        self._settings = settings
        self._waits_at_close = waits_at_close
        self._prefix = settings.prefix
        self._said: tuple[Future[object], Future[object]] = (Future(), Future())  # the child's two answers
        self._kill: Callable[[], None]
        self._requests: IO[bytes]
        self._hearing: threading.Thread
        self._asking, self._writing = threading.Lock(), threading.Lock()  # the requests waiting; the pipe
        self._numbers = itertools.count()
        self._waiting: dict[int, tuple[Future[tuple[bool, object]], Progress | None]] = {}
        self._gone: PublishError | None = None  # why the child answers no more
        self._manifest: tuple[str, Manifest] | None = None  # the bucket's name, and the manifest decoded
        self._written: list[str] = []  # files the build wrote, not yet sent to be hashed ahead
        self._sent_ahead = False
        if fork and CAN_FORK:
            self._fork(settings)
        else:
            self._spawn(settings)

    def _fork(self, settings: Settings) -> None:
        answer_out, answer_in = os.pipe()
        request_out, request_in = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                helper.let_go_of_the_terminal()
                os.close(answer_out)
                os.close(request_in)  # else the child would hold the pipe open, and never hear the parent go
                with os.fdopen(answer_in, "wb") as to_parent, os.fdopen(request_out, "rb") as requests:
                    helper.answer(settings, to_parent, requests)
            finally:
                os._exit(0)  # never back into the parent's code; nothing of the parent's to flush twice
        os.close(answer_in)
        os.close(request_out)
        self._requests = os.fdopen(request_in, "wb")

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):  # already ended, and reaped
                os.kill(pid, signal.SIGKILL)

        self._kill = kill

        def last_words() -> str:
            return _ended(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

        hearing = (os.fdopen(answer_out, "rb"), last_words)
        self._hearing = threading.Thread(target=self._hear, args=hearing, name="s3-publish-read", daemon=True)
        self._hearing.start()

    def _spawn(self, settings: Settings) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        child = subprocess.Popen(
            [sys.executable, "-c", f"from {helper.__name__} import answer_parent; answer_parent()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
            start_new_session=True,  # Ctrl-C at the terminal is for the build, which decides what to do
        )
        self._kill = child.kill
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        # On its standard input, not its command line, which holds 128 KiB an argument (1,500 redirects);
        # the requests follow.
        self._requests, stderr = child.stdin, child.stderr

        said: collections.deque[str] = collections.deque(maxlen=1)  # read as it comes: a full pipe would stop it
        reading = threading.Thread(target=said.extend, args=(_lines(stderr),), name="s3-publish-helper", daemon=True)
        reading.start()

        def last_words() -> str:
            reading.join()
            code = child.wait()
            return said[-1] if said else _ended(code)

        def hear() -> None:
            with contextlib.suppress(OSError):  # the child is gone: its last words say why
                self._send(settings)
            self._hear(child.stdout, last_words)  # type: ignore[arg-type]

        # From a thread, so the build goes on while the child is still importing.
        self._hearing = threading.Thread(target=hear, name="s3-publish-read", daemon=True)
        self._hearing.start()

    def _send(self, message: object) -> None:
        with self._writing:
            if self._requests.closed:  # by `close`: the publish is done with the bucket
                raise BrokenPipeError
            pickle.dump(message, self._requests, protocol=pickle.HIGHEST_PROTOCOL)
            self._requests.flush()

    def _hear(self, answers: BinaryIO, last_words: Callable[[], str]) -> None:
        """Each answer as it comes; a child that ended without one is a failure of one line."""
        with answers:
            try:
                for said in self._said:
                    said.set_result(pickle.load(answers))
                self._probe_ahead()
                while True:
                    number, done, outcome = pickle.load(answers)
                    with self._asking:
                        asked, progress = self._waiting[number] if done is None else self._waiting.pop(number)
                    if done is None and progress is not None:  # bytes a write has sent so far
                        progress(outcome)
                    elif done is not None:
                        asked.set_result((done, outcome))
            except (EOFError, pickle.UnpicklingError, OSError):
                words = last_words()  # reaps the child
                self._stop_waiting(PublishError(f"{helper.HELPER_FAILED}: {words}"))

    def _probe_ahead(self) -> None:
        """A bucket without a manifest gets its first publish, which will ask what the store does before it
        writes (`Bucket.know`): asked now, the probe's round trips pass while this process scans. Asked once
        the bucket is read, so that a publish that fails first waits for no probe (`close`)."""
        read, listed = (said.result() for said in self._said)
        no_manifest = isinstance(read, tuple) and read[1] is None  # else the child's failure, or the manifest
        if no_manifest and not isinstance(listed, helper.Failed) and not self._settings.dry_run:
            with contextlib.suppress(PublishError):  # the child is gone: the publish says so
                self._request("know", (None, self._prefix), None)

    def _stop_waiting(self, problem: PublishError) -> None:
        with self._asking:
            self._gone = problem
            waiting: list[Future[Any]] = [said for said in self._said if not said.done()]
            waiting += (asked for asked, _ in self._waiting.values())
            self._waiting.clear()
        for unsaid in waiting:
            unsaid.set_exception(problem)

    def ask(self, operation: str, *arguments: object, progress: Progress | None = None) -> Any:
        """The child's bucket's answer to one request, or the error it raised there; `progress` told of the
        bytes a write has sent as it goes."""
        return _outcome(self._request(operation, arguments, progress))

    def _request(
        self, operation: str, arguments: tuple[object, ...], progress: Progress | None
    ) -> Future[tuple[bool, object]]:
        asked: Future[tuple[bool, object]] = Future()
        with self._asking:
            if self._gone is not None:
                raise self._gone
            number = next(self._numbers)
            self._waiting[number] = asked, progress
        with contextlib.suppress(OSError):  # a child gone is said by the hearing thread
            self._send((number, operation, arguments, progress is not None))
        return asked

    def hash_ahead(self, path: str) -> None:
        """A file the build has written, for the child to hash while the build goes on; sent in batches,
        once the child has read the bucket (until then it reads no requests, and the pipe would fill). Never
        fails the build: a file not hashed ahead is hashed by the scan."""
        self._written.append(path)
        if len(self._written) < AHEAD_BATCH or not self.idle():
            return
        batch, self._written = self._written, []
        with contextlib.suppress(OSError):  # the child is gone: the publish says so
            self._send((None, "hash_ahead", (batch,), False))  # no answer: one pipe write is all the build pays
            self._sent_ahead = True

    def idle(self) -> bool:
        """The child has read the bucket, and serves requests: before a publish writes, it has nothing
        else to do."""
        listed = self._said[1]
        return listed.done() and listed.exception() is None and not isinstance(listed.result(), helper.Failed)

    def fingerprint(self, files: list[tuple[str, str]]) -> Callable[[], list[Found]]:
        """Files the scan hands over, hashed in the child on the other core (`local.Beside`)."""
        log.debug("files handed to the helper process to hash: %d", len(files))
        return functools.partial(_outcome, self._request("fingerprinted", (files,), None))

    def beside(self) -> Beside:
        return self

    def hashed_ahead(self) -> Callable[[], dict[str, Ahead]]:
        """What the child hashed of the files sent, checked there while the scan walks; it then hashes no
        more (the scan reads the rest)."""
        if not self._sent_ahead:
            return dict
        asked = self._request("hashed_ahead", (), None)

        def unchanged() -> dict[str, Ahead]:
            hashed, still = _outcome(asked)
            log.debug("files hashed while the site was built: %d, unchanged since: %d", hashed, len(still))
            return still  # type: ignore[no-any-return]

        return unchanged

    def writer(self, bucket: Bucket, writes: int) -> Callable[[], Bucket]:
        """The child's bucket for a few writes; for `MANY_WRITES` or more, a bucket of this process's own,
        made now in a thread while the child learns the store, and told what it learnt.

        Through the pipes a write costs about 0.3 ms more CPU, in two
        processes, than sent from here; resolving the bucket a second time
        costs 0.3 s, mostly hidden behind the round trips before the first
        write. Measured, the two ways take as long at 765 writes, and a
        first upload of the bench site took 0.84x the time and 0.64 s less
        CPU (bench/NOTES.md, thirteenth pass). Only plain writes go from
        here, which teach a store nothing: the manifest's conditional
        writes and the deletes stay with the child's bucket.
        """
        if writes < MANY_WRITES:
            return lambda: bucket
        from .bucket import S3Bucket

        made = _in_thread(functools.partial(S3Bucket, self._settings), "s3-publish-writer")

        def own() -> Bucket:
            writer = made.result()
            writer.know(bucket.capabilities, self._prefix)  # the same store, resolved the same: not asked again
            log.debug("%d writes to send: sending them from this process", writes)
            return writer

        return own

    def manifest(self) -> Manifest:
        return self._named_manifest()[1]

    def _named_manifest(self) -> tuple[str, Manifest]:
        """The bucket's name and the manifest, decoded here, in the caller's thread, once it has nothing
        else to do: in the hearing thread it would take turns with a scan for the interpreter lock."""
        if self._manifest is None:
            name, found = _told(self._said[0].result())
            self._manifest = name, manifest_from(found, name, self._prefix)
        return self._manifest

    def result(self) -> tuple[Bucket, RemoteState]:
        name, manifest = self._named_manifest()
        listed: helper.Listing = _told(self._said[1].result())
        listing: dict[str, Stored] = {r: record for r, record in manifest.records.items() if r not in listed.unlisted}
        listing.update((sys.intern(relpath), entry) for relpath, entry in listed.unlike.items())
        return ChildBucket(name, self.ask), RemoteState(listing, manifest)

    def close(self) -> None:
        """The publish is done with the bucket: the child ends when it reads that. It is waited for and
        reaped, so that its time and memory count as the publish's; without `waits_at_close`, only while a
        request is under way there (a probe, which is let finish)."""
        with self._writing, contextlib.suppress(OSError):
            self._requests.close()
        if not self._said[1].done():  # still reading, for a publish that failed first: nobody waits for it
            self._kill()
        with self._asking:
            under_way = bool(self._waiting)
        if not (self._waits_at_close or under_way):
            return
        self._hearing.join(timeout=CHILD_ENDS_S)
        if self._hearing.is_alive():
            self._kill()


def _in_thread(work: Callable[[], _T], name: str) -> Future[_T]:
    """`work` done in a daemon thread: what it returns, or raises, is the future's; nobody has to wait for it."""
    done: Future[_T] = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except Exception as error:
            done.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


def _lines(stream: IO[bytes]) -> Iterator[str]:
    with stream:
        yield from (line.decode(errors="replace").strip() for line in stream if line.strip())


def _ended(code: int) -> str:
    return f"it was killed (signal {-code})" if code < 0 else f"it ended with exit code {code}"


def _outcome(asked: Future[tuple[bool, object]]) -> Any:
    """A request's answer, or the error the child's bucket raised."""
    done, outcome = asked.result()
    if not done:
        raise outcome if isinstance(outcome, WriteConflict) else _told(outcome)
    return outcome


def _told(answer: Any) -> Any:
    """An answer of the child's; its failure raised as the error it was."""
    if isinstance(answer, helper.Failed):
        raise answer.error()
    return answer


class ChildBucket:
    """The bucket the child process resolved and read, asked through its pipes (`ChildRead.ask`)."""

    def __init__(self, name: str, ask: Callable[..., Any]) -> None:
        self.name = name
        self._ask = ask

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        return self._ask("know", known, prefix)  # type: ignore[no-any-return]

    @property
    def capabilities(self) -> Capabilities:
        return self._ask("capabilities")  # type: ignore[no-any-return]

    @property
    def retries(self) -> int:
        return self._ask("retries")  # type: ignore[no-any-return]

    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = EVERY_KEY) -> dict[str, Listed]:
        return self._ask("list_objects", prefix, exact, within)  # type: ignore[no-any-return]

    def list_folders(self, prefix: str, exact: bool = False) -> tuple[dict[str, Listed], tuple[str, ...]]:
        return self._ask("list_folders", prefix, exact)  # type: ignore[no-any-return]

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self._ask("get", key)  # type: ignore[no-any-return]

    def head(self, key: str) -> Head | None:
        return self._ask("head", key)  # type: ignore[no-any-return]

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        sent = replace(how, progress=None)  # told back through the pipe
        return self._ask("put", key, body, headers, sent, progress=how.progress)  # type: ignore[no-any-return]

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        return self._ask("copy", key, headers, version)  # type: ignore[no-any-return]

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        return self._ask("versions", prefix)  # type: ignore[no-any-return]

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        return self._ask("delete", keys)  # type: ignore[no-any-return]
