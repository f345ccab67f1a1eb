"""The record the plugin keeps in the bucket, and the listing it is checked against.

The manifest is kept beside the site as `<prefix>.s3-publish-manifest.json.gz`.
It names every key the plugin published with its content MD5 and SHA-256,
size, the ETag S3 returned and the headers set, so a publish can tell changed
bytes from changed headers, and knows which objects are its own to delete.
Pure: how it is fetched and written is `remote`'s business.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field

from .headers import Headers

MANIFEST_NAME = ".s3-publish-manifest.json.gz"
MANIFEST_FORMAT = "pelican-s3-publish manifest"
MANIFEST_VERSION = 3  # 3 added pending CDN paths, 2 each object's SHA-256; 1 and 2 are still read
READABLE_VERSIONS = (1, 2, 3)


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
    # URL paths a CDN distribution has not been told of yet, by distribution: sent by the next publish.
    pending: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteState:
    listing: dict[str, Listed]  # by path relative to the prefix, the manifest left out
    manifest: Manifest


def encode_manifest(records: dict[str, Record], pending: dict[str, tuple[str, ...]] | None = None) -> bytes:
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
        "pending_invalidations": {distribution: list(paths) for distribution, paths in sorted((pending or {}).items())},
    }
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def decode_manifest(body: bytes, etag: str | None = None) -> Manifest:
    """Raises ValueError (or a decoding error) for anything that is not a manifest this version reads."""
    document = json.loads(gzip.decompress(body))
    if document.get("format") != MANIFEST_FORMAT or document.get("version") not in READABLE_VERSIONS:
        raise ValueError("not a manifest this version can read")
    header_sets = [tuple(sorted(h.items())) for h in document["header_sets"]]
    records = {  # a version 1 row has no SHA-256: the record's is then empty
        relpath: Record(md5, size, etag_, header_sets[index], *sha256)
        for relpath, (md5, size, etag_, index, *sha256) in document["objects"].items()
    }
    pending = {distribution: tuple(paths) for distribution, paths in document.get("pending_invalidations", {}).items()}
    return Manifest(records, etag, pending)
