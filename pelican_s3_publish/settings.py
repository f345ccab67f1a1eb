"""The S3_PUBLISH_* settings: read from Pelican's settings, checked, typed.

Every check happens here, before anything touches the bucket, so a typo costs
one clear line and not a half-published site.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from . import cdn, redirects
from .compression import GzipSetting
from .errors import SettingsError
from .headers import HeaderRule, check_rule

PREFIX = "S3_PUBLISH_"
MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
MAX_WORKERS = 256

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    ".git/",
    ".hg/",
    ".svn/",
    ".env",
    "*.swp",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "*.bak",
    "*.orig",
)

CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)

# Pelican settings naming files it writes as feeds, by the feed format.
ATOM_FEED_SETTINGS = (
    "FEED_ATOM",
    "FEED_ALL_ATOM",
    "CATEGORY_FEED_ATOM",
    "AUTHOR_FEED_ATOM",
    "TAG_FEED_ATOM",
    "TRANSLATION_FEED_ATOM",
)
RSS_FEED_SETTINGS = tuple(name.replace("ATOM", "RSS") for name in ATOM_FEED_SETTINGS)

SSE_ALGORITHMS = ("AES256", "aws:kms")
DEFAULT_TIMEOUT_S = 60
# 30 paths a publish: a blog publishing every day of a 31-day month stays within
# CloudFront's 1,000 free paths (a wildcard counts as one).
DEFAULT_CLOUDFRONT_MAX_PATHS = 30

# URLs a publish purges before folding: 10 requests of 30, within the Free plan's bucket of 25.
DEFAULT_CLOUDFLARE_MAX_URLS = 300

Delete = Literal[True, False, "all"]


@dataclass(frozen=True)
class DeleteLimit:
    """How much one publish may delete before it is taken for a mistake and refused.

    `share` is of the objects it could delete (those on record, or all listed
    with S3_PUBLISH_DELETE = "all"); it never refuses `SHARE_FLOOR` or fewer,
    so a small site can still lose a page or two.
    """

    count: int | None = None
    share: float | None = None

    SHARE_FLOOR = 10

    def __str__(self) -> str:
        parts = [str(self.count)] if self.count is not None else []
        parts += [f"{self.share:.0%}"] if self.share is not None else []
        return " and ".join(parts) or "None"


# A count for large sites; a quarter for the rest: a build from an emptied
# content folder took 18 of a site's 37 objects (49%), while a routine publish
# removes a page or two, and pruning a section rarely a quarter of a site.
DEFAULT_MAX_DELETES = DeleteLimit(count=1000, share=0.25)


@dataclass(frozen=True)
class Settings:
    """What one publish needs to know; built only through `from_pelican`."""

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    enabled: bool = True
    dry_run: bool = False
    on_autoreload: bool = False
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    delete: Delete = True
    max_deletes: DeleteLimit = DEFAULT_MAX_DELETES
    workers: int = 64
    acl: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    timeout: int = DEFAULT_TIMEOUT_S
    report: str | None = None
    part_size: int = 8 * MIB
    content_types: tuple[tuple[str, str], ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    cloudfront_distributions: tuple[str, ...] = ()
    cloudfront_max_paths: int = DEFAULT_CLOUDFRONT_MAX_PATHS
    cloudfront_wait: bool = False
    cloudfront_wait_timeout: int = 600
    cloudflare_zones: tuple[str, ...] = ()
    cloudflare_urls: tuple[str, ...] = ()  # the site's public addresses: SITEURL unless given
    cloudflare_max_urls: int = DEFAULT_CLOUDFLARE_MAX_URLS
    gzip: GzipSetting = False
    redirects: tuple[tuple[str, str], ...] = ()  # (source key, target), checked by `redirects.checked`
    auto_redirects: bool = True
    strip_index_html: bool = False
    atom_feeds: tuple[str, ...] = field(default=())
    rss_feeds: tuple[str, ...] = field(default=())

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _bad(name: str, expected: str, value: object) -> SettingsError:
    return SettingsError(f"{name} must be {expected}, got {value!r}: fix it in your Pelican settings")


def _optional_str(name: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(name, "a string", value)
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "True or False", value)
    return value


def _bucket(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(name, "the bucket's name", value)
    if value.startswith("s3://") or "/" in value:
        raise SettingsError(
            f"{name} must be a bare bucket name, got {value!r}: "
            "put the bucket in S3_PUBLISH_BUCKET and any folder in S3_PUBLISH_PREFIX"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]", value):
        # AWS's rule for new buckets is 3-63 lowercase; older buckets and other stores take up to 255,
        # upper case and underscores: the store itself answers for the rest.
        raise _bad(name, "a valid bucket name (3-255 letters, digits, dots, hyphens or underscores)", value)
    return value


def _prefix(name: str, value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise _bad(name, "a string", value)
    if value.startswith("/") or "//" in value or ".." in value.split("/"):
        raise _bad(name, "a relative key prefix without a leading '/', '//' or '..'", value)
    return value if value.endswith("/") else value + "/"


def _endpoint(name: str, value: object) -> str | None:
    url = _optional_str(name, value)
    if url is not None and not re.match(r"https?://[^/\s]+", url):
        raise _bad(name, "an http:// or https:// URL", value)
    return url


def _patterns(name: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)) and all(isinstance(p, str) and p for p in value):
        return tuple(value)
    raise _bad(name, "a list of glob patterns", value)


def _exclude(name: str, value: object) -> tuple[str, ...]:
    return DEFAULT_EXCLUDE + _patterns(name, value)


def _delete(name: str, value: object) -> Delete:
    if value is True or value is False or value == "all":
        return value
    raise _bad(name, 'True, False or "all"', value)


def _whole(name: str, value: object, low: int, high: int | None = None) -> int:
    in_range = isinstance(value, int) and value >= low and (high is None or value <= high)
    if isinstance(value, bool) or not in_range:
        upper = f" to {high}" if high is not None else " or more"
        raise _bad(name, f"a whole number from {low}{upper}", value)
    return value  # type: ignore[return-value]


def _max_deletes(name: str, value: object) -> DeleteLimit:
    """None, a count (50), a share ("25%"), or both ([1000, "25%"])."""
    limits = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
    counts = [v for v in limits if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    shares = [_share(v) for v in limits if isinstance(v, str)]
    if len(counts) + len(shares) != len(limits) or len(counts) > 1 or len(shares) > 1 or None in shares:
        raise _bad(name, 'None, a count such as 50, a share such as "25%", or both: [1000, "25%"]', value)
    return DeleteLimit(counts[0] if counts else None, shares[0] if shares else None)


def _share(text: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", text)
    return float(match.group(1)) / 100 if match and float(match.group(1)) <= 100 else None


def _acl(name: str, value: object) -> str | None:
    acl = _optional_str(name, value)
    if acl is not None and acl not in CANNED_ACLS:
        raise _bad(name, "a canned ACL such as 'public-read', or None", value)
    return acl


def _sse(name: str, value: object) -> str | None:
    algorithm = _optional_str(name, value)
    if algorithm is not None and algorithm not in SSE_ALGORITHMS:
        raise _bad(name, '"AES256", "aws:kms" or None', value)
    return algorithm


def _content_types(name: str, value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and "/" in v for k, v in value.items()
    ):
        raise _bad(name, "a dict of {glob: 'type/subtype'}", value)
    return tuple(value.items())


def _header_rules(name: str, value: object) -> tuple[HeaderRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise _bad(name, "a list of (glob, {header: value}) pairs", value)
    try:
        return tuple(check_rule(rule) for rule in value)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{name}: {error}: fix it in your Pelican settings") from None


def _gzip(name: str, value: object) -> GzipSetting:
    if value is None or value is False or value is True:
        return bool(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(p, str) and p for p in value):
        return tuple(value)
    raise _bad(name, "True, False or a list of glob patterns", value)


def _distributions(name: str, value: object) -> tuple[str, ...]:
    ids = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) and re.fullmatch(r"[A-Z0-9]+", i) for i in ids):
        raise _bad(name, "a CloudFront distribution id such as 'E2QWRUHAPOMQZL', or a list of them", value)
    return tuple(ids)


def _zones(name: str, value: object) -> tuple[str, ...]:
    ids = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(ids, (list, tuple)) or not all(
        isinstance(i, str) and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids
    ):
        raise _bad(
            name, "a Cloudflare zone id (32 hex digits, from the zone's Overview page), or a list of them", value
        )
    return tuple(ids)


def _site_urls(name: str, value: object) -> tuple[str, ...]:
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, (list, tuple)) or not urls or not all(_absolute(url) for url in urls):
        raise _bad(name, "the site's public addresses, such as ['https://example.com']", value)
    return tuple(str(url).rstrip("/") for url in urls)


def _absolute(url: object) -> bool:
    return isinstance(url, str) and re.fullmatch(r"https?://[^/\s]+(/\S*)?", url) is not None


Parser = Callable[[str, Any], Any]

PARSERS: dict[str, tuple[str, Parser]] = {
    "BUCKET": ("bucket", _bucket),
    "PREFIX": ("prefix", _prefix),
    "REGION": ("region", _optional_str),
    "ENDPOINT_URL": ("endpoint_url", _endpoint),
    "PROFILE": ("profile", _optional_str),
    "ENABLED": ("enabled", _bool),
    "DRY_RUN": ("dry_run", _bool),
    "ON_AUTORELOAD": ("on_autoreload", _bool),
    "EXCLUDE": ("exclude", _exclude),
    "DELETE": ("delete", _delete),
    "MAX_DELETES": ("max_deletes", _max_deletes),
    "WORKERS": ("workers", lambda n, v: _whole(n, v, 1, MAX_WORKERS)),
    "ACL": ("acl", _acl),
    "SSE": ("sse", _sse),
    "SSE_KMS_KEY_ID": ("sse_kms_key_id", _optional_str),
    "TIMEOUT": ("timeout", lambda n, v: _whole(n, v, 1, 3600)),
    "REPORT": ("report", _optional_str),
    "PART_SIZE": ("part_size", lambda n, v: _whole(n, v, MIN_PART_SIZE)),
    "CONTENT_TYPES": ("content_types", _content_types),
    "HEADERS": ("headers", _header_rules),
    "CLOUDFRONT_DISTRIBUTION_ID": ("cloudfront_distributions", _distributions),
    "CLOUDFRONT_MAX_PATHS": ("cloudfront_max_paths", lambda n, v: _whole(n, v, 1, cdn.MAX_PATHS)),
    "CLOUDFRONT_WAIT": ("cloudfront_wait", _bool),
    "CLOUDFRONT_WAIT_TIMEOUT": ("cloudfront_wait_timeout", lambda n, v: _whole(n, v, 1, 86400)),
    "CLOUDFLARE_ZONE_ID": ("cloudflare_zones", _zones),
    "CLOUDFLARE_URLS": ("cloudflare_urls", _site_urls),
    "CLOUDFLARE_MAX_URLS": ("cloudflare_max_urls", lambda n, v: _whole(n, v, 1, 100_000)),
    "GZIP": ("gzip", _gzip),
    "REDIRECTS": ("redirects", lambda n, v: redirects.checked(v)),
    "AUTO_REDIRECTS": ("auto_redirects", _bool),
    "STRIP_INDEX_HTML": ("strip_index_html", _bool),
}


def _check_names(pelican_settings: Mapping[str, Any]) -> None:
    known = [PREFIX + suffix for suffix in PARSERS]
    for name in pelican_settings:
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else "see the README's settings table"
            raise SettingsError(f"unknown setting {name}: {hint}")


def _feed_globs(pelican_settings: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """Pelican's feed paths as globs: `feeds/{slug}.atom.xml` -> `feeds/*.atom.xml`."""
    paths = (pelican_settings.get(name) for name in names)
    return tuple(
        "/" + re.sub(r"\{[^}]*\}|%s", "*", path.lstrip("/")) for path in paths if isinstance(path, str) and path
    )


