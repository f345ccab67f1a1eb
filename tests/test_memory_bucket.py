"""Publish logic against the in-memory bucket: plan, transfer, record, without a server.

SeaweedFS stays for every wire, fault and end-to-end test; these run in milliseconds.
"""

from __future__ import annotations

import gc
import gzip
import re
from pathlib import Path

import pytest

from pelican_s3_publish import publish as publishing
from pelican_s3_publish.bucket import MemoryBucket
from pelican_s3_publish.early_read import ThreadRead
from pelican_s3_publish.errors import PublishError
from pelican_s3_publish.manifest import MANIFEST_NAME
from pelican_s3_publish.publish import publish
from pelican_s3_publish.remote import ConcurrentPublishError
from pelican_s3_publish.settings import Settings
from tests.conftest import stored_manifest


def _site(root: Path) -> Path:
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<link href=css/site.css>")
    (root / "post.html").write_text("<p>post</p>")
    (root / "css" / "site.css").write_text("body {}")
    return root


def _publish(bucket: MemoryBucket, root: Path, **settings: object) -> list[str]:
    chosen = Settings(bucket=bucket.name, **settings)  # type: ignore[arg-type]
    report = publish(chosen, root, ThreadRead(lambda: bucket, chosen.prefix, chosen.workers))
    return [item.key for item in report.uploaded]


def _manifest(bucket: MemoryBucket, prefix: str = "") -> dict[str, object]:
    return dict(stored_manifest(bucket.objects[prefix + MANIFEST_NAME].body)[1])


def test_a_first_publish_claims_its_keys_then_sends_assets_before_pages_and_records_them_last(
    tmp_path: Path,
) -> None:
    bucket = MemoryBucket()
    manifest = "blog/" + MANIFEST_NAME
    claimed: list[object] = []
    put = bucket.put

    def noting_the_manifest(key: str, body: bytes | Path, *args: object, **kwargs: object) -> str:
        if key == manifest:
            claimed.append(stored_manifest(body)[0]["in_flight"] if isinstance(body, bytes) else None)
        return put(key, body, *args, **kwargs)  # type: ignore[arg-type]

    bucket.put = noting_the_manifest  # type: ignore[method-assign]

    sent = _publish(bucket, _site(tmp_path), prefix="blog/")

    assert set(sent) == {"blog/index.html", "blog/post.html", "blog/css/site.css"}
    order = [key for _, key in bucket.writes]
    assert order[:2] == [manifest, "blog/css/site.css"] and order[-1] == manifest
    assert set(order[2:-1]) == {"blog/index.html", "blog/post.html"}
    assert claimed == [["css/site.css", "index.html", "post.html"], []]
    assert set(_manifest(bucket, "blog/")) == {"index.html", "post.html", "css/site.css"}


def test_a_redirect_goes_up_after_the_page_it_points_at(tmp_path: Path) -> None:
    """Found by the chaos run: a publish stopped midway left a redirect to a renamed page not yet sent."""
    bucket, root = MemoryBucket(), _site(tmp_path)
    _publish(bucket, root)
    (root / "post.html").rename(root / "renamed.html")
    bucket.writes.clear()

    _publish(bucket, root, redirects=(("old.html", "/renamed.html"),))

    order = [key for operation, key in bucket.writes if operation == "put"]
    assert order.index("renamed.html") < order.index("old.html")


