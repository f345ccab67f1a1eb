"""What the bucket holds: the real listing, and the manifest of what we published.

The manifest is the plugin's record, kept in the bucket beside the site as
`<prefix>.s3-publish-manifest.json.gz`. It names every key the plugin
published with its content MD5 and SHA-256, size, the ETag S3 returned and
the headers set, so a publish can tell changed bytes from changed headers,
and knows which objects are its own to delete. The listing is the truth it is
checked against.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from .client import S3Client, explain
from .errors import PublishError
from .etags import content_md5, normalise
from .headers import Headers, from_head

if TYPE_CHECKING:  # the parent of a no-op publish never sends a request itself
    from .s3_wire import S3Wire

MANIFEST_NAME = ".s3-publish-manifest.json.gz"
MANIFEST_FORMAT = "pelican-s3-publish manifest"
MANIFEST_VERSION = 2  # 2 added each object's SHA-256; 1 is still read


@dataclass(frozen=True)
class Record:
    """What the plugin knows it put at a key."""

    md5: str
    size: int
    etag: str
    headers: Headers
    sha256: str = ""  # of the bytes; empty in a manifest written before it was kept


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


@dataclass(frozen=True)
class ListingPage:
    entries: list[tuple[str, Listed]]  # (key, what is there)
    next_token: str | None


def parse_xml(body: bytes) -> tuple[ElementTree.Element, str]:
    """An S3 answer's root element and its namespace, to prefix each tag searched for.

    An explicit namespace, not ElementTree's "{*}": the wildcard search is 3x slower per key.
    """
    root = ElementTree.fromstring(body)
    return root, root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def parse_listing_page(body: bytes) -> ListingPage:
    """One ListObjectsV2 page, read with ElementTree: a tenth of botocore's cost per key."""
    root, ns = parse_xml(body)
    url_encoded = root.findtext(ns + "EncodingType") == "url"
    entries = [
        (
            unquote_plus(key) if url_encoded else key,
            Listed(int(item.findtext(ns + "Size", "0")), normalise(item.findtext(ns + "ETag", ""))),
        )
        for item in root.iterfind(ns + "Contents")
        for key in [item.findtext(ns + "Key", "")]
    ]
    truncated = root.findtext(ns + "IsTruncated") == "true"
    return ListingPage(entries, root.findtext(ns + "NextContinuationToken") if truncated else None)


def list_objects(wire: S3Wire, prefix: str) -> dict[str, Listed]:
    listing: dict[str, Listed] = {}
    query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
    while True:
        page = parse_listing_page(wire.request("GET", "", "ListObjectsV2", query=query).body)
        for key, listed in page.entries:
            if key[len(prefix) :] != MANIFEST_NAME:
                listing[key[len(prefix) :]] = listed
        if not page.next_token:
            return listing
        query["continuation-token"] = page.next_token


def encode_manifest(records: dict[str, Record]) -> bytes:
    """Compact: each distinct header set is stored once and referred to by index."""
    header_sets: dict[Headers, int] = {}
    objects = {}
    for relpath in sorted(records):
        record = records[relpath]
        index = header_sets.setdefault(record.headers, len(header_sets))
        objects[relpath] = [record.md5, record.size, record.etag, index, record.sha256]
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
    if document.get("format") != MANIFEST_FORMAT or document.get("version") not in (1, MANIFEST_VERSION):
        raise ValueError("not a manifest this version can read")
    header_sets = [tuple(sorted(h.items())) for h in document["header_sets"]]
    records = {  # a version 1 row has no SHA-256: the record's is then empty
        relpath: Record(md5, size, etag_, header_sets[index], *sha256)
        for relpath, (md5, size, etag_, index, *sha256) in document["objects"].items()
    }
    return Manifest(records, etag)


def _get_whole(wire: S3Wire, key: str) -> tuple[bytes, str] | None:
    """The object's bytes and ETag, or None if there is none.

    The body is read inside the retried request, so a body cut off on a
    flaky network is read again rather than making the manifest look corrupt.
    """
    answer = wire.request("GET", key, "GetObject", accept=frozenset({404}))
    if answer.status == 404:
        return None
    return answer.body, normalise(answer.headers.get("etag", ""))


def read_manifest(wire: S3Wire, bucket: str, prefix: str) -> Manifest:
    key = prefix + MANIFEST_NAME
    found = _get_whole(wire, key)
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


def write_manifest(wire: S3Wire, bucket: str, prefix: str, records: dict[str, Record], previous: Manifest) -> None:
    """Written last, and only if nobody else wrote it since we read it."""
    key = prefix + MANIFEST_NAME
    body = encode_manifest(records)
    headers = {
        "content-type": "application/gzip",
        "cache-control": "no-store",
        "content-md5": content_md5(body),
    }
    if previous.etag:
        headers["if-match"] = f'"{previous.etag}"'
    else:
        headers["if-none-match"] = "*"
    answer = wire.request("PUT", key, "PutObject", headers=headers, body=body, accept=frozenset({412}))
    if answer.status == 412:
        raise ConcurrentPublishError(bucket, prefix)


def ensure_unchanged(wire: S3Wire, bucket: str, prefix: str, manifest: Manifest) -> None:
    """Deletes are decided from the manifest read at the start: refuse them if it was rewritten since."""
    headers = {"if-match": f'"{manifest.etag}"'} if manifest.etag else {}
    answer = wire.request("HEAD", prefix + MANIFEST_NAME, "HeadObject", headers=headers, accept=frozenset({404, 412}))
    if (answer.status == 404) != (manifest.etag is None) or answer.status == 412:
        raise ConcurrentPublishError(bucket, prefix)


def fetch(wire: S3Wire, bucket: str, prefix: str) -> RemoteState:
    """The listing and the manifest, read at once: both are round trips."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        manifest = pool.submit(read_manifest, wire, bucket, prefix)
        listing = pool.submit(list_objects, wire, prefix)
        try:
            return RemoteState(listing.result(), manifest.result())
        except Exception as error:
            raise explain(error, bucket) from None


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