def _check_together(settings: Settings) -> Settings:
    endpoint = urlsplit(settings.endpoint_url or "")
    if settings.bucket in endpoint.path.split("/"):
        raise SettingsError(
            f"{PREFIX}ENDPOINT_URL {settings.endpoint_url} has the bucket in its path: give the server's "
            f"address only ({endpoint.scheme}://{endpoint.netloc}); the bucket goes in {PREFIX}BUCKET"
        )
    if settings.sse_kms_key_id and settings.sse != "aws:kms":
        raise SettingsError(
            f"{PREFIX}SSE_KMS_KEY_ID is set but {PREFIX}SSE is {settings.sse!r}: "
            f'set {PREFIX}SSE = "aws:kms" or remove the key id'
        )
    return settings


def _siteurl(siteurl: object) -> tuple[str, ...]:
    """The public address Cloudflare caches the site under: Pelican's SITEURL, when it is absolute."""
    if not _absolute(siteurl):
        raise SettingsError(
            f"{PREFIX}CLOUDFLARE_ZONE_ID needs the site's public address, but SITEURL is {siteurl!r}: "
            f"set SITEURL = 'https://example.com' in publishconf.py, or {PREFIX}CLOUDFLARE_URLS"
        )
    return (str(siteurl).rstrip("/"),)


