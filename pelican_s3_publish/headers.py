"""The headers an object should carry, as one comparable value.

Headers are part of what a publish compares: a new Cache-Control rule or a
corrected Content-Type updates objects in place, without sending bytes. The
ACL and server-side encryption travel with them, so turning on S3_PUBLISH_SSE
re-encrypts the objects already there by a server-side copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import content_types
from .globs import matches
from .settings import HeaderRule, Settings

# (lowercase header name, value) pairs, sorted: hashable and stable in JSON.
Headers = tuple[tuple[str, str], ...]

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

# What S3 calls each header in boto3's PutObject/CopyObject parameters.
BOTO_PARAMS = {
    "content-type": "ContentType",
    "content-encoding": "ContentEncoding",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-language": "ContentLanguage",
    "expires": "Expires",
    "x-amz-website-redirect-location": "WebsiteRedirectLocation",
    "x-amz-storage-class": "StorageClass",
    "x-amz-acl": "ACL",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
}

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
            hint = " (use S3_PUBLISH_CONTENT_TYPES)" if lower == "content-type" else ""
            raise ValueError(f"header {name!r} in rule {pattern!r} cannot be set{hint}")
        if not isinstance(value, str):
            raise ValueError(f"header {name!r} in rule {pattern!r} must be a string")
        checked[lower] = value
    return pattern, checked


def _rule_headers(relpath: str, rules: tuple[HeaderRule, ...]) -> dict[str, str]:
    """First matching rule wins, header by header."""
    chosen: dict[str, str] = {}
    for pattern, values in rules:
        if matches(pattern, relpath):
            for name, value in values.items():
                chosen.setdefault(name, value)
    return chosen


def desired(relpath: str, head: bytes, settings: Settings) -> Headers:
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


def to_boto(headers: Headers) -> dict[str, Any]:
    """PutObject/CopyObject parameters for these headers."""
    params: dict[str, Any] = {}
    metadata = {}
    for name, value in headers:
        if name.startswith(META_PREFIX):
            metadata[name[len(META_PREFIX) :]] = value
        else:
            params[BOTO_PARAMS[name]] = value
    if metadata:
        params["Metadata"] = metadata
    return params


def from_head(response: Mapping[str, Any]) -> Headers:
    """The headers a HeadObject answer shows (an ACL is never shown)."""
    found = {
        name: response[param]
        for name, param in BOTO_PARAMS.items()
        if param != "Expires" and isinstance(response.get(param), str)
    }
    if response.get("ExpiresString"):
        found["expires"] = response["ExpiresString"]
    if found.get("x-amz-storage-class") == "STANDARD":
        del found["x-amz-storage-class"]
    for key, value in (response.get("Metadata") or {}).items():
        found[META_PREFIX + key.lower()] = value
    return tuple(sorted(found.items()))
