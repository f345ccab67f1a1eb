"""What the bucket holds: the real listing, and the manifest of what we published.

The manifest is the plugin's record, kept in the bucket beside the site as
`<prefix>.s3-publish-manifest.json.gz`. It names every key the plugin
published with its content MD5, size, the ETag S3 returned and the headers
set, so a publish can tell changed bytes from changed headers, and knows which
objects are its own to delete. The listing is the truth it is checked against.
"""

from __future__ import annotations

import functools
import gzip
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .client import MAX_ATTEMPTS, S3Client, explain, retry_count
from .errors import PublishError
from .etags import normalise
from .headers import Headers, from_head
from .settings import Settings

MANIFEST_NAME = ".s3-publish-manifest.json.gz"
MANIFEST_FORMAT = "pelican-s3-publish manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Record:
    """What the plugin knows it put at a key."""

    md5: str
    size: int
    etag: str
    headers: Headers


@dataclass(frozen=True)
class Listed:
    size: int
    etag: str


@dataclass(frozen=True)
class Manifest:
    records: dict[str, Record]  # by path relative to the prefix
    etag: str | None = None  # of the manifest object as read; None when there was none


@dataclass(frozen=True)
class RemoteState:
    listing: dict[str, Listed]  # by path relative to the prefix, the manifest left out
    manifest: Manifest


class ConcurrentPublishError(PublishError):
    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(
            f"someone else published to s3://{bucket}/{prefix} meanwhile: nothing was deleted and "
            "the manifest was left as they wrote it; publish again once they are done"
        )


def list_objects(client: S3Client, bucket: str, prefix: str) -> dict[str, Listed]:
    listing: dict[str, Listed] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relpath = item["Key"][len(prefix) :]
            if relpath != MANIFEST_NAME:
                listing[relpath] = Listed(item["Size"], normalise(item["ETag"]))
    return listing


def encode_manifest(records: dict[str, Record]) -> bytes:
    """Compact: each distinct header set is stored once and referred to by index."""
    header_sets: dict[Headers, int] = {}
    objects = {}
    for relpath in sorted(records):
        record = records[relpath]
        index = header_sets.setdefault(record.headers, len(header_sets))
        objects[relpath] = [record.md5, record.size, record.etag, index]
    document = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "header_sets": [dict(headers) for headers in header_sets],
        "objects": objects,
    }
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decode_manifest(body: bytes, etag: str | None = None) -> Manifest:
    document = json.loads(gzip.decompress(body))
    if document.get("format") != MANIFEST_FORMAT or document.get("version") != MANIFEST_VERSION:
        raise ValueError("not a manifest this version can read")
    header_sets = [tuple(sorted(h.items())) for h in document["header_sets"]]
    records = {
        relpath: Record(md5, size, etag_, header_sets[index])
        for relpath, (md5, size, etag_, index) in document["objects"].items()
    }
    return Manifest(records, etag)


def _get_whole(client: S3Client, bucket: str, key: str) -> tuple[bytes, str] | None:
    """The object's bytes and ETag, or None if there is none.

    botocore retries a request, but not a body cut off while it is read:
    that is retried here, so a flaky network never makes the manifest look
    corrupt. A 404 whose error body was cut still means "no such key".
    """
    import botocore.exceptions as bx

    attempts_left = MAX_ATTEMPTS
    while True:
        attempts_left -= 1
        try:
            response = client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), normalise(response["ETag"])
        except client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        except (bx.ResponseStreamingError, bx.IncompleteReadError):
            if not attempts_left:
                raise
            retry_count(client).add()


def read_manifest(client: S3Client, bucket: str, prefix: str) -> Manifest:
    key = prefix + MANIFEST_NAME
    found = _get_whole(client, bucket, key)
    if found is None:
        return Manifest({})
    body, etag = found
    try:
        return decode_manifest(body, etag)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise PublishError(
            f"the manifest s3://{bucket}/{key} is unreadable: delete it and publish again "
            "(the bucket's objects are then adopted, not re-sent)"
        ) from None


def write_manifest(client: S3Client, bucket: str, prefix: str, records: dict[str, Record], previous: Manifest) -> None:
    """Written last, and only if nobody else wrote it since we read it."""
    key = prefix + MANIFEST_NAME
    put = functools.partial(
        client.put_object,
        Bucket=bucket,
        Key=key,
        Body=encode_manifest(records),
        ContentType="application/gzip",
        CacheControl="no-store",
    )
    try:
        if previous.etag:
            put(IfMatch=f'"{previous.etag}"')
        else:
            put(IfNoneMatch="*")
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise ConcurrentPublishError(bucket, prefix) from None
        raise explain(error, bucket, key) from None


def ensure_unchanged(client: S3Client, bucket: str, prefix: str, manifest: Manifest) -> None:
    """Deletes are decided from the manifest read at the start: refuse them if it was rewritten since."""
    key = prefix + MANIFEST_NAME
    try:
        if manifest.etag:
            client.head_object(Bucket=bucket, Key=key, IfMatch=f'"{manifest.etag}"')
        else:
            client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("412", "PreconditionFailed"):
            raise ConcurrentPublishError(bucket, prefix) from None
        if code in ("404", "NoSuchKey") and not manifest.etag:
            return
        raise explain(error, bucket, key) from None
    if not manifest.etag:
        raise ConcurrentPublishError(bucket, prefix)


def fetch(client: S3Client, bucket: str, prefix: str) -> RemoteState:
    """The listing and the manifest, read at once: both are round trips."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        manifest = pool.submit(read_manifest, client, bucket, prefix)
        listing = pool.submit(list_objects, client, bucket, prefix)
        try:
            return RemoteState(listing.result(), manifest.result())
        except Exception as error:
            raise explain(error, bucket) from None


class RemoteRead:
    """The client and the bucket's state, read on a daemon thread meanwhile.

    Started when a Pelican build begins, the round trips and botocore's
    start-up cost the publish nothing; a daemon, so a build that fails never
    waits for the network.
    """

    def __init__(self, settings: Settings, client_factory: Callable[[Settings], S3Client]) -> None:
        self._done = threading.Event()
        self._value: tuple[S3Client, RemoteState] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._read, args=(settings, client_factory), daemon=True).start()

    def _read(self, settings: Settings, client_factory: Callable[[Settings], S3Client]) -> None:
        try:
            client = client_factory(settings)
            self._value = client, fetch(client, settings.bucket, settings.prefix)
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def result(self) -> tuple[S3Client, RemoteState]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def head_headers(
    client: S3Client, bucket: str, prefix: str, relpaths: Iterable[str], workers: int
) -> dict[str, Headers]:
    """The headers objects really carry, for the few the manifest cannot vouch for."""

    def head(relpath: str) -> tuple[str, Headers]:
        try:
            response: dict[str, Any] = dict(client.head_object(Bucket=bucket, Key=prefix + relpath))
        except Exception as error:
            raise explain(error, bucket, prefix + relpath) from None
        return relpath, from_head(response)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(head, relpaths))