def is_requested(pelican_settings: Mapping[str, Any]) -> bool:
    """Publishing is asked for: some S3_PUBLISH_ setting is there, and publishing is not switched off.

    Any of them, not just the bucket: a misspelt S3_PUBLISH_BUCKET must fail
    with "did you mean", not quietly publish nothing.
    """
    named = any(name.startswith(PREFIX) for name in pelican_settings)
    return named and pelican_settings.get(PREFIX + "ENABLED", True) is not False


def dropped_overrides(argv: list[str]) -> list[str]:
    """S3_PUBLISH_ overrides in an `-e` that Pelican's command line dropped: it keeps only the last `-e`."""
    groups: list[list[str]] = []
    collecting = False
    for arg in argv[1:]:
        option, equals, value = arg.partition("=")
        if option in ("-e", "--extra-settings"):
            groups.append([value] if equals else [])
            collecting = True
        elif arg.startswith("-"):
            collecting = False
        elif collecting:
            groups[-1].append(arg)
    kept = {item.partition("=")[0] for item in groups[-1]} if groups else set()
    earlier = [item for group in groups[:-1] for item in group]
    return [item for item in earlier if item.startswith(PREFIX) and item.partition("=")[0] not in kept]


def from_pelican(pelican_settings: Mapping[str, Any]) -> Settings:
    _check_names(pelican_settings)
    if not pelican_settings.get(PREFIX + "BUCKET"):
        raise SettingsError(f"{PREFIX}BUCKET is not set: name the bucket to publish to")
    values = {
        attribute: parse(PREFIX + suffix, pelican_settings[PREFIX + suffix])
        for suffix, (attribute, parse) in PARSERS.items()
        if PREFIX + suffix in pelican_settings
    }
    if values.get("cloudflare_zones") and not values.get("cloudflare_urls"):
        values["cloudflare_urls"] = _siteurl(pelican_settings.get("SITEURL"))
    settings = Settings(
        **values,
        atom_feeds=_feed_globs(pelican_settings, ATOM_FEED_SETTINGS),
        rss_feeds=_feed_globs(pelican_settings, RSS_FEED_SETTINGS),
    )
    return _check_together(settings)
