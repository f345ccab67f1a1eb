"""Reading and writing the bucket's state through a `Bucket`: the listing, the manifest.

The read starts early, so its round trips overlap with other work: in a
thread beside the command line's hashing (obstore waits and parses the
listing without the interpreter lock), in a child process beside a Pelican
build (botocore's resolution is Python, and would take turns with the build).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from .bucket import PLAIN, Bucket, Capabilities, Head, Version, Write, WriteConflict
from .errors import PublishError, SettingsError
from .headers import Headers
from .local import object_key
from .manifest import MANIFEST_NAME, Listed, Manifest, RemoteState, checked_listing, decode_manifest, encode_manifest
from .settings import Settings

MANIFEST_HEADERS: Headers = (("cache-control", "no-store"), ("content-type", "application/gzip"))


class ConcurrentPublishError(PublishError):
    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(
            f"someone else published to s3://{bucket}/{prefix} meanwhile: nothing was deleted and "
            "the manifest was left as they wrote it; publish again once they are done"
        )


def read_manifest(bucket: Bucket, prefix: str) -> Manifest:
    key = prefix + MANIFEST_NAME
    found = bucket.get(key)
    if found is None:
        return Manifest({})
    body, etag = found
    try:
        return decode_manifest(body, etag)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise PublishError(
            f"the manifest s3://{bucket.name}/{key} is unreadable: delete it and publish again "
            "(the bucket's objects are then adopted, not re-sent)"
        ) from None


def fetch(bucket: Bucket, prefix: str) -> RemoteState:
    """The listing and the manifest, read at once: both are round trips."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        manifest = pool.submit(read_manifest, bucket, prefix)
        listed = pool.submit(bucket.list_objects, prefix)
        listing = listed.result()  # its failure first: it names the bucket, not one key of it
        read = manifest.result()
    if any(key.endswith("/") for key in (*read.records, *read.in_flight)):  # folder keys of ours: list them exactly
        listing = bucket.list_objects(prefix, exact=True)
    return RemoteState(checked_listing(listing, prefix, read.records), read)


def write_manifest(bucket: Bucket, prefix: str, after: Manifest, previous: Manifest, retry: bool = True) -> Manifest:
    """Written last, and only if nobody else wrote it since we read it; the manifest now there.

    A conditional write whose answer was lost is retried and then finds its
    own manifest there (412): that is checked by reading it back, so a
    lost answer is never taken for another publisher.
    """
    key = prefix + MANIFEST_NAME
    body = encode_manifest(after)
    condition = Write(if_match=previous.etag, create=previous.etag is None, retry=retry)
    try:
        etag = bucket.put(key, body, MANIFEST_HEADERS, condition)
    except WriteConflict:
        found = bucket.get(key)
        if found is None or found[0] != body:
            raise ConcurrentPublishError(bucket.name, prefix) from None
        etag = found[1]
    return replace(after, etag=etag)


def ensure_unchanged(bucket: Bucket, prefix: str, manifest: Manifest) -> None:
    """Deletes are decided from the manifest read at the start: refuse them if it was rewritten since."""
    head = bucket.head(prefix + MANIFEST_NAME)
    if (head.etag if head else None) != manifest.etag:
        raise ConcurrentPublishError(bucket.name, prefix)


def head_headers(bucket: Bucket, prefix: str, relpaths: Iterable[str], workers: int) -> dict[str, Headers]:
    """The headers objects really carry, for the few the manifest cannot vouch for."""

    def headers_of(relpath: str) -> tuple[str, Headers]:
        head = bucket.head(object_key(prefix, relpath))
        return relpath, head.headers if head else ()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(headers_of, relpaths))


class BucketRead(Protocol):
    def result(self) -> tuple[Bucket, RemoteState]:
        """The bucket, resolved once for the whole publish, and what it held."""
        ...


