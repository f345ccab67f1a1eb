"""The publish pipeline end to end: real Pelican builds into a real S3 server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

from devtools.proxy import PROBE_KEYS
from tests.conftest import Bucket, Site, md5_tree, stored_manifest, uploaded_keys

MANIFEST = ".s3-publish-manifest.json.gz"


def test_first_publish_puts_the_whole_site_with_its_bytes(site: Site, bucket: Bucket) -> None:
    build = site.build()

    assert build.returncode == 0, build.output
    local = md5_tree(site.output)
    assert bucket.site_keys() == set(local)
    for key, digest in local.items():
        assert hashlib.md5(bucket.body(key)).hexdigest() == digest, key
    assert "s3-publish: published to" in build.output
    assert f"{len(local)} new" in build.output
    assert {r.key for r in bucket.proxy.put_bodies()} == set(local)


def test_the_first_file_into_an_empty_bucket_goes_alone_and_is_the_smallest(site: Site, bucket: Bucket) -> None:
    """A store may make room for a new bucket on its first write and make concurrent writers wait meanwhile."""
    site.static("files/large.bin", b"L" * 300_000)
    started: list[tuple[str, int]] = []  # each file PUT as it arrives, with how many had been answered then

    def note_arrival(method: str, key: str) -> None:
        if method == "PUT" and key != MANIFEST and not key.endswith(PROBE_KEYS):
            started.append((key, len(bucket.proxy.put_bodies())))

    bucket.proxy.fault = note_arrival  # type: ignore[assignment]
    build = site.build()

    assert build.returncode == 0, build.output
    sizes = {p.relative_to(site.output).as_posix(): p.stat().st_size for p in site.output.rglob("*") if p.is_file()}
    (first, answered_before_first), *rest = started
    assert answered_before_first == 0 and sizes[first] == min(sizes.values())
    assert len(rest) == len(sizes) - 1 and all(answered >= 1 for _, answered in rest)


def test_rebuild_with_deleted_output_sends_nothing(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    bucket.proxy.clear()

    again = site.build()  # DELETE_OUTPUT_DIRECTORY: every file rewritten, new mtimes

    assert again.returncode == 0, again.output
    assert uploaded_keys(again) == set()
    assert bucket.proxy.writes() == []
    assert f"{len(md5_tree(site.output))} unchanged" in again.output


def test_same_size_new_bytes_are_sent_though_the_manifest_knows_the_key(site: Site, bucket: Bucket) -> None:
    site.static("files/data.bin", b"A" * 5000)
    assert site.build().returncode == 0
    bucket.proxy.clear()

    site.static("files/data.bin", b"A" * 4999 + b"B")
    again = site.build()

    assert again.returncode == 0, again.output
    assert uploaded_keys(again) == {"static/files/data.bin"}
    assert bucket.body("static/files/data.bin") == b"A" * 4999 + b"B"


def test_a_version_1_manifest_is_upgraded_without_sending_the_site(site: Site, bucket: Bucket) -> None:
    """Version 1 kept no SHA-256: each file's MD5 is computed once, and the manifest rewritten with them."""
    assert site.build().returncode == 0
    head, rows = stored_manifest(bucket.body(MANIFEST))
    version_1 = {**head, "version": 1, "objects": {relpath: row[:4] for relpath, row in rows.items()}}
    bucket.put(MANIFEST, gzip.compress(json.dumps(version_1).encode()))
    bucket.proxy.clear()

    upgraded = site.build()

    assert upgraded.returncode == 0, upgraded.output
    assert [r.key for r in bucket.proxy.writes()] == [MANIFEST]
    rows = stored_manifest(bucket.body(MANIFEST))[1]
    local = {p.relative_to(site.output).as_posix(): p.read_bytes() for p in site.output.rglob("*") if p.is_file()}
    assert {relpath: row[4] for relpath, row in rows.items()} == {
        relpath: hashlib.sha256(data).hexdigest() for relpath, data in local.items()
    }
    bucket.proxy.clear()

    again = site.build()

    assert again.returncode == 0, again.output
    assert bucket.proxy.writes() == []


