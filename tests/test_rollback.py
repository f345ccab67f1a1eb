"""--history and --rollback: the site put back as an earlier publish left it, by server-side copies of the
bucket's own old versions, or refused with one line when those versions are not there."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.conftest import Bucket, Site, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"


def _versioned(bucket: Bucket) -> None:
    bucket.client.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})


def _served(bucket: Bucket) -> dict[str, tuple[bytes, str, str | None]]:
    """Each site object as a visitor gets it: bytes, Content-Type, Cache-Control."""
    found = {}
    for key in bucket.site_keys():
        answer: dict[str, Any] = bucket.client.get_object(Bucket=bucket.name, Key=key)
        found[key] = (answer["Body"].read(), answer["ContentType"], answer.get("CacheControl"))
    return found


def _second_version(site: Site) -> None:
    site.article("post-1", "Post number 1, edited.")
    (site.content / "post-2.rst").unlink()
    site.article("post-9", "A new post.")
    site.settings["S3_PUBLISH_HEADERS"] = [("*.css", {"Cache-Control": "max-age=60"})]


def test_rollback_puts_the_site_back_from_old_versions_without_sending_bytes(site: Site, bucket: Bucket) -> None:
    _versioned(bucket)
    assert site.build().returncode == 0
    first = _served(bucket)
    _second_version(site)
    assert site.build().returncode == 0
    assert _served(bucket) != first

    history = site.publish_cli("--history")
    assert history.returncode == 0, history.stderr
    newest, oldest = history.stdout.splitlines()
    assert re.search(r"publish: [1-9]\d* new, [1-9]\d* changed, [1-9]\d* header-only, [1-9]\d* deleted", newest)
    assert re.search(r"publish: [1-9]\d* new, 0 changed, 0 header-only, 0 deleted", oldest)

    bucket.proxy.clear()
    planned = site.publish_cli("--rollback", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "restore post-1.html  (version " in planned.stdout and "delete  post-9.html" in planned.stdout
    assert bucket.proxy.writes() == []

    rolled = site.publish_cli("--rollback")

    assert rolled.returncode == 0, rolled.stderr
    assert _served(bucket) == first
    assert bucket.proxy.put_bodies() == []  # copies and deletes only: no bytes sent
    rows = stored_manifest(bucket.body(MANIFEST))[1]
    assert set(rows) == set(first)
    again = site.publish_cli("--history")
    assert again.stdout.splitlines()[0].split()[4:7] == ["rollback", "to", oldest.split()[0] + ":"]


def _third_version(site: Site) -> None:
    site.article("post-3", "Post number 3, edited.")
    site.settings["S3_PUBLISH_REDIRECTS"] = {"old/post-3.html": "/post-3.html"}


def _ids(site: Site) -> list[str]:
    """The publishes on record, newest first, as --history --json gives them."""
    listed = site.publish_cli("--history", "--json")
    assert listed.returncode == 0, listed.stderr
    return [entry["id"] for entry in json.loads(listed.stdout)]


def test_rollback_again_steps_further_back_and_an_id_undoes_a_rollback(site: Site, bucket: Bucket) -> None:
    _versioned(bucket)
    served = []
    for change in (lambda: None, lambda: _second_version(site), lambda: _third_version(site)):
        change()
        assert site.build().returncode == 0
        served.append(_served(bucket))
    third, second, first = _ids(site)

    planned = site.publish_cli("--rollback", "--dry-run")
    assert (
        f"dry run for a rollback of s3://{bucket.name}/ at {bucket.endpoint_url} to publish {second}" in planned.stderr
    )
    once = site.publish_cli("--rollback")
    assert once.returncode == 0 and _served(bucket) == served[1]
    assert f"rolled back s3://{bucket.name}/ at {bucket.endpoint_url} to publish {second}: " in once.stderr

    twice = site.publish_cli("--rollback")  # a step further back, not the undoing of the first

    assert twice.returncode == 0, twice.stderr
    assert f"to publish {first}: " in twice.stderr
    assert _served(bucket) == served[0]
    bucket.proxy.clear()
    thrice = site.publish_cli("--rollback")
    assert thrice.returncode == 2
    assert thrice.stderr.strip() == (
        f"s3-publish: there is no earlier publish to roll back to: the bucket serves publish {first}, "
        "the oldest on record; see --history"
    )
    assert bucket.proxy.writes() == []

    undone = site.publish_cli("--rollback", third)  # the way back to the newest: its id

    assert undone.returncode == 0, undone.stderr
    assert _served(bucket) == served[2]


def test_history_is_newest_first_in_the_summary_s_words_and_as_json(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_REDIRECTS"] = {"old/post-3.html": "/post-3.html"}
    assert site.build().returncode == 0
    site.settings["S3_PUBLISH_GZIP"] = True
    assert site.build().returncode == 0

    lines = site.publish_cli("--history").stdout.splitlines()
    listed = json.loads(site.publish_cli("--history", "--json").stdout)

    assert [line.split()[0] for line in lines] == [entry["id"] for entry in listed]
    assert listed[0]["time"] >= listed[1]["time"]
    newest, oldest = lines
    assert re.search(r"publish: 0 new, 0 changed, [1-9]\d* re-sent for the gzip setting, 0 header-only, 0 deleted; "
                     r"\d+\.\d KiB sent$", newest), newest  # fmt: skip
    assert re.search(
        r"publish: [1-9]\d* new, 0 changed, 0 header-only, 1 redirect, 0 deleted; \d+\.\d KiB sent$", oldest
    )
    assert listed[1]["counts"]["redirect"] == 1 and listed[1]["kind"] == "publish" and listed[1]["bytes_sent"] > 0
    assert listed[0]["counts"]["gzip"] > 0


def test_without_versioning_a_rollback_is_refused_and_changes_nothing(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    _second_version(site)
    assert site.build().returncode == 0
    before = _served(bucket)
    bucket.proxy.clear()

    refused = site.publish_cli("--rollback")

    assert refused.returncode == 3
    assert "keeps no old versions; turn versioning on" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert bucket.proxy.writes() == []
    assert _served(bucket) == before


def test_a_version_that_expired_is_named_and_nothing_changes(site: Site, bucket: Bucket) -> None:
    _versioned(bucket)
    assert site.build().returncode == 0
    _second_version(site)
    assert site.build().returncode == 0
    versions = bucket.client.list_object_versions(Bucket=bucket.name, Prefix="post-1.html")["Versions"]
    oldest = next(v for v in versions if not v["IsLatest"])
    bucket.client.delete_object(Bucket=bucket.name, Key="post-1.html", VersionId=oldest["VersionId"])
    before = _served(bucket)
    bucket.proxy.clear()

    refused = site.publish_cli("--rollback")

    assert refused.returncode == 3
    assert "1 objects no longer have the version it needs (such as post-1.html)" in refused.stderr
    assert bucket.proxy.writes() == []
    assert _served(bucket) == before


def test_an_unknown_id_is_one_line_naming_the_latest(site: Site, bucket: Bucket) -> None:
    _versioned(bucket)
    assert site.build().returncode == 0

    refused = site.publish_cli("--rollback", "nosuchid")

    assert refused.returncode == 2
    assert "no publish 'nosuchid' in the history (the latest, newest first: " in refused.stderr