class ThreadRead:
    """The bucket made and read in a daemon thread: a publish that fails first does not wait for it.

    For the command line, whose main thread meanwhile only hashes (hashlib
    and file reads release the interpreter lock).
    """

    def __init__(self, make_bucket: Callable[[], Bucket], prefix: str) -> None:
        self._answer: Future[tuple[Bucket, RemoteState]] = Future()
        threading.Thread(target=self._read, args=(make_bucket, prefix), name="s3-publish-read", daemon=True).start()

    def _read(self, make_bucket: Callable[[], Bucket], prefix: str) -> None:
        try:
            bucket = make_bucket()
            self._answer.set_result((bucket, fetch(bucket, prefix)))
        except Exception as error:
            self._answer.set_exception(error)

    def result(self) -> tuple[Bucket, RemoteState]:
        return self._answer.result()


class ChildRead:
    """The bucket resolved and read in a child process, started when a Pelican build begins.

    In a thread, botocore's resolution (0.2 s of Python) fights the build for
    the interpreter lock and added a second to a 10 s build; in a child it
    runs on the other core. The parent makes its own bucket only if it has
    something to write: a no-op never does. If the build fails, nobody waits.
    """

    def __init__(self, settings: Settings, make_bucket: Callable[[], Bucket]) -> None:
        self._make_bucket = make_bucket
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        self._child = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import answer_parent; answer_parent()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
            start_new_session=True,  # Ctrl-C at the terminal is for the build, which decides what to do
        )
        # On its standard input, not its command line, which holds 128 KiB an argument (1,500 redirects);
        # from a thread, so the build goes on while the child is still importing.
        self._talk = Future[tuple[bytes, bytes]]()
        sent = pickle.dumps(settings)
        threading.Thread(target=self._communicate, args=(sent,), name="s3-publish-read", daemon=True).start()

    def _communicate(self, sent: bytes) -> None:
        try:
            self._talk.set_result(self._child.communicate(sent))
        except Exception as error:  # told by `result`, in the build's thread
            self._talk.set_exception(error)

    def result(self) -> tuple[Bucket, RemoteState]:
        answer, problem = self._talk.result()
        if self._child.returncode != 0:
            said = problem.decode(errors="replace").strip().splitlines() or [f"exit code {self._child.returncode}"]
            raise PublishError(f"reading the bucket failed in the helper process that reads it: {said[-1]}")
        kind, value, retries = pickle.loads(answer)
        if kind == "error":
            exit_code, message = value
            raise SettingsError(message) if exit_code == SettingsError.exit_code else PublishError(message)
        return LateBucket(self._make_bucket, value.name, retries), value.state

    def cancel(self) -> None:
        """For a read whose settings changed before the publish: stop it and reap it."""
        self._child.kill()
        self._talk.result()


@dataclass(frozen=True)
class _ChildAnswer:
    name: str
    state: RemoteState


def answer_parent() -> None:
    """The child's side of ChildRead: settings in on stdin, the state (or the error) out on stdout."""
    from .bucket import S3Bucket

    settings = pickle.loads(sys.stdin.buffer.read())
    answer: tuple[str, object, int]
    try:
        bucket = S3Bucket(settings)
        answer = ("state", _ChildAnswer(bucket.name, fetch(bucket, settings.prefix)), bucket.retries)
    except PublishError as error:
        answer = ("error", (error.exit_code, str(error)), 0)
    sys.stdout.buffer.write(pickle.dumps(answer))


class LateBucket:
    """A bucket made on first use, after a read done elsewhere; its retries count the read's too."""

    def __init__(self, make_bucket: Callable[[], Bucket], name: str, read_retries: int) -> None:
        self._make_bucket = make_bucket
        self._made: Bucket | None = None
        self._read_retries = read_retries
        self.name = name

    @property
    def _bucket(self) -> Bucket:
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

    def list_objects(self, prefix: str, exact: bool = False) -> dict[str, Listed]:
        return self._bucket.list_objects(prefix, exact)

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
