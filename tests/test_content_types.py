"""Every file of a static site is served with the type a browser expects, on any machine."""

from __future__ import annotations

import gzip
import io
import mimetypes
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pelican_s3_publish import content_types
from pelican_s3_publish.cli import main as cli_main
from tests.conftest import Bucket, Site, md5_tree

U = "; charset=utf-8"
EXPECTED_BY_EXTENSION = {
    "html": "text/html" + U,
    "htm": "text/html" + U,
    "xhtml": "application/xhtml+xml" + U,
    "css": "text/css" + U,
    "js": "text/javascript" + U,
    "mjs": "text/javascript" + U,
    "cjs": "text/javascript" + U,
    "json": "application/json" + U,
    "map": "application/json" + U,
    "webmanifest": "application/manifest+json" + U,
    "xml": "application/xml" + U,
    "xsl": "application/xslt+xml" + U,
    "xslt": "application/xslt+xml" + U,
    "atom": "application/atom+xml" + U,
    "rss": "application/rss+xml" + U,
    "svg": "image/svg+xml" + U,
    "txt": "text/plain" + U,
    "md": "text/markdown" + U,
    "csv": "text/csv" + U,
    "ics": "text/calendar" + U,
    "vtt": "text/vtt" + U,
    "woff": "font/woff",
    "woff2": "font/woff2",
    "ttf": "font/ttf",
    "otf": "font/otf",
    "eot": "application/vnd.ms-fontobject",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
    "apng": "image/apng",
    "ico": "image/x-icon",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "mp4": "video/mp4",
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
    "pdf": "application/pdf",
    "zip": "application/zip",
    "gz": "application/gzip",
    "tgz": "application/gzip",
    "tar.gz": "application/gzip",
    "bz2": "application/x-bzip2",
    "xz": "application/x-xz",
    "7z": "application/x-7z-compressed",
    "wasm": "application/wasm",
    "jsonld": "application/ld+json" + U,
    "geojson": "application/geo+json" + U,
    "gpx": "application/gpx+xml" + U,
    "kml": "application/vnd.google-earth.kml+xml" + U,
    "yaml": "application/yaml" + U,
    "yml": "application/yaml" + U,
    "toml": "application/toml" + U,
    "epub": "application/epub+zip",
}

# (key in the bucket, Content-Type, Content-Encoding) for what Pelican itself and the tricky files make.
EXPECTED_SPECIAL = [
    ("feeds/everything.xml", "application/atom+xml" + U, None),
    ("rss", "application/rss+xml" + U, None),
    ("feeds/notes.atom.xml", "application/atom+xml" + U, None),
    ("a-pretty-url", "text/html" + U, None),
    ("static/gz/page.html", "text/html" + U, "gzip"),
    ("static/gz/style.css", "text/css" + U, "gzip"),
    ("static/release.tar.gz", "application/gzip", None),
    ("static/sitemap.xml", "application/xml" + U, None),
    ("static/LICENSE", "application/octet-stream", None),
    (".well-known/security.txt", "text/plain" + U, None),
    (".well-known/apple-app-site-association", "application/json" + U, None),
    (".well-known/assetlinks.json", "application/json" + U, None),
    ("CNAME", "text/plain" + U, None),
    ("robots.txt", "text/plain" + U, None),
    ("humans.txt", "text/plain" + U, None),
    ("static/override/data.bin", "application/x-custom", None),
]
WELL_KNOWN_FILES = (
    "CNAME",
    "robots.txt",
    "humans.txt",
    ".well-known/security.txt",
    ".well-known/apple-app-site-association",
    ".well-known/assetlinks.json",
)


def _tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    return buffer.getvalue()


@pytest.fixture
def typed_site(tmp_path: Path, bucket: Bucket) -> Site:
    made = Site(
        tmp_path / "typed",
        bucket,
        {
            "FEED_ALL_ATOM": "feeds/everything.xml",
            "FEED_ALL_RSS": "rss",
            "CATEGORY_FEED_ATOM": "feeds/{slug}.atom.xml",
            "STATIC_PATHS": ["static", "extra"],
            "EXTRA_PATH_METADATA": {f"extra/{name}": {"path": name} for name in WELL_KNOWN_FILES},
            "S3_PUBLISH_CONTENT_TYPES": {"static/override/*": "application/x-custom"},
            "READERS": {"html": None, "htm": None},  # static .html files, not articles
        },
    )
    made.article("a-pretty-url", "An article saved without an extension.", category="notes")
    made.settings |= {"ARTICLE_SAVE_AS": "{slug}", "ARTICLE_URL": "{slug}"}
    for ext in EXPECTED_BY_EXTENSION:
        data = _tar_gz() if ext in ("gz", "tgz", "tar.gz") else f"sample .{ext}\n".encode()
        made.static(f"ext/sample.{ext}", data)
    made.static("gz/page.html", gzip.compress(b"<!doctype html><p>cached</p>", mtime=0))
    made.static("gz/style.css", gzip.compress(b"p { color: red }", mtime=0))
    made.static("release.tar.gz", _tar_gz())
    made.static("sitemap.xml", b'<?xml version="1.0"?><urlset></urlset>')
    made.static("LICENSE", b"\x00\x01 binary-ish licence")
    made.static("override/data.bin", b"custom")
    for name in WELL_KNOWN_FILES:
        path = made.content / "extra" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n" if "json" in name or "association" in name else "text\n")
    return made