def test_editing_one_article_sends_exactly_the_changed_files(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    before = md5_tree(site.output)
    bucket.proxy.clear()

    site.article("post-2", "Post number 2, now with a correction.", category="notes")
    edited = site.build()

    after = md5_tree(site.output)
    changed = {key for key in after if before.get(key) != after[key]}
    assert "post-2.html" in changed
    assert uploaded_keys(edited) == changed
    assert {r.key for r in bucket.proxy.put_bodies()} == changed
    assert all(item["reason"] == "changed" for item in edited.report["uploaded"] if item["key"] in before)
    assert hashlib.md5(bucket.body("post-2.html")).hexdigest() == after["post-2.html"]


def test_removed_article_is_deleted_and_foreign_objects_stay(site: Site, bucket: Bucket) -> None:
    bucket.put("not-ours/keep.txt", b"someone else's file")
    assert site.build().returncode == 0
    assert "post-3.html" in bucket.site_keys()

    (site.content / "post-3.rst").unlink()
    removed = site.build()

    assert removed.returncode == 0, removed.output
    assert "post-3.html" in removed.report["deleted"]
    assert "post-3.html" not in bucket.site_keys()
    assert bucket.body("not-ours/keep.txt") == b"someone else's file"
    assert bucket.site_keys() == set(md5_tree(site.output)) | {"not-ours/keep.txt"}


def test_delete_all_also_removes_unmanaged_keys_under_the_prefix(site: Site, bucket: Bucket) -> None:
    site.settings |= {"S3_PUBLISH_PREFIX": "blog", "S3_PUBLISH_DELETE": "all"}
    bucket.put("blog/leftover.html", b"old")
    bucket.put("elsewhere/keep.html", b"other prefix")

    build = site.build()

    assert build.returncode == 0, build.output
    assert "blog/leftover.html" in build.report["deleted"]
    assert bucket.all_keys("blog/") == {f"blog/{k}" for k in md5_tree(site.output)} | {
        "blog/.s3-publish-manifest.json.gz"
    }
    assert bucket.body("elsewhere/keep.html") == b"other prefix"


def test_delete_false_keeps_stale_objects(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_DELETE"] = False
    assert site.build().returncode == 0
    (site.content / "post-1.rst").unlink()

    build = site.build()

    assert build.returncode == 0, build.output
    assert build.report["deleted"] == []
    assert "post-1.html" in bucket.site_keys()


def test_too_many_deletes_changes_nothing(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    before = {key: bucket.body(key) for key in bucket.all_keys()}
    site.settings["S3_PUBLISH_MAX_DELETES"] = 1
    for number in (1, 2):
        (site.content / f"post-{number}.rst").unlink()
    site.article("post-9", "A new post that must not go up either.")
    bucket.proxy.clear()

    refused = site.build()

    assert refused.returncode == 3, refused.output
    assert "S3_PUBLISH_MAX_DELETES" in refused.output
    assert "Traceback" not in refused.output
    assert bucket.proxy.writes() == []
    assert {key: bucket.body(key) for key in bucket.all_keys()} == before


def test_objects_changed_out_of_band_or_missing_are_sent_again(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    bucket.put("post-1.html", b"vandalised")
    bucket.client.delete_object(Bucket=bucket.name, Key="post-2.html")
    bucket.proxy.clear()

    repaired = site.build()

    reasons = {item["key"]: item["reason"] for item in repaired.report["uploaded"]}
    assert reasons == {"post-1.html": "changed", "post-2.html": "missing"}
    assert bucket.body("post-1.html") == (site.output / "post-1.html").read_bytes()
    assert bucket.body("post-2.html") == (site.output / "post-2.html").read_bytes()


def test_assets_go_up_before_the_pages_that_link_to_them(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0

    order = [r.key for r in bucket.proxy.put_bodies()]
    last_asset = max(i for i, key in enumerate(order) if not key.endswith((".html", ".xml")))
    first_page = min(i for i, key in enumerate(order) if key.endswith((".html", ".xml")))
    assert last_asset < first_page
    assert bucket.proxy.writes()[-1].key == ".s3-publish-manifest.json.gz"


def test_dry_run_through_pelican_writes_nothing(site: Site, bucket: Bucket) -> None:
    build = site.build("-e", "S3_PUBLISH_DRY_RUN=true", env=dict(os.environ, COLUMNS="300"))  # lines unwrapped

    assert build.returncode == 0, build.output
    assert bucket.all_keys() == set()
    assert bucket.proxy.writes() == []  # not even the probe that asks a new bucket's store what it does
    assert build.report["dry_run"] is True
    assert "upload  post-1.html  (new" in build.output
    assert "nothing was written" in build.output


def test_publishing_is_off_without_a_bucket_or_when_disabled(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_ENABLED"] = False
    disabled = site.build()
    del site.settings["S3_PUBLISH_BUCKET"]
    no_bucket = site.build()

    assert disabled.returncode == no_bucket.returncode == 0
    assert "s3-publish" not in disabled.output + no_bucket.output
    assert bucket.all_keys() == set()


def test_gzip_objects_decompress_to_the_built_files_and_a_rebuild_sends_nothing(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_GZIP"] = True
    for number in range(4, 8):
        site.article(f"post-{number}", "A longer paragraph of text. " * 30)

    assert site.build().returncode == 0

    page = bucket.client.get_object(Bucket=bucket.name, Key="post-4.html")
    assert page["ContentEncoding"] == "gzip" and page["ContentType"].startswith("text/html")
    assert gzip.decompress(page["Body"].read()) == (site.output / "post-4.html").read_bytes()
    logo = bucket.client.get_object(Bucket=bucket.name, Key="static/img/logo.png")
    assert "ContentEncoding" not in logo
    bucket.proxy.clear()
    rebuilt = site.build()  # Pelican writes every file again
    assert rebuilt.returncode == 0, rebuilt.output
    assert bucket.proxy.writes() == []
