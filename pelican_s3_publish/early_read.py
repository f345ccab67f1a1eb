"""The bucket read started early, so its round trips overlap with other work; a `BucketRead` each way.

- `ThreadRead`: in a thread of this process; for `--history` and rollbacks,
  which wait for it at once.
- `ChildRead`: in a child process, which the parent's interpreter lock cannot
  slow: botocore's resolution is 0.25 s of Python. Forked (nothing to import
  again) while the parent runs no other thread: the command line at its start,
  a Pelican build before its console's spinner; else, and off Linux, a new
  interpreter. The parent makes its own bucket only if it has something to
  write: a no-op never imports botocore there.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .bucket import EVERY_KEY, PLAIN, Bucket, Capabilities, Head, KeyRange, Version, Write
from .errors import PublishError, SettingsError
from .headers import Headers
from .manifest import MANIFEST_NAME, Listed, RemoteState, Stored
from .remote import checked_in_ranges, fetch, manifest_from
from .settings import Settings

HELPER_FAILED = "reading the bucket failed in the helper process that reads it"
CAN_FORK = sys.platform == "linux"  # elsewhere a fork without exec is unsafe once system libraries are loaded


class BucketRead(Protocol):
    def result(self) -> tuple[Bucket, RemoteState]:
        """The bucket, resolved once for the whole publish, and what it held."""
        ...


class ThreadRead:
    """The bucket made and read in a daemon thread: a publish that fails first does not wait for it."""

    def __init__(self, make_bucket: Callable[[], Bucket], prefix: str, workers: int) -> None:
        self._answer: Future[tuple[Bucket, RemoteState]] = Future()
        reading = (make_bucket, prefix, workers)
        threading.Thread(target=self._read, args=reading, name="s3-publish-read", daemon=True).start()

    def _read(self, make_bucket: Callable[[], Bucket], prefix: str, workers: int) -> None:
        try:
            bucket = make_bucket()
            self._answer.set_result((bucket, fetch(bucket, prefix, workers)))
        except Exception as error:
            self._answer.set_exception(error)

    def result(self) -> tuple[Bucket, RemoteState]:
        return self._answer.result()


class ChildRead:
    """The bucket resolved and read in a child process: forked, or a new interpreter (`fork=False`).

    The child says two things: the manifest object as soon as it has it,
    which the parent decodes while the child lists; then the listing. If the
    publish fails first, nobody waits for the child.
    """

    def __init__(self, settings: Settings, make_bucket: Callable[[], Bucket], fork: bool) -> None:
        self._make_bucket = make_bucket
        self._prefix = settings.prefix
        self._said: tuple[Future[object], Future[object]] = (Future(), Future())  # the child's two answers
        self._kill: Callable[[], None]
        if fork and CAN_FORK:
            self._fork(settings)
        else:
            self._spawn(settings)

    def _fork(self, settings: Settings) -> None:
        answer_out, answer_in = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                _let_go_of_the_terminal()
                os.close(answer_out)
                with os.fdopen(answer_in, "wb") as to_parent:
                    _answer(settings, to_parent)
            finally:
                os._exit(0)  # never back into the parent's code; nothing of the parent's to flush twice
        os.close(answer_in)
        self._kill = lambda: os.kill(pid, signal.SIGKILL)

        def last_words() -> str:
            return f"exit code {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}"

        hearing = (os.fdopen(answer_out, "rb"), last_words)
        threading.Thread(target=self._hear, args=hearing, name="s3-publish-read", daemon=True).start()

    def _spawn(self, settings: Settings) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        child = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import answer_parent; answer_parent()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
            start_new_session=True,  # Ctrl-C at the terminal is for the build, which decides what to do
        )
        self._kill = child.kill
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        # On its standard input, not its command line, which holds 128 KiB an argument (1,500 redirects).
        settings_in, stderr = child.stdin, child.stderr

        def last_words() -> str:
            lines = stderr.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit code {child.wait()}"

        def hear() -> None:
            try:
                with settings_in:
                    settings_in.write(pickle.dumps(settings))
            except OSError:
                pass  # the child is gone: its last words say why
            self._hear(child.stdout, last_words)  # type: ignore[arg-type]

        # From a thread, so the build goes on while the child is still importing.
        threading.Thread(target=hear, name="s3-publish-read", daemon=True).start()

    def _hear(self, answers: BinaryIO, last_words: Callable[[], str]) -> None:
        """Each answer as it comes; a child that ended without one is a failure of one line."""
        with answers:
            for said in self._said:
                try:
                    said.set_result(pickle.load(answers))
                except (EOFError, pickle.UnpicklingError, OSError):
                    problem = PublishError(f"{HELPER_FAILED}: {last_words()}")
                    for unsaid in self._said:
                        if not unsaid.done():
                            unsaid.set_exception(problem)
                    return
        last_words()  # reaps the child

    def result(self) -> tuple[Bucket, RemoteState]:
        """The manifest is decoded here, in the caller's thread, once it has nothing else to do: in the
        hearing thread it would take turns with a scan for the interpreter lock, and slow both."""
        name, found = _told(self._said[0].result())
        manifest = manifest_from(found, name, self._prefix)
        listed: _Listed = _told(self._said[1].result())
        listing: dict[str, Stored] = {r: record for r, record in manifest.records.items() if r not in listed.unlisted}
        listing.update((sys.intern(relpath), entry) for relpath, entry in listed.unlike.items())
        return LateBucket(self._make_bucket, name, listed.retries), RemoteState(listing, manifest)

    def cancel(self) -> None:
        """For a read whose settings changed before the publish: stop it and reap it."""
        self._kill()
        self._said[1].exception()


@dataclass(frozen=True)
class _Failed:
    """The child's failure, worded for the user."""

    exit_code: int
    message: str


