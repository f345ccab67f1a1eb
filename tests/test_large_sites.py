"""Thousands of files, a multipart file, awkward names, and buckets filled by other tools."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from tests.conftest import Bucket, Site, md5_tree, uploaded_keys

MIB = 1024 * 1024
BIG = "static/downloads/big file.bin"


@pytest.fixture
def large_site(tmp_path: Path, bucket: Bucket) -> Site:
    """~2,300 files: 150 articles with their tag, category and feed pages, 2,000 small
    images, a 12 MiB download, and names with spaces and non-ASCII characters."""
    made = Site(tmp_path / "large", bucket, {"DEFAULT_PAGINATION": 10, "TAG_FEED_ATOM": "feeds/tag-{slug}.xml"})
    for number in range(150):
        made.article(f"article-{number}", f"Body {number}.", category=f"cat{number % 7}", tags=f"t{number % 23}")
    for number in range(2000):
        made.static(f"img/{number // 100}/pic {number}.png", b"\x89PNG\r\n\x1a\n" + number.to_bytes(4, "big"))
    made.static("downloads/big file.bin", os.urandom(12 * MIB))
    made.static("docs/café 日本.txt", b"Unicode name\n")
    return made


def test_large_site_publishes_paginates_and_then_sends_nothing(large_site: Site, bucket: Bucket) -> None:
    first = large_site.build()

    assert first.returncode == 0, first.output
    local = md5_tree(large_site.output)
    assert len(local) > 2000
    assert bucket.site_keys() == set(local)  # more than one listing page
    assert bucket.body("static/docs/café 日本.txt") == b"Unicode name\n"
    big = bucket.head(BIG)
    assert big["ETag"].strip('"').endswith("-2")  # went up multipart, 8 MiB parts
    assert hashlib.md5(bucket.body(BIG)).hexdigest() == local[BIG]
    bucket.proxy.clear()

    again = large_site.build()

    assert again.returncode == 0, again.output
    assert uploaded_keys(again) == set()
    assert bucket.proxy.writes() == []
    assert again.report["unchanged"] == len(local)


def _upload_like_another_tool(bucket: Bucket, output: Path, part_size: int) -> None:
    """What `aws s3 sync` (8 MiB parts) or hugo deploy (5 MiB) leave behind."""
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        key = path.relative_to(output).as_posix()
        bucket.client.upload_file(str(path), bucket.name, key, Config=config)


@pytest.mark.parametrize("part_mib", [8, 5, 15])
def test_bucket_filled_by_another_tool_is_adopted_not_resent(site: Site, bucket: Bucket, part_mib: int) -> None:
    site.static("downloads/big.bin", os.urandom(20 * MIB))
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = None  # build only
    site.settings["S3_PUBLISH_ENABLED"] = False
    assert site.build().returncode == 0
    _upload_like_another_tool(bucket, site.output, part_mib * MIB)
    assert bucket.head("static/downloads/big.bin")["ETag"].strip('"').endswith("-" + str(-(-20 // part_mib)))
    site.settings |= {"S3_PUBLISH_ENDPOINT_URL": bucket.endpoint_url, "S3_PUBLISH_ENABLED": True}
    bucket.proxy.clear()

    adopted = site.build()

    assert adopted.returncode == 0, adopted.output
    assert bucket.proxy.put_bodies() == []  # no file's bytes were sent again
    assert {item["reason"] for item in adopted.report["uploaded"]} <= {"headers"}
    assert bucket.head("index.html")["ContentType"] == "text/html; charset=utf-8"
    bucket.proxy.clear()
    assert uploaded_keys(site.build()) == set()
    assert bucket.proxy.writes() == []
