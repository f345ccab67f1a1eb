"""The headers an object should carry, as one comparable value.

Headers are part of what a publish compares: a new Cache-Control rule or a
corrected Content-Type updates objects in place, without sending bytes. The
ACL and server-side encryption travel with them, so turning on S3_PUBLISH_SSE
re-encrypts the objects already there by a server-side copy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from email.header import Header
from typing import Protocol

from . import content_types
from .globs import matches

# (lowercase header name, value) pairs, sorted: hashable and stable in JSON.
Headers = tuple[tuple[str, str], ...]
HeaderRule = tuple[str, dict[str, str]]

RULE_HEADERS = frozenset(
    {
        "cache-control",
        "content-disposition",
        "content-language",
        "expires",
        "x-amz-website-redirect-location",
        "x-amz-storage-class",
    }
)
META_PREFIX = "x-amz-meta-"

# A documented starting point: long caching for fingerprinted assets, HTML
# and feeds revalidated on every visit so a new post shows at once.
CACHE_PRESET: tuple[HeaderRule, ...] = (
    (
        "*.[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f].*",
        {"Cache-Control": "public, max-age=31536000, immutable"},
    ),
    ("*.html", {"Cache-Control": "public, max-age=0, must-revalidate"}),
    ("*.xml", {"Cache-Control": "public, max-age=0, must-revalidate"}),
    ("theme/", {"Cache-Control": "public, max-age=86400"}),
    ("*", {"Cache-Control": "public, max-age=3600"}),
)


class HeaderSettings(Protocol):
    """What `desired` reads of the settings (the settings module depends on this one, not back)."""

    @property
    def content_types(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def headers(self) -> tuple[HeaderRule, ...]: ...
    @property
    def atom_feeds(self) -> tuple[str, ...]: ...
    @property
    def rss_feeds(self) -> tuple[str, ...]: ...
    @property
    def acl(self) -> str | None: ...
    @property
    def sse(self) -> str | None: ...
    @property
    def sse_kms_key_id(self) -> str | None: ...


def check_rule(rule: object) -> HeaderRule:
    """One (glob, {header: value}) rule with header names checked and lowercased."""
    if not (isinstance(rule, (tuple, list)) and len(rule) == 2):
        raise TypeError(f"each rule must be a (glob, {{header: value}}) pair, got {rule!r}")
    pattern, values = rule
    if not isinstance(pattern, str) or not isinstance(values, Mapping):
        raise TypeError(f"each rule must be a (glob, {{header: value}}) pair, got {rule!r}")
    checked: dict[str, str] = {}
    for name, value in values.items():
        lower = str(name).lower()
        if lower not in RULE_HEADERS and not lower.startswith(META_PREFIX):
            raise ValueError(f"header {name!r} in rule {pattern!r} cannot be set{_header_hint(lower)}")
        if not isinstance(value, str):
            raise ValueError(f"header {name!r} in rule {pattern!r} must be a string")
        if not value.isascii() and not lower.startswith(META_PREFIX):
            raise ValueError(f"header {name!r} in rule {pattern!r} must be ASCII, as HTTP headers to S3 are")
        checked[lower] = _mail_safe(value) if lower.startswith(META_PREFIX) else value
    return pattern, checked


def _header_hint(lower: str) -> str:
    if lower == "content-type":
        return " (use S3_PUBLISH_CONTENT_TYPES)"
    close = difflib.get_close_matches(lower, sorted(RULE_HEADERS), n=1)
    return f": did you mean {close[0]!r}?" if close else f": the README lists those that can, and {META_PREFIX}*"


def _mail_safe(value: str) -> str:
    """S3 keeps metadata in US-ASCII and reads other text as RFC 2047 (`=?utf-8?b?...?=`), as it answers it."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _rule_headers(relpath: str, rules: tuple[HeaderRule, ...]) -> dict[str, str]:
    """First matching rule wins, header by header."""
    chosen: dict[str, str] = {}
    for pattern, values in rules:
        if matches(pattern, relpath):
            for name, value in values.items():
                chosen.setdefault(name, value)
    return chosen


def desired(relpath: str, head: bytes, settings: HeaderSettings) -> Headers:
    content_type, encoding = content_types.detect(
        relpath,
        head,
        overrides=settings.content_types,
        atom_feeds=settings.atom_feeds,
        rss_feeds=settings.rss_feeds,
    )
    chosen = _rule_headers(relpath, settings.headers)
    chosen["content-type"] = content_type
    if encoding:
        chosen["content-encoding"] = encoding
    if settings.acl:
        chosen["x-amz-acl"] = settings.acl
    if settings.sse:
        chosen["x-amz-server-side-encryption"] = settings.sse
    if settings.sse_kms_key_id:
        chosen["x-amz-server-side-encryption-aws-kms-key-id"] = settings.sse_kms_key_id
    return tuple(sorted(chosen.items()))