@dataclass(frozen=True)
class _Listed:
    """The listing, as little as says it all: the parent builds it from the manifest it decoded."""

    unlike: dict[str, Listed]  # by relative path, the listed objects no record stands for
    unlisted: frozenset[str]  # recorded paths the listing does not have
    retries: int


def _told(answer: Any) -> Any:
    """An answer of the child's; its failure raised as the error it was."""
    if not isinstance(answer, _Failed):
        return answer
    if answer.exit_code == SettingsError.exit_code:
        raise SettingsError(answer.message)
    raise PublishError(answer.message)


def _let_go_of_the_terminal() -> None:
    """A forked child holds no copy of the parent's standard streams: whoever reads the parent's output
    (a pipe, `| tee`, a CI step) would otherwise wait for the child's read to end, after a failed
    publish too. It says everything through its pipe."""
    nothing = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(nothing, stream)
    os.close(nothing)


def _answer(settings: Settings, to_parent: BinaryIO) -> None:
    """The child's side: (bucket name, manifest object) at once, then `_Listed`; or `_Failed`.

    The manifest goes as the bytes read: the parent decodes it, so no object
    of it is pickled and rebuilt. Ctrl-C at the terminal is for the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def tell(answer: object) -> None:
        pickle.dump(answer, to_parent, protocol=pickle.HIGHEST_PROTOCOL)
        to_parent.flush()

    try:
        from .bucket import S3Bucket

        bucket = S3Bucket(settings)
        found = bucket.get(settings.prefix + MANIFEST_NAME)
        tell((bucket.name, found))
        manifest = manifest_from(found, bucket.name, settings.prefix, with_sha256=False)  # checked, not kept
        listing = checked_in_ranges(bucket, settings.prefix, manifest, settings.workers)
        unlike = {relpath: entry for relpath, entry in listing.items() if isinstance(entry, Listed)}
        unlisted = frozenset(relpath for relpath in manifest.records if relpath not in listing)
        tell(_Listed(unlike, unlisted, bucket.retries))
    except PublishError as error:
        tell(_Failed(error.exit_code, str(error)))
    except Exception as error:  # one line, as every failure is; not a traceback on the build's terminal
        tell(_Failed(PublishError.exit_code, f"{HELPER_FAILED}: {type(error).__name__}: {error}"))


def answer_parent() -> None:
    """A spawned child's entry: settings in on stdin, the answer out on stdout."""
    _answer(pickle.loads(sys.stdin.buffer.read()), sys.stdout.buffer)


class LateBucket:
    """A bucket made on first use, after a read done elsewhere; its retries count the read's too.

    Made once under a lock: the first use may come from every worker of a pool at
    once (the HEADs of adopted objects), and each would otherwise resolve its own.
    """

    def __init__(self, make_bucket: Callable[[], Bucket], name: str, read_retries: int) -> None:
        self._make_bucket = make_bucket
        self._made: Bucket | None = None
        self._making = threading.Lock()
        self._read_retries = read_retries
        self.name = name

    @property
    def _bucket(self) -> Bucket:
        with self._making:
            if self._made is None:
                self._made = self._make_bucket()
            return self._made

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        return self._bucket.know(known, prefix)

    @property
    def capabilities(self) -> Capabilities:
        return self._bucket.capabilities

    @property
    def retries(self) -> int:
        return self._read_retries + (self._made.retries if self._made is not None else 0)

    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = EVERY_KEY) -> dict[str, Listed]:
        return self._bucket.list_objects(prefix, exact, within)

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self._bucket.get(key)

    def head(self, key: str) -> Head | None:
        return self._bucket.head(key)

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        return self._bucket.put(key, body, headers, how)

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        return self._bucket.copy(key, headers, version)

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        return self._bucket.versions(prefix)

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        return self._bucket.delete(keys)
