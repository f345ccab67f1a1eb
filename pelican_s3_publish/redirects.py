"""Redirect objects (S3_PUBLISH_REDIRECTS): an old path that keeps taking visitors to the new one.

Each is an object at the old key with two ways of redirecting, because the
ways S3 sites are served honour different ones: the
`x-amz-website-redirect-location` header (a 301 from the S3 website
endpoint, also behind CloudFront), and a small HTML page (meta refresh,
canonical link, a plain link) for a REST endpoint or a private bucket
behind CloudFront, which ignore the header. They are published as files
are, recorded in the manifest: sent when their target changes, deleted when
their entry goes, left alone when nothing changed.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping

from .errors import SettingsError
from .headers import Headers
from .local import INDEX, key_of, name_of

REDIRECT_HEADER = "x-amz-website-redirect-location"
PAGE_TYPE = "text/html; charset=utf-8"
SETTING = "S3_PUBLISH_REDIRECTS"


def checked(value: object) -> tuple[tuple[str, str], ...]:
    """The setting as (source key, target) pairs; a bad entry is one line naming it."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SettingsError(f'{SETTING} must be a dict of {{"old/path.html": "/new/path/"}}, got {value!r}')
    pairs = []
    for source, target in value.items():
        if not isinstance(source, str) or not source.strip("/"):
            raise SettingsError(f"{SETTING}: the source {source!r} must be a path such as 'old/path.html'")
        if not isinstance(target, str) or not re.match(r"(/|https?://[^/\s]+)", target) or target.startswith("//"):
            raise SettingsError(
                f"{SETTING}: the target of {source!r} must be a path from the site's root ('/new/path/') "
                f"or an http(s) URL, got {target!r}"
            )
        if not target.isascii():
            raise SettingsError(f"{SETTING}: the target of {source!r} must be ASCII: percent-encode it ({target!r})")
        pairs.append((source.lstrip("/"), target))
    _check_loops(dict(pairs))
    return tuple(pairs)


def _check_loops(redirects: dict[str, str]) -> None:
    for start in redirects:
        seen, key = [start], start
        while (target := redirects.get(key)) is not None and target.startswith("/"):
            key = _key_of(target)
            if key in seen:
                chain = " -> ".join([*seen, key])
                raise SettingsError(f"{SETTING} loops: {chain}: make one of them point elsewhere")
            seen.append(key)


def _key_of(path: str) -> str:
    """The key a site path is served from: a folder's index page."""
    key = path.split("#")[0].split("?")[0].lstrip("/")
    return name_of(key) if key else INDEX


def check_sources(redirects: tuple[tuple[str, str], ...], local: set[str], where: str) -> None:
    """A redirect may not replace a page the site has: that is a mistake, not a move."""
    for source, _ in redirects:
        if source in local:
            raise SettingsError(
                f"{SETTING}: {source} is a file in {where}; a redirect there would replace it: "
                "remove the entry, or the file"
            )


def unknown_targets(redirects: tuple[tuple[str, str], ...], local: set[str], prefix: str) -> list[str]:
    """A line for each target under the site that no file (nor another redirect) is at: a 404 behind a redirect."""
    if not redirects:
        return []  # a build with none: no copy of the site's paths
    there = local | {source for source, _ in redirects}
    lines = []
    for source, target in redirects:
        if not target.startswith("/" + prefix):
            continue  # elsewhere on the host, or another host: not the site's to know
        relpath = _key_of(target[len(prefix) :])
        if not {relpath, key_of(relpath)} & there:  # a page, or its strip-index key
            lines.append(
                f"{SETTING}: {source} -> {target}, but the site has no {relpath}: visitors would get "
                "a 404 there; fix the target"
            )
    return lines


def page(target: str) -> bytes:
    """What a browser that gets the object's bytes (not the website endpoint's 301) shows."""
    url = html.escape(target, quote=True)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={url}">'
        f'<link rel="canonical" href="{url}"><meta name="robots" content="noindex">'
        f'<title>Moved</title></head><body><p>This page has moved to <a href="{url}">{url}</a>.</p></body></html>\n'
    ).encode()


def write_pages(redirects: tuple[tuple[str, str], ...], folder: str) -> list[tuple[str, str]]:
    """Each redirect's page written under `folder`: (key, path), to be published as a file is."""
    written = []
    for number, (source, target) in enumerate(redirects):
        path = os.path.join(folder, f"{number}.html")
        with open(path, "wb") as handle:
            handle.write(page(target))
        written.append((source, path))
    return written


def url_of(saved: str, prefix: str) -> str:
    """The URL path a saved page is visited at: a folder's index page at the folder."""
    return "/" + prefix + ("" if saved == INDEX else key_of(saved))


def automatic(
    before: Mapping[str, str], after: Mapping[str, str], active: Mapping[str, str], prefix: str
) -> dict[str, str]:
    """The automatic redirects once this build is published: each page whose source now saves elsewhere
    (its slug, date or URL pattern changed) redirects there, and older redirects to it follow it."""
    result = dict(active)
    for source, old in before.items():
        new = after.get(source)
        if new is None or new == old:
            continue
        old_url, target = url_of(old, prefix), url_of(new, prefix)
        result = {key: target if went == old_url else went for key, went in result.items()}
        result[old] = target
    return result


def as_redirect(headers: Headers, target: str) -> Headers:
    """The headers of a redirect object: an HTML page, whatever its old name's type, and the redirect."""
    values = {name: value for name, value in headers if name != "content-encoding"}
    values |= {"content-type": PAGE_TYPE, REDIRECT_HEADER: target}
    return tuple(sorted(values.items()))
