"""What the bucket holds: the real listing, and the manifest of what we published.

The manifest is the plugin's record, kept in the bucket beside the site as
`<prefix>.s3-publish-manifest.json.gz`. It names every key the plugin
published with its content MD5, size, the ETag S3 returned and the headers
set, so a publish can tell changed bytes from changed headers, and knows which
objects are its own to delete. The listing is the truth it is checked against.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from .client import MAX_ATTEMPTS, NOT_FOUND, PRECONDITION_FAILED, S3Client, error_code, explain, retry_count
from .errors import PublishError, SettingsError
from .etags import normalise
from .headers import Headers, from_head
from .settings import Settings

MANIFEST_NAME = ".s3-publish-manifest.json.gz"
MANIFEST_FORMAT = "pelican-s3-publish manifest"
MANIFEST_VERSION = 1
FAST_LISTING = "pelican-s3-publish-listing"


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


def _parse_listing(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """Read a ListObjectsV2 page's keys with ElementTree, for a tenth of botocore's cost.

    botocore's own parser spends ~60 ms of Python per 1,000 keys, the longest
    step of a no-op publish after the server's answer. This hook (botocore's
    documented `before-parse` event) takes the keys, sizes and ETags out, and
    leaves botocore a page without them to read what pagination needs.
    """
    if response_dict["status_code"] != 200:
        return
    root = ElementTree.fromstring(response_dict["body"])
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    found = root.findall(namespace + "Contents")
    customized_response_dict["KeysSizesETags"] = [
        (
            item.findtext(namespace + "Key", ""),
            int(item.findtext(namespace + "Size", "0")),
            item.findtext(namespace + "ETag", ""),
        )
        for item in found
    ]
    for item in found:
        root.remove(item)
    response_dict["body"] = ElementTree.tostring(root)


def list_objects(client: S3Client, bucket: str, prefix: str) -> dict[str, Listed]:
    client.meta.events.register("before-parse.s3.ListObjectsV2", _parse_listing, unique_id=FAST_LISTING)
    listing: dict[str, Listed] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        url_encoded = page.get("EncodingType") == "url"  # botocore asks for it, to carry any key safely
        for key, size, etag in page["KeysSizesETags"]:  # type: ignore[typeddict-item]
            relpath = (unquote_plus(key) if url_encoded else key)[len(prefix) :]
            if relpath != MANIFEST_NAME:
                listing[relpath] = Listed(size, normalise(etag))
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
            if error_code(error) in NOT_FOUND:
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
        if error_code(error) in PRECONDITION_FAILED:
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
        code = error_code(error)
        if code in PRECONDITION_FAILED:
            raise ConcurrentPublishError(bucket, prefix) from None
        if code in NOT_FOUND and not manifest.etag:
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
    """The bucket's state, read by a child process while the site is built or hashed.

    Reading costs about 0.4 s of CPU (importing boto3, making a client,
    parsing the listing). In its own process that runs on another core
    instead of taking turns with Pelican's build or the hashing for Python's
    one interpreter lock, and a publish with nothing to write never loads
    boto3 at all. If the build fails, nobody waits for it.
    """

    def __init__(self, settings: Settings) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        encoded = base64.b64encode(pickle.dumps(settings)).decode()
        self._child = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import answer_parent; answer_parent()", encoded],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
        )

    def result(self) -> tuple[RemoteState, int]:
        """The state and how many requests were retried to read it."""
        answer, problem = self._child.communicate()
        if self._child.returncode != 0:
            raise RuntimeError(f"reading the bucket failed in the child process:\n{problem.decode()}")
        kind, value, retries = pickle.loads(answer)
        if kind == "error":
            exit_code, message = value
            raise SettingsError(message) if exit_code == SettingsError.exit_code else PublishError(message)
        return value, retries

    def cancel(self) -> None:
        """For a read whose settings changed before the publish: stop it and reap it."""
        self._child.kill()
        self._child.communicate()


def answer_parent() -> None:
    """The child's side of RemoteRead: settings in as an argument, the state (or the error) out on stdout."""
    from .client import make_client

    settings = pickle.loads(base64.b64decode(sys.argv[1]))
    answer: tuple[str, object, int]
    try:
        client = make_client(settings)
        answer = ("state", fetch(client, settings.bucket, settings.prefix), retry_count(client).total)
    except PublishError as error:
        answer = ("error", (error.exit_code, str(error)), 0)
    sys.stdout.buffer.write(pickle.dumps(answer))


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
