"""The record the plugin keeps in the bucket, and the listing it is checked against.

The manifest is kept beside the site as `<prefix>.s3-publish-manifest.json.gz`.
It names every key the plugin published with its content MD5 and SHA-256,
size, the ETag S3 returned and the headers set, so a publish can tell changed
bytes from changed headers, and knows which objects are its own to delete.
Pure: how it is fetched and written is `remote`'s business.
"""

from __future__ import annotations

import gzip
import itertools
import json
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _string
from typing import Any, NamedTuple, Protocol

from .headers import Headers
from .local import relpath_of

MANIFEST_NAME = ".s3-publish-manifest.json.gz"
# The object a probe writes beside the manifest to find out what a store does, and removes at once.
PROBE_NAME = ".s3-publish-probe"
PROBE_FOLDER = ".s3-publish-probe-folder/"  # not under the probe's own name: a file system store keeps one of both
# Two keys S3 lists in this order (0x2d before 0x2f), after the name alone; a store that lists folder by folder
# answers otherwise, and its listing is then not cut into ranges (`Capabilities.ordered_listing`).
PROBE_ORDER_BASE = ".s3-publish-probe-order"
PROBE_ORDER = (PROBE_ORDER_BASE + "-", PROBE_ORDER_BASE + "/-")
RESERVED_NAMES = (MANIFEST_NAME, PROBE_NAME, PROBE_FOLDER, *PROBE_ORDER)
MANIFEST_FORMAT = "pelican-s3-publish manifest"
MANIFEST_VERSION = 4  # 4 made it JSON lines, 3 added pending CDN paths, 2 each object's SHA-256; all are read
READABLE_VERSIONS = (1, 2, 3, 4)
COMPRESSED_BLOCK = 64 * 1024  # about 160 KB of text a block (the digests hardly compress)


class Record(NamedTuple):
    """What the plugin knows it put at a key. A tuple: a manifest's records are made in under half the
    time frozen dataclasses take, for 16 bytes more each (bench/NOTES.md, sixteenth pass)."""

    md5: str
    size: int
    etag: str
    headers: Headers
    sha256: str = ""  # of the bytes; empty in a manifest written before it was kept


@dataclass(frozen=True, slots=True)
class Listed:
    size: int
    etag: str


class Stored(Protocol):
    """What the listing says of an object: a `Listed`, or the `Record` it matches exactly."""

    @property
    def size(self) -> int: ...

    @property
    def etag(self) -> str: ...


@dataclass(frozen=True)
class Manifest:
    records: dict[str, Record]  # by path relative to the prefix
    etag: str | None = None  # of the manifest object as read; None when there was none
    # URL paths a CDN distribution has not been told of yet, by distribution: sent by the next publish.
    pending: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The last publishes, oldest first, each a line of JSON: read only to list or undo them (`history`).
    history: tuple[str, ...] = ()
    # Keys the plugin owns whose object a publish was changing or deleting when it stopped: no record
    # vouches for them, but they are still its own to replace or delete.
    in_flight: tuple[str, ...] = ()
    # From the last publish run inside a Pelican build: each content source's saved page, by source path
    # under PATH; and the automatic redirects still kept, old key -> URL path (`redirects.automatic`).
    sources: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    # What the store does, as a probe found it, and where: `bucket.Capabilities` as JSON; None until asked.
    store: dict[str, Any] | None = None

    def owns(self, relpath: str) -> bool:
        return relpath in self.records or relpath in self.in_flight


@dataclass(frozen=True)
class RemoteState:
    listing: Mapping[str, Stored]  # by path relative to the prefix, the manifest left out
    manifest: Manifest


def checked_listing(listed: Mapping[str, Listed], prefix: str, records: Mapping[str, Record]) -> dict[str, Stored]:
    """The listing under the prefix, by relative path, the manifest and the probe left out.

    An object listed just as its record says is stood for by the record, key
    and all: a large site then holds one copy of each, not two. Called on each
    range of a listing as it arrives, so the whole listing is never held twice.
    """
    listing: dict[str, Stored] = {}
    for key, entry in listed.items():
        relpath = sys.intern(relpath_of(prefix, key))  # the manifest's own string, when it names the key
        record = records.get(relpath)
        same = record is not None and (entry.size, entry.etag) == (record.size, record.etag)
        listing[relpath] = record if same and record is not None else entry
    for name in RESERVED_NAMES:
        listing.pop(name, None)
    return listing