def _expected() -> list[tuple[str, str, str | None]]:
    by_extension = [(f"static/ext/sample.{ext}", t, None) for ext, t in EXPECTED_BY_EXTENSION.items()]
    return by_extension + EXPECTED_SPECIAL


def _served(bucket: Bucket) -> list[tuple[str, str, str | None]]:
    return [
        (key, bucket.head(key)["ContentType"], bucket.head(key).get("ContentEncoding")) for key, _, _ in _expected()
    ]


def test_every_file_gets_the_type_a_browser_expects(typed_site: Site, bucket: Bucket) -> None:
    build = typed_site.build()

    assert build.returncode == 0, build.output
    assert set(md5_tree(typed_site.output)) >= {key for key, _, _ in _expected()}
    assert _served(bucket) == _expected()


@pytest.fixture
def empty_mimetypes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No machine MIME files, and not even Python's built-in table answers."""
    mimetypes.init([])

    def knows_nothing(*args: object, **kwargs: object) -> tuple[None, None]:
        return None, None

    monkeypatch.setattr(mimetypes, "guess_type", knows_nothing)
    monkeypatch.setattr(mimetypes.MimeTypes, "guess_type", knows_nothing)
    yield
    mimetypes.init()


def test_answers_do_not_come_from_the_machine(
    typed_site: Site, bucket: Bucket, empty_mimetypes: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed_site.build_only()
    assert mimetypes.guess_type("x.css") == (None, None)
    monkeypatch.chdir(typed_site.root)

    assert cli_main(["-s", "pelicanconf.py", "-q"]) == 0  # in this process, with mimetypes emptied

    assert _served(bucket) == _expected()


def test_detect_knows_gzip_archives_from_gzip_encoded_files() -> None:
    archive = _tar_gz()
    assert content_types.detect("x.tgz", archive[:512]) == ("application/gzip", None)
    assert content_types.detect("index.html", gzip.compress(b"<html>")[:512]) == ("text/html" + U, "gzip")
    assert content_types.detect("drawing.svgz", gzip.compress(b"<svg/>")) == ("image/svg+xml" + U, "gzip")


@pytest.mark.parametrize(
    ("relpath", "overrides", "atom", "rss", "expected"),
    [
        ("feeds/a.xml", (("feeds/*", "text/x-mine"),), ("feeds/*",), (), "text/x-mine"),  # an override first
        ("feeds/a.xml", (("*.txt", "text/x-mine"),), ("*.xml",), ("feeds/*",), "application/atom+xml" + U),
        ("feeds/a.xml", (), ("*.json",), ("feeds/*", "*.xml"), "application/rss+xml" + U),
        ("feeds/a.xml", (), ("feeds/*",), ("feeds/*",), "application/atom+xml" + U),  # one pattern, both feeds
        ("robots.txt", (("*.txt", "text/x-mine"), ("robots.txt", "x/y")), ("robots.txt",), (), "text/x-mine"),
        ("robots.txt", (), ("robots.txt",), (), "text/plain" + U),  # a well-known name beats a feed
        ("feeds/a.xml", (), (), (), "application/xml" + U),
    ],
)
def test_overrides_then_well_known_names_then_feeds_decide_in_that_order(
    relpath: str, overrides: tuple[tuple[str, str], ...], atom: tuple[str, ...], rss: tuple[str, ...], expected: str
) -> None:
    """The overrides' and the feeds' patterns are matched together, once per file: the first override that
    matches still wins, then a well-known name, then Atom before RSS."""
    assert content_types.detect(relpath, b"", overrides=overrides, atom_feeds=atom, rss_feeds=rss)[0] == expected


def test_a_header_rule_change_updates_objects_without_sending_bytes(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_HEADERS"] = [("*.html", {"Cache-Control": "max-age=60"})]
    assert site.build().returncode == 0
    html = {key for key in md5_tree(site.output) if key.endswith(".html")}
    site.settings["S3_PUBLISH_HEADERS"] = [
        ("*.html", {"Cache-Control": "no-cache", "x-amz-meta-owner": "docs"}),
        ("*", {"Cache-Control": "max-age=600"}),
    ]
    bucket.proxy.clear()

    dry = site.publish_cli("--dry-run")
    assert "cache-control: 'max-age=60' -> 'no-cache'" in dry.stdout
    assert bucket.proxy.writes() == []
    changed = site.build()

    assert changed.returncode == 0, changed.output
    assert bucket.proxy.put_bodies() == []
    copies = [r for r in bucket.proxy.writes() if r.copy_source]
    assert {r.key for r in copies} == set(md5_tree(site.output))
    assert sum(r.body_bytes for r in copies) == 0
    assert {item["reason"] for item in changed.report["uploaded"]} == {"headers"}
    for key in md5_tree(site.output):
        head = bucket.head(key)
        assert head["CacheControl"] == ("no-cache" if key in html else "max-age=600"), key
        assert head["ContentType"]  # the copy kept a type
    assert bucket.head("post-1.html")["Metadata"] == {"owner": "docs"}
    assert bucket.body("post-1.html") == (site.output / "post-1.html").read_bytes()
