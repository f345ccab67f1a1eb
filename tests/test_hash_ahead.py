"""Pages hashed while the build runs: the publish takes a file as hashed only while it is still the file that
was hashed, so a page changed after it was written is published as it is (issue 21)."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from pelican_s3_publish import helper, local
from tests.conftest import Bucket, Site, md5_tree


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_hashed_ahead_is_taken_as_hashed_until_it_changes(tmp_path: Path) -> None:
    """The helper hashes a page ahead, and vouches for it at the end only while it is unchanged."""
    output = tmp_path / "output"
    page = output / "page.html"
    page.parent.mkdir()
    page.write_bytes(b"first text")
    hashing = helper.Hashing()
    hashing.hash_ahead([str(page)])
    hashed, unchanged = hashing.hashed_ahead()
    assert hashed == 1
    ((real, ahead),) = unchanged.items()
    assert (real, ahead.sha256) == (str(page.resolve()), _sha256(b"first text"))

    marked = ahead._replace(sha256="0" * 64)  # what the scan reports shows whether it read the file again
    assert [f.sha256 for f in local.scan(output, (), ahead=lambda: {real: marked})] == ["0" * 64]

    again = helper.Hashing()
    again.hash_ahead([str(page)])
    page.write_bytes(b"other text")  # the same size: only the file's ctime and mtime tell
    assert again.hashed_ahead() == (1, {})
    assert [f.sha256 for f in local.scan(output, (), ahead=dict)] == [_sha256(b"other text")]


def test_a_file_that_changes_while_it_is_hashed_ahead_is_left_to_the_scan(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_bytes(b"first text")
    real_stat = os.stat

    def changing(path: str, *args: object, **kwargs: object) -> os.stat_result:
        seen = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        page.write_bytes(b"other text")  # between the stat before the read and the one after
        return seen

    local.os.stat = changing  # type: ignore[assignment]
    try:
        assert local.hash_ahead(str(page), bytearray(local.READ_BLOCK)) is None
    finally:
        local.os.stat = real_stat


REWRITE_ARTICLES = """
import time
from pathlib import Path
from pelican import signals

def rewrite(pelican_obj):
    if not pelican_obj.settings.get("REWRITE_ARTICLES"):
        return
    time.sleep(1.0)  # long after the helper hashed the pages, which it does 50 ms after each is written
    for page in Path(pelican_obj.output_path).glob("post-*.html"):
        page.write_bytes(page.read_bytes().replace(b"First words.", b"Later words."))  # the same size

def register():
    signals.finalized.connect(rewrite)
"""


def test_pages_changed_after_they_were_written_are_published_as_they_end_up(site: Site, bucket: Bucket) -> None:
    """Another plugin rewrites every article when the build is finalized, before this one publishes. The
    articles were hashed while the build ran (the debug log says how many) with the bytes the bucket
    already holds; they are sent as rewritten."""
    (site.root / "rewrite_articles.py").write_text(REWRITE_ARTICLES)
    site.settings |= {"PLUGIN_PATHS": [str(site.root)], "PLUGINS": ["rewrite_articles", "pelican_s3_publish"]}
    for number in range(80):  # articles are written first: the batches sent to be hashed ahead are theirs
        site.article(f"post-{number}", "First words.")
    first = site.build()
    assert first.returncode == 0, first.output
    site.settings["REWRITE_ARTICLES"] = True

    build = site.build("--debug", env=dict(os.environ, COLUMNS="400"))  # Pelican's console: one line a message

    assert build.returncode == 0, build.output
    said = build.output.split("files hashed while the site was built: ")[1].split()
    hashed, unchanged = int(said[0].rstrip(",")), int(said[3])
    assert hashed >= 64
    assert unchanged < hashed  # the rewritten articles among them are read again
    articles = {key for key in md5_tree(site.output) if key.startswith("post-")}
    assert len(articles) == 80
    for key in articles:
        body = bucket.body(key)
        assert b"Later words." in body and b"First words." not in body, key
    assert build.report is not None
    assert {item["key"] for item in build.report["uploaded"]} == articles
    assert bucket.site_keys() == set(md5_tree(site.output))
    assert {key: hashlib.md5(bucket.body(key)).hexdigest() for key in articles} == {
        key: md5 for key, md5 in md5_tree(site.output).items() if key in articles
    }


def test_files_hashed_beside_the_scan_are_published_whole_and_typed(site: Site, bucket: Bucket) -> None:
    """At the end of a build the helper process is idle: the scan hands it half of what it still has to
    hash (the debug log says how many). What it hashed is published with its bytes and its Content-Type,
    a large file and files typed by their first bytes among them, and a build after changes nothing."""
    rng = random.Random(21)
    for number in range(80):  # a build long enough for the helper to have read the bucket by its end
        site.article(f"post-{number}", "Some words.")
    for number in range(40):
        site.static(f"pics/p{number:02}.png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(number * 1000))
        site.static(f"data/d{number:02}", b"<!DOCTYPE html><html><p>%d</p></html>" % number)  # typed by sniffing
    site.static("files/big.bin", rng.randbytes(3_000_000))

    first = site.build("--debug", env=dict(os.environ, COLUMNS="400"))

    assert first.returncode == 0, first.output
    handed = int(first.output.split("files handed to the helper process to hash: ")[1].split()[0])
    assert handed >= 16
    built = md5_tree(site.output)
    assert bucket.site_keys() == set(built)
    assert {key: hashlib.md5(bucket.body(key)).hexdigest() for key in built} == built
    for number in range(40):
        assert bucket.head(f"static/pics/p{number:02}.png")["ContentType"] == "image/png"
        assert bucket.head(f"static/data/d{number:02}")["ContentType"].startswith("text/html")
    assert bucket.head("static/files/big.bin")["ContentLength"] == 3_000_000

    again = site.build()

    assert again.returncode == 0, again.output
    assert again.report is not None and again.report["uploaded"] == []