def encode_manifest(manifest: Manifest) -> bytes:
    """JSON lines: a head (each distinct header set once), one line per object referring to its set, then
    the history, one line per publish.

    Lines, not one document, so a 100,000-object manifest is read a line at a
    time instead of being parsed whole beside the records made from it.
    Written twice by every publish that changes anything, so written fast:
    gzip's quickest level (the body 5% larger than at its default, in a
    quarter of the time) and each row put together from its escaped strings.
    """
    records, pending = manifest.records, manifest.pending
    header_sets: dict[Headers, int] = {}
    rows = []
    for relpath in sorted(records):
        record = records[relpath]
        rows.append(_row(relpath, record, header_sets.setdefault(record.headers, len(header_sets))))
    head = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "header_sets": [dict(headers) for headers in header_sets],
        "pending_invalidations": {distribution: list(paths) for distribution, paths in sorted(pending.items())},
        "in_flight": sorted(manifest.in_flight),
        "sources": dict(sorted(manifest.sources.items())),
        "moved": dict(sorted(manifest.moved.items())),
        "store": manifest.store,
    }
    text = "".join([_line(head), *rows, *(line + "\n" for line in manifest.history)])
    return gzip.compress(text.encode("utf-8"), compresslevel=1, mtime=0)


def _line(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


def _row(relpath: str, record: Record, index: int) -> str:
    """`_line` of the row [relpath, md5, size, etag, header set, sha256], in a third of its time: each
    string escaped as `_line` escapes it (`encode_basestring`, in C), the rest put together here."""
    md5, etag, sha256 = _string(record.md5), _string(record.etag), _string(record.sha256)
    return f"[{_string(relpath)},{md5},{record.size},{etag},{index},{sha256}]\n"


def decode_manifest(body: bytes, etag: str | None = None, with_sha256: bool = True) -> Manifest:
    """Raises ValueError (or a decoding error) for anything that is not a manifest this version reads.

    Without `with_sha256`, the records leave out their SHA-256, as a version 1 manifest's do: for a
    reader that only checks them against the listing (100,000 records, 11 MB less).
    """
    blocks = _line_blocks(body)
    first = next(blocks, [])
    head = json.loads(first[0]) if first else {}
    if head.get("format") != MANIFEST_FORMAT or head.get("version") not in READABLE_VERSIONS:
        raise ValueError("not a manifest this version can read")
    header_sets = [tuple(sorted(h.items())) for h in head["header_sets"]]
    history: list[str] = []
    records: dict[str, Record] = {}
    for rows in _row_blocks(head, itertools.chain([first[1:]], blocks), history):
        records.update(_records(rows, header_sets, with_sha256))
    pending = {distribution: tuple(paths) for distribution, paths in head.get("pending_invalidations", {}).items()}
    in_flight = tuple(head.get("in_flight", ()))
    sources, moved, store = head.get("sources", {}), head.get("moved", {}), head.get("store")
    return Manifest(records, etag, pending, tuple(history), in_flight, sources, moved, store)


def _line_blocks(body: bytes) -> Iterator[list[bytes]]:
    """The gzipped text as lists of whole lines (none empty), a block of the body at a time: a 100,000-object
    manifest is never held decompressed whole, nor read a line at a time (a call per line was 1.7 s)."""
    inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip's header and trailer, its CRC checked
    rest = b""
    try:
        for start in range(0, len(body), COMPRESSED_BLOCK):
            *lines, rest = (rest + inflate.decompress(body[start : start + COMPRESSED_BLOCK])).split(b"\n")
            if lines:
                yield lines
    except zlib.error as error:
        raise ValueError(f"not gzip: {error}") from None
    if not inflate.eof or inflate.unused_data:
        raise ValueError("the manifest is cut short, or has more after its end")
    if rest:  # a last line without its newline: the one document of versions 1 to 3
        yield [rest]


def _row_blocks(head: dict[str, Any], blocks: Iterable[list[bytes]], history: list[str]) -> Iterator[list[Any]]:
    """Versions 1 to 3 were one document; from 4 each object is a line of its own (an array), and
    each publish in the history too (an object), kept as text into `history`. A block's rows are
    parsed as one JSON array."""
    if "objects" in head:
        yield [[relpath, *row] for relpath, row in head["objects"].items()]
        return
    for lines in blocks:
        history += (line.decode("utf-8") for line in lines if line.startswith(b"{"))
        yield json.loads(b"[" + b",".join(line for line in lines if line.startswith(b"[")) + b"]")


def _records(rows: list[Any], header_sets: list[Headers], with_sha256: bool) -> Iterator[tuple[str, Record]]:
    """A version 1 row has no SHA-256: the record's is then empty. A plain ETag is the MD5: one string for both."""
    return (
        (
            sys.intern(relpath),
            Record(md5, size, md5 if etag == md5 else etag, header_sets[index], *(sha256 if with_sha256 else ())),
        )
        for relpath, md5, size, etag, index, *sha256 in rows
    )
