"""Gzip on upload (S3_PUBLISH_GZIP): which files, and their bytes.

S3 stores one encoding and serves it to every client, so only gzip, which
every browser decodes. The bytes are the same on every machine and in every
build (a fixed level, no time or name in the header), and change detection
works on the file's own bytes, so a rebuild sends, and compresses, nothing.
"""

from __future__ import annotations

import gzip

from .globs import first_match
from .headers import Headers

# Textual types, which gzip shrinks: what CloudFront itself compresses, less the binary ones.
TEXT_TYPES = frozenset(
    {
        "application/atom+xml",
        "application/javascript",
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/rss+xml",
        "application/xhtml+xml",
        "application/xml",
        "image/svg+xml",
        "image/x-icon",
        "text/css",
        "text/csv",
        "text/html",
        "text/javascript",
        "text/markdown",
        "text/plain",
        "text/xml",
        "application/x-javascript",
        "application/vnd.ms-fontobject",
        "font/otf",
        "font/ttf",
    }
)
# Never compressed, even when a glob names them: they are compressed already.
PACKED_TYPES = frozenset(
    {"application/gzip", "application/zip", "application/x-bzip2", "application/x-xz", "application/zstd",
     "application/x-7z-compressed", "application/x-rar-compressed", "application/x-tar", "font/woff", "font/woff2"}
)  # fmt: skip
# Below this, gzip's own 18-byte frame leaves little to gain, and CloudFront does not compress either.
MIN_BYTES = 150
LEVEL = 9

GzipSetting = bool | tuple[str, ...]  # True: the textual types; globs: the files they match


def wanted(relpath: str, size: int, headers: Headers, setting: GzipSetting) -> bool:
    """Whether to send this file gzip-compressed; never a file that already has an encoding."""
    if not setting or size < MIN_BYTES:  # the usual case, gzip off: nothing more to look at
        return False
    values = dict(headers)
    if "content-encoding" in values:
        return False
    content_type = values["content-type"].split(";")[0].strip()
    if content_type in PACKED_TYPES:
        return False
    if isinstance(setting, bool):
        return content_type in TEXT_TYPES or content_type.startswith("text/")
    return first_match(setting, relpath) is not None


def compressed(data: bytes) -> bytes | None:
    """The gzip bytes, when they are smaller than the file's."""
    packed = gzip.compress(data, compresslevel=LEVEL, mtime=0)
    return packed if len(packed) < len(data) else None


def with_gzip(headers: Headers) -> Headers:
    """The headers of a gzip'd object: Content-Encoding, and Cache-Control `no-transform` unless a rule set it.

    Without `no-transform`, Cloudflare in front of R2 and GCS itself may
    decompress the object for some clients; a user's own Cache-Control is kept
    as it is (the README says to include `no-transform` in it).
    """
    added = [("content-encoding", "gzip")]
    if "cache-control" not in dict(headers):
        added.append(("cache-control", "no-transform"))
    return tuple(sorted((*headers, *added)))


def stored_gzipped(stored: Headers, wanted_headers: Headers) -> bool:
    """The object was gzip-compressed by a publish (not a file that came gzip-compressed)."""
    return ("content-encoding", "gzip") in stored and "content-encoding" not in dict(wanted_headers)
