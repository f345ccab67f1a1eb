"""Reading and writing the bucket's state through a `Bucket`: the listing, the manifest.

The read starts early, in a thread, so its round trips overlap with hashing
the site (or with the build): obstore releases the interpreter lock while it
waits, and the listing is parsed in Rust.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from .bucket import Bucket, Write, WriteConflict
from .errors import PublishError
from .headers import Headers
from .manifest import MANIFEST_NAME, Manifest, RemoteState, decode_manifest, encode_manifest

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
        listing = {
            key[len(prefix) :]: entry for key, entry in listed.result().items() if key[len(prefix) :] != MANIFEST_NAME
        }
        return RemoteState(listing, manifest.result())


def write_manifest(bucket: Bucket, prefix: str, after: Manifest, previous: Manifest, retry: bool = True) -> Manifest:
    """Written last, and only if nobody else wrote it since we read it; the manifest now there.

    A conditional write whose answer was lost is retried and then finds its
    own manifest there (412): that is checked by reading it back, so a
    lost answer is never taken for another publisher.
    """
    key = prefix + MANIFEST_NAME
    body = encode_manifest(after.records, after.pending)
    condition = Write(if_match=previous.etag, create=previous.etag is None, retry=retry)
    try:
        etag = bucket.put(key, body, MANIFEST_HEADERS, condition)
    except WriteConflict:
        found = bucket.get(key)
        if found is None or found[0] != body:
            raise ConcurrentPublishError(bucket.name, prefix) from None
        etag = found[1]
    return Manifest(after.records, etag, after.pending)


def ensure_unchanged(bucket: Bucket, prefix: str, manifest: Manifest) -> None:
    """Deletes are decided from the manifest read at the start: refuse them if it was rewritten since."""
    head = bucket.head(prefix + MANIFEST_NAME)
    if (head.etag if head else None) != manifest.etag:
        raise ConcurrentPublishError(bucket.name, prefix)


def head_headers(bucket: Bucket, prefix: str, relpaths: Iterable[str], workers: int) -> dict[str, Headers]:
    """The headers objects really carry, for the few the manifest cannot vouch for."""

    def headers_of(relpath: str) -> tuple[str, Headers]:
        head = bucket.head(prefix + relpath)
        return relpath, head.headers if head else ()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(headers_of, relpaths))


class BucketRead:
    """The bucket made and read in a daemon thread: a publish that fails first does not wait for it."""

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
        """The bucket, resolved once for the whole publish, and what it held."""
        return self._answer.result()
