"""Access control, ACLs, server-side encryption and what never leaves the machine."""

from __future__ import annotations

import getpass
import gzip
import os
from pathlib import Path

import pytest

from tests.conftest import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    KMS_KEY_ALIAS,
    READER_KEY_ID,
    READER_SECRET,
    Bucket,
    Site,
    md5_tree,
)

MANIFEST = ".s3-publish-manifest.json.gz"


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [("AKIANOSUCHKEY0000003", FAKE_SECRET, "InvalidAccessKeyId"), (FAKE_KEY_ID, "wrong", "SignatureDoesNotMatch")],
)
def test_wrong_keys_are_rejected_and_said_so(site: Site, bucket: Bucket, key_id: str, secret: str, code: str) -> None:
    site.build_only()

    result = site.publish_cli(env=dict(os.environ, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret))

    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert f"the AWS credentials were rejected for bucket {bucket.name} ({code})" in line
    assert secret not in result.stdout + result.stderr
    assert bucket.all_keys() == set()


def test_read_only_key_is_access_denied_naming_the_bucket(site: Site, bucket: Bucket) -> None:
    site.build_only()

    result = site.publish_cli(
        env=dict(os.environ, AWS_ACCESS_KEY_ID=READER_KEY_ID, AWS_SECRET_ACCESS_KEY=READER_SECRET)
    )

    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert f"access denied: PutObject on s3://{bucket.name}/" in line
    assert "give these credentials s3:PutObject" in line
    assert bucket.all_keys() == set()


def test_no_acl_is_sent_unless_asked(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    assert not [r for r in bucket.proxy.writes() if "x-amz-acl" in r.headers]

    site.settings["S3_PUBLISH_ACL"] = "public-read"
    bucket.proxy.clear()
    assert site.build().returncode == 0

    writes = [r for r in bucket.proxy.writes() if r.key != MANIFEST and not r.is_probe]
    assert {r.key for r in writes} == set(md5_tree(site.output))  # the ACL changed: each object updated
    assert all(r.headers.get("x-amz-acl") == "public-read" for r in writes)
    assert not [r for r in bucket.proxy.writes() if r.key == MANIFEST and "x-amz-acl" in r.headers]


def test_bucket_without_acls_is_explained(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_ACL"] = "public-read"
    refused = (400, "AccessControlListNotSupported")
    bucket.proxy.fault = lambda method, key: refused if method == "PUT" and key != MANIFEST else None

    build = site.build(env=dict(os.environ, COLUMNS="400"))

    assert build.returncode == 1
    lines = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1 and "Traceback" not in build.output, build.output
    assert f"{bucket.name} has ACLs disabled" in lines[0]
    assert "bucket policy" in lines[0]
    assert bucket.site_keys() == set()


def test_sse_s3_encrypts_every_object_and_turning_it_on_sends_no_bytes(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    site.settings["S3_PUBLISH_SSE"] = "AES256"
    bucket.proxy.clear()

    turned_on = site.build()

    assert turned_on.returncode == 0, turned_on.output
    assert bucket.proxy.put_bodies() == []
    copies = [r for r in bucket.proxy.writes() if r.copy_source]
    assert {r.key for r in copies} == set(md5_tree(site.output))
    assert all(r.headers.get("x-amz-server-side-encryption") == "AES256" for r in copies)
    for key in md5_tree(site.output):
        assert bucket.head(key)["ServerSideEncryption"] == "AES256"

    site.article("post-9", "A new post, encrypted from the start.")
    bucket.proxy.clear()
    assert site.build().returncode == 0
    sent = bucket.proxy.put_bodies()
    assert "post-9.html" in {r.key for r in sent}
    assert all(r.headers.get("x-amz-server-side-encryption") == "AES256" for r in sent)


def test_sse_kms_change_detection_needs_no_md5_etags(site: Site, bucket: Bucket) -> None:
    """Under SSE-KMS, AWS's ETags are not the MD5 of the bytes; the proxy answers such ETags."""
    site.settings |= {"S3_PUBLISH_SSE": "aws:kms", "S3_PUBLISH_SSE_KMS_KEY_ID": KMS_KEY_ALIAS}
    bucket.proxy.opaque_etags = lambda key: key != MANIFEST  # its ETag goes back signed, in If-Match
    assert site.build().returncode == 0
    local = md5_tree(site.output)
    for key, digest in local.items():
        head = bucket.head(key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["ETag"].strip('"') == digest  # SeaweedFS's own ETags are MD5s; the proxy hides them
    bucket.proxy.clear()

    unchanged = site.build()

    assert unchanged.returncode == 0, unchanged.output
    assert bucket.proxy.writes() == []
    listings = [r for r in bucket.proxy.requests if r.method == "GET" and r.key == ""]
    assert listings  # the listing was read through the proxy, with its opaque ETags

    site.article("post-1", "Post 1, edited under KMS.")
    bucket.proxy.clear()
    edited = site.build()
    assert edited.returncode == 0, edited.output
    changed = {key for key, digest in md5_tree(site.output).items() if local.get(key) != digest}
    assert "post-1.html" in changed
    assert {r.key for r in bucket.proxy.put_bodies()} == changed


def test_default_excludes_and_a_manifest_without_local_paths(site: Site, bucket: Bucket) -> None:
    site.build_only()
    (site.output / ".git").mkdir()
    (site.output / ".git" / "config").write_text("[core]\n")
    (site.output / ".env").write_text("TOKEN=secret-token\n")
    (site.output / "index.html.swp").write_bytes(b"swap")
    (site.output / "notes.txt~").write_text("backup")
    (site.output / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")

    result = site.publish_cli()

    assert result.returncode == 0, result.stderr
    keys = bucket.site_keys()
    assert "index.html" in keys
    assert not {".env", "index.html.swp", "notes.txt~", ".DS_Store"} & keys
    assert not [k for k in keys if k.startswith(".git/")]
    manifest = gzip.decompress(bucket.body(MANIFEST)).decode()
    for private in (str(site.root), str(site.output), str(Path.home()), f"/{getpass.getuser()}/"):
        assert private not in manifest