def test_a_second_publish_writes_nothing(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    _publish(bucket, root)
    bucket.writes.clear()

    assert _publish(bucket, root) == []
    assert bucket.writes == []


def test_a_publish_reads_and_plans_with_no_garbage_collection_and_gives_the_collector_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading and planning make objects for every file and record, none in a cycle: a collection meanwhile
    only walks them again (bench/NOTES.md, seventeenth pass)."""
    bucket, root = MemoryBucket(), _site(tmp_path)
    for number in range(2000):
        (root / f"page-{number}.html").write_text(f"<p>{number}</p>")
    _publish(bucket, root)
    collections: list[int] = []
    while_planning: list[int] = []
    prepare = publishing.prepare

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    def counting_prepare(*args: object, **kwargs: object) -> object:
        before = len(collections)
        prepared = prepare(*args, **kwargs)  # type: ignore[arg-type]
        while_planning.append(len(collections) - before)
        return prepared

    monkeypatch.setattr(publishing, "prepare", counting_prepare)
    settings = Settings(bucket=bucket.name)
    # Read to the end first: the read's thread starts before the collector is held off (by design), and a
    # collection that thread began before then was once counted as the plan's, on a fresh clone.
    read = ThreadRead(lambda: bucket, settings.prefix, settings.workers)
    read.result()
    gc.callbacks.append(counted)
    try:
        assert publish(settings, root, read).uploaded == []
    finally:
        gc.callbacks.remove(counted)
    assert while_planning == [0]
    assert gc.isenabled()


def test_the_collector_is_left_as_the_program_had_it_after_a_failed_publish_too(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishError, match="holds no files to publish"):
        _publish(MemoryBucket(), tmp_path / "empty")
    assert gc.isenabled()

    gc.disable()  # a program that runs with the collector off
    try:
        _publish(MemoryBucket(), _site(tmp_path / "site"))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_header_rule_change_copies_without_sending_bytes(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    _publish(bucket, root)
    bucket.writes.clear()

    _publish(bucket, root, headers=(("*.css", {"cache-control": "max-age=60"}),))

    assert ("copy", "css/site.css") in bucket.writes
    assert [w for w in bucket.writes if w[0] == "put"] == [("put", MANIFEST_NAME)] * 2  # claimed, then recorded
    assert dict(bucket.objects["css/site.css"].headers)["cache-control"] == "max-age=60"


def test_a_refused_delete_keeps_its_record_and_fails(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(refuse_deletes={"post.html"}), _site(tmp_path)
    _publish(bucket, root)
    (root / "post.html").unlink()

    with pytest.raises(PublishError, match=re.escape("could not delete s3://memory/post.html: AccessDenied")):
        _publish(bucket, root)

    assert "post.html" in _manifest(bucket)


def test_another_publisher_s_manifest_stops_the_deletes(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    _publish(bucket, root)
    (root / "post.html").unlink()
    theirs = b"someone else's manifest"

    class Racing(ThreadRead):
        def result(self):  # type: ignore[no-untyped-def]
            answer = super().result()
            bucket.objects[MANIFEST_NAME].body = theirs
            bucket.objects[MANIFEST_NAME].etag = "theirs"
            return answer

    with pytest.raises(ConcurrentPublishError):
        publish(Settings(bucket="memory"), root, Racing(lambda: bucket, "", 4))

    assert "post.html" in bucket.objects
    assert bucket.objects[MANIFEST_NAME].body == theirs


def test_progress_counts_every_file_and_byte(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    seen: list[tuple[int, int, int, int]] = []

    publish(
        Settings(bucket="memory"),
        root,
        ThreadRead(lambda: bucket, "", 4),
        lambda tally: seen.append((tally.files, tally.total_files, tally.bytes, tally.total_bytes)),
    )

    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert seen[-1] == (3, 3, total, total)
    files_done = [files for files, *_ in seen]
    assert files_done == sorted(files_done) and set(files_done) == {0, 1, 2, 3}


def _textual_site(root: Path) -> Path:
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>" + "<p>A paragraph of the page.</p>" * 40 + "</body></html>")
    (root / "css" / "site.css").write_text("body { margin: 0; padding: 0; }\n" * 20)
    (root / "tiny.txt").write_text("short")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return root


def _stored(bucket: MemoryBucket, key: str) -> tuple[bytes, str | None]:
    """The bytes a client gets after decoding, and the Content-Encoding the object carries."""
    stored = bucket.objects[key]
    encoding = dict(stored.headers).get("content-encoding")
    return (gzip.decompress(stored.body) if encoding == "gzip" else stored.body), encoding


def test_gzip_sends_textual_files_compressed_and_a_rebuild_sends_nothing(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _textual_site(tmp_path)

    _publish(bucket, root, gzip=True)

    assert _stored(bucket, "index.html") == ((root / "index.html").read_bytes(), "gzip")
    assert _stored(bucket, "css/site.css") == ((root / "css" / "site.css").read_bytes(), "gzip")
    assert _stored(bucket, "tiny.txt") == (b"short", None)  # too small to gain
    assert _stored(bucket, "logo.png") == ((root / "logo.png").read_bytes(), None)
    assert bucket.objects["index.html"].body == gzip.compress((root / "index.html").read_bytes(), 9, mtime=0)
    bucket.writes.clear()
    for path in root.rglob("*.*"):  # a full rebuild: the same bytes, new files
        path.write_bytes(path.read_bytes())
    assert _publish(bucket, root, gzip=True) == []
    assert bucket.writes == []


def test_turning_gzip_off_and_on_resends_exactly_the_files_it_concerns(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _textual_site(tmp_path)
    _publish(bucket, root, gzip=True)

    off = _publish(bucket, root, gzip=False)
    assert sorted(off) == ["css/site.css", "index.html"]
    assert _stored(bucket, "index.html")[1] is None

    on = _publish(bucket, root, gzip=("*.css",))
    assert on == ["css/site.css"]
    assert _stored(bucket, "css/site.css") == ((root / "css" / "site.css").read_bytes(), "gzip")


def test_a_header_rule_change_on_a_gzipped_file_keeps_its_encoding(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _textual_site(tmp_path)
    _publish(bucket, root, gzip=True)
    bucket.writes.clear()

    _publish(bucket, root, gzip=True, headers=(("*.css", {"cache-control": "max-age=60"}),))

    assert ("copy", "css/site.css") in bucket.writes
    assert dict(bucket.objects["css/site.css"].headers)["cache-control"] == "max-age=60"
    assert _stored(bucket, "css/site.css") == ((root / "css" / "site.css").read_bytes(), "gzip")


def test_redirects_are_published_recorded_updated_and_deleted_like_files(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    moves = {"old/post.html": "/post.html", "feed.xml": "https://example.org/feeds/all.atom.xml"}

    sent = _publish(bucket, root, redirects=tuple(moves.items()))

    assert {"old/post.html", "feed.xml"} <= set(sent)
    stored = bucket.objects["old/post.html"]
    assert dict(stored.headers)["x-amz-website-redirect-location"] == "/post.html"
    assert dict(stored.headers)["content-type"] == "text/html; charset=utf-8"
    assert b'http-equiv="refresh" content="0; url=/post.html"' in stored.body
    assert b'<link rel="canonical" href="/post.html">' in stored.body
    assert dict(bucket.objects["feed.xml"].headers)["content-type"] == "text/html; charset=utf-8"
    assert _publish(bucket, root, redirects=tuple(moves.items())) == []

    moves["old/post.html"] = "/index.html"
    assert _publish(bucket, root, redirects=tuple(moves.items())) == ["old/post.html"]
    del moves["feed.xml"]
    bucket.writes.clear()
    _publish(bucket, root, redirects=tuple(moves.items()))
    assert bucket.writes[1:-1] == [("delete", "feed.xml")]


def _publish_build(bucket: MemoryBucket, root: Path, sources: dict[str, str]) -> list[tuple[str, str]]:
    """A publish as a Pelican build makes it: with where each source was saved. (key, reason) pairs."""
    chosen = Settings(bucket=bucket.name)
    report = publish(chosen, root, ThreadRead(lambda: bucket, chosen.prefix, chosen.workers), sources=sources)
    return sorted((item.key, item.reason) for item in report.uploaded) + [(key, "deleted") for key in report.deleted]


def test_a_page_that_moves_leaves_a_redirect_behind_and_moving_back_removes_it(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    (root / "posts").mkdir()
    (root / "posts" / "first.html").write_text("<p>first</p>")
    _publish_build(bucket, root, {"first.rst": "posts/first.html", "post.rst": "post.html"})

    (root / "posts" / "first.html").rename(root / "posts" / "renamed.html")
    moved = _publish_build(bucket, root, {"first.rst": "posts/renamed.html", "post.rst": "post.html"})

    assert moved == [("posts/first.html", "redirect"), ("posts/renamed.html", "new")]
    headers = dict(bucket.objects["posts/first.html"].headers)
    assert headers["x-amz-website-redirect-location"] == "/posts/renamed.html"
    assert _publish_build(bucket, root, {"first.rst": "posts/renamed.html", "post.rst": "post.html"}) == []

    (root / "posts" / "renamed.html").rename(root / "posts" / "again.html")
    again = _publish_build(bucket, root, {"first.rst": "posts/again.html", "post.rst": "post.html"})
    assert again == [("posts/again.html", "new"), ("posts/first.html", "redirect"), ("posts/renamed.html", "redirect")]
    assert dict(bucket.objects["posts/first.html"].headers)["x-amz-website-redirect-location"] == "/posts/again.html"

    (root / "posts" / "again.html").rename(root / "posts" / "first.html")
    back = _publish_build(bucket, root, {"first.rst": "posts/first.html", "post.rst": "post.html"})
    assert ("posts/first.html", "changed") in back
    assert "x-amz-website-redirect-location" not in dict(bucket.objects["posts/first.html"].headers)


def test_the_command_line_keeps_the_redirects_on_record(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    (root / "a.html").write_text("a")
    _publish_build(bucket, root, {"a.rst": "a.html"})
    (root / "a.html").rename(root / "b.html")
    _publish_build(bucket, root, {"a.rst": "b.html"})

    assert _publish(bucket, root) == []
    assert "a.html" in bucket.objects


def test_strip_index_html_moves_folder_pages_to_folder_keys_and_back_without_orphans(tmp_path: Path) -> None:
    bucket, root = MemoryBucket(), _site(tmp_path)
    (root / "posts" / "a").mkdir(parents=True)
    (root / "posts" / "a" / "index.html").write_text("<p>a</p>")

    _publish(bucket, root, strip_index_html=True)

    keys = {key for key in bucket.objects if key != MANIFEST_NAME}
    assert keys == {"index.html", "post.html", "css/site.css", "posts/a/"}
    assert bucket.objects["posts/a/"].body == b"<p>a</p>"
    assert dict(bucket.objects["posts/a/"].headers)["content-type"].startswith("text/html")

    _publish(bucket, root, strip_index_html=False)
    assert {key for key in bucket.objects if key != MANIFEST_NAME} == {
        "index.html", "post.html", "css/site.css", "posts/a/index.html"
    }  # fmt: skip
