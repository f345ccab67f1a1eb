"""Content-Type and Content-Encoding from a built-in table, never from the machine.

Python's `mimetypes` reads /etc/mime.types or the Windows registry, so other
tools label the same file differently on different machines. This table uses
the registered (IANA, WHATWG) types and adds `charset=utf-8` to every textual
type, since Pelican writes UTF-8.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

from .globs import Patterns, compiled

OCTET_STREAM = "application/octet-stream"
ATOM = "application/atom+xml"
RSS = "application/rss+xml"
GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 512

BY_EXTENSION: dict[str, str] = {
    # documents and code
    "html": "text/html",
    "htm": "text/html",
    "xhtml": "application/xhtml+xml",
    "css": "text/css",
    "js": "text/javascript",
    "mjs": "text/javascript",
    "cjs": "text/javascript",
    "json": "application/json",
    "map": "application/json",
    "webmanifest": "application/manifest+json",
    "jsonld": "application/ld+json",
    "geojson": "application/geo+json",
    "xml": "application/xml",
    "xsl": "application/xslt+xml",
    "xslt": "application/xslt+xml",
    "atom": ATOM,
    "rss": RSS,
    "gpx": "application/gpx+xml",
    "kml": "application/vnd.google-earth.kml+xml",
    "kmz": "application/vnd.google-earth.kmz",
    "txt": "text/plain",
    "rst": "text/plain",
    "md": "text/markdown",
    "csv": "text/csv",
    "ics": "text/calendar",
    "vtt": "text/vtt",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "toml": "application/toml",
    "wasm": "application/wasm",
    "pdf": "application/pdf",
    "epub": "application/epub+zip",
    # fonts
    "woff": "font/woff",
    "woff2": "font/woff2",
    "ttf": "font/ttf",
    "otf": "font/otf",
    "eot": "application/vnd.ms-fontobject",
    # images
    "svg": "image/svg+xml",
    "png": "image/png",
    "apng": "image/apng",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
    "ico": "image/x-icon",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "heif": "image/heif",
    # audio and video
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "ogv": "video/ogg",
    "mov": "video/quicktime",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    # archives: a browser must download them, so never a Content-Encoding
    "zip": "application/zip",
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "tar.gz": "application/gzip",
    "tar": "application/x-tar",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
    "7z": "application/x-7z-compressed",
}

# Archives whose gzip bytes are the file itself, not a transfer encoding.
GZIP_ARCHIVES = frozenset({"gz", "tgz", "tar.gz"})

# Names that carry no extension, or whose extension says too little.
WELL_KNOWN: dict[str, str] = {
    "CNAME": "text/plain",
    "robots.txt": "text/plain",
    "humans.txt": "text/plain",
    ".well-known/security.txt": "text/plain",
    ".well-known/apple-app-site-association": "application/json",
    ".well-known/assetlinks.json": "application/json",
}

TEXTUAL = frozenset(
    {
        "application/json",
        "application/xml",
        "application/yaml",
        "application/toml",
        "application/javascript",
    }
)


@lru_cache(maxsize=256)
def with_charset(content_type: str) -> str:
    textual = content_type.startswith("text/") or content_type.endswith(("+xml", "+json")) or content_type in TEXTUAL
    return f"{content_type}; charset=utf-8" if textual else content_type


def extension(relpath: str) -> str:
    name = relpath.rpartition("/")[2].lower()
    if name.endswith(".tar.gz"):
        return "tar.gz"
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else ""


def needs_sniffing(relpath: str) -> bool:
    """The name alone does not decide the type, so the scan keeps the first bytes."""
    ext = extension(relpath)
    return relpath not in WELL_KNOWN and (ext not in BY_EXTENSION or ext == "xml")


def _inflate_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, SNIFF_BYTES)
    except zlib.error:
        return b""


def _sniff(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<head" in text or b"<body" in text:
        return "text/html"
    if text.startswith(b"<"):
        for marker, content_type in ((b"<rss", RSS), (b"<feed", ATOM), (b"<svg", "image/svg+xml")):
            if marker in text:
                return content_type
        return "application/xml"
    return OCTET_STREAM


@lru_cache(maxsize=64)
def _named_types(
    overrides: tuple[tuple[str, str], ...], atom_feeds: tuple[str, ...], rss_feeds: tuple[str, ...]
) -> tuple[Patterns, dict[str, tuple[str, bool]]]:
    """The overrides' patterns, then the feeds', matched as one setting (one pass per file, not one per
    pattern); for each pattern, the type it names and whether it is an override: the first pattern that
    matches says which."""
    named: dict[str, tuple[str, bool]] = {}
    feeds = (*((p, ATOM) for p in atom_feeds), *((p, RSS) for p in rss_feeds))
    for pattern, content_type in overrides:
        named.setdefault(pattern, (content_type, True))
    for pattern, content_type in feeds:
        named.setdefault(pattern, (content_type, False))
    return compiled(tuple(named)), named


def detect(
    relpath: str,
    head: bytes,
    *,
    overrides: tuple[tuple[str, str], ...] = (),
    atom_feeds: tuple[str, ...] = (),
    rss_feeds: tuple[str, ...] = (),
) -> tuple[str, str | None]:
    """(Content-Type, Content-Encoding) for a file, by override, name, then bytes.

    `head` is the file's first bytes where the scan kept them (see
    `needs_sniffing`, and every gzip file); otherwise empty.
    """
    ext = extension(relpath)
    gzipped = head.startswith(GZIP_MAGIC) and ext not in GZIP_ARCHIVES
    encoding = "gzip" if gzipped or ext == "svgz" else None
    plain_head = _inflate_head(head) if gzipped else head
    patterns, named = _named_types(overrides, atom_feeds, rss_feeds)
    matched = patterns.first(relpath)
    named_type, override = named[matched] if matched is not None else (None, False)
    content_type = (
        (named_type if override else None)
        or WELL_KNOWN.get(relpath)
        or named_type  # a feed's
        or ("image/svg+xml" if ext == "svgz" else None)
        or (BY_EXTENSION.get(ext) if ext != "xml" else None)
        or _sniff(plain_head)
    )
    if ext == "xml" and content_type == OCTET_STREAM:
        content_type = BY_EXTENSION["xml"]
    return (content_type if override else with_charset(content_type)), encoding
