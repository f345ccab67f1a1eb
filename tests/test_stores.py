"""Every store people host sites on (issue 19): the same publish on each documented store profile and on three
independent real servers, and `--check` telling what each store does.

The profiles (devtools/stores.py, each behaviour with its source) answer as
B2, Garage, AWS before November 2024, an AWS bucket with ACLs disabled, a
store that needs Content-MD5 on DeleteObjects, R2 and GCS's XML API do, in
front of an open SeaweedFS. The real servers are SeaweedFS (Go), moto (Python)
and s3rver (Node).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import proxy as proxy_module
from devtools import s3rver, seaweed
from devtools.stores import GARAGE, OWNER_ENFORCED, PROFILES, R2, Refusal, Rule, StoreProfile
from pelican_s3_publish.early_read import ChildRead
from pelican_s3_publish.settings import from_pelican
from tests.conftest import Bucket, MotoServer, Site, md5_tree, new_bucket, s3_client, stored_manifest

REDIRECT = {"old/post-3.html": "/post-1.html"}
MANIFEST = ".s3-publish-manifest.json.gz"
NO_VERSIONS = {GARAGE.name, R2.name}  # stores that keep no versions, by their own documentation


@pytest.fixture(scope="session")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3rver.S3rver]:
    server = s3rver.start(tmp_path_factory.mktemp("s3rver"))
    yield server
    server.stop()


def _site(tmp_path: Path, bucket: Bucket) -> Site:
    made = Site(tmp_path / "site", bucket)
    for number in range(1, 4):
        made.article(f"post-{number}", f"Post number {number}. " + "Words to compress. " * 20)
    made.static("img/logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    made.static("css/extra.css", b"body { color: #333; }\n" * 20)
    return made


def _profiled(server: seaweed.SeaweedServer, profile: StoreProfile) -> Bucket:
    made = new_bucket(server.endpoint_url, s3_client(server.endpoint_url), profile)
    if profile.name not in NO_VERSIONS:
        made.client.put_bucket_versioning(Bucket=made.name, VersioningConfiguration={"Status": "Enabled"})
    return made


def _stored(bucket: Bucket, key: str) -> tuple[bytes, dict[str, Any]]:
    """An object's bytes as a visitor's browser ends up with them (gzip undone), and its headers."""
    answer = bucket.client.get_object(Bucket=bucket.name, Key=key)
    body = answer["Body"].read()
    return (gzip.decompress(body) if answer.get("ContentEncoding") == "gzip" else body), answer


def _assert_serves_the_output(bucket: Bucket, site: Site, redirects: dict[str, str]) -> None:
    local = {p.relative_to(site.output).as_posix(): p for p in site.output.rglob("*") if p.is_file()}
    assert bucket.site_keys() == set(local) | set(redirects)
    for key, path in local.items():
        body, _ = _stored(bucket, key)
        assert hashlib.md5(body).digest() == hashlib.md5(path.read_bytes()).digest(), key
    for key, target in redirects.items():
        body, answer = _stored(bucket, key)
        assert f'url={target}"'.encode() in body and answer["ContentType"] == "text/html; charset=utf-8"


def _refusals(bucket: Bucket) -> Counter[str]:
    return Counter(r.refused_by for r in bucket.proxy.requests if r.refused_by)


def _publish(
    site: Site, bucket: Bucket, redirects: dict[str, str] | None = None, build: bool = True, **settings: Any
) -> dict[str, Any]:
    """One publish, from a real build (or, when only settings changed, of its output from the command line):
    it succeeds, the bucket serves the output, no refusal is repeated."""
    site.settings |= settings
    bucket.proxy.clear()
    if build:
        built = site.build()
        assert built.returncode == 0, built.output
        report = built.report
    else:
        published = site.publish_cli()
        assert published.returncode == 0, published.stderr
        report = json.loads(Path(site.settings["S3_PUBLISH_REPORT"]).read_text())
    assert report is not None
    _assert_serves_the_output(bucket, site, redirects or {})
    assert all(count == 1 for count in _refusals(bucket).values()), _refusals(bucket)
    return report


def _scenario(site: Site, bucket: Bucket, versions: bool) -> list[dict[str, Any]]:
    """First publish, an edit with a removed page, a header rule, gzip, a redirect, a no-op, a rollback."""
    reports = [_publish(site, bucket)]
    site.article("post-1", "Post number 1, edited. " + "Words to compress. " * 20)
    (site.content / "post-3.rst").unlink()
    reports.append(_publish(site, bucket))
    assert "post-3.html" in reports[-1]["deleted"]
    # Only settings change from here: the same output, published from the command line.
    reports.append(_publish(site, bucket, build=False, S3_PUBLISH_HEADERS=[("*.css", {"Cache-Control": "max-age=60"})]))
    assert bucket.head("theme/css/main.css")["CacheControl"] == "max-age=60"
    reports.append(_publish(site, bucket, build=False, S3_PUBLISH_GZIP=True))
    page = bucket.head("post-1.html")
    assert (page["ContentEncoding"], page["CacheControl"]) == ("gzip", "no-transform")
    reports.append(_publish(site, bucket, REDIRECT, build=False, S3_PUBLISH_REDIRECTS=REDIRECT))
    reports.append(_publish(site, bucket, REDIRECT, build=False))
    assert reports[-1]["uploaded"] == [] and reports[-1]["deleted"] == []
    assert bucket.proxy.writes() == [] and _refusals(bucket) == Counter()
    rolled = site.publish_cli("--rollback")
    if versions:
        assert rolled.returncode == 0, rolled.stderr
        _assert_serves_the_output(bucket, site, {})  # the redirect publish undone
    else:
        assert rolled.returncode == 3, rolled.stderr
        assert rolled.stderr.count("\n") == 1 and "keeps no old versions" in rolled.stderr
    return reports


def _expected_lines(profile: StoreProfile) -> list[str]:
    found = {"conditional_create": "enforced", "conditional_replace": "enforced", "checksums": True}
    found |= {"deletes": "batch"} | profile.expected
    deletes = {"batch": "DeleteObjects accepted", "batch-md5": "DeleteObjects needs Content-MD5"}
    return [
        f"If-None-Match on writes: {found['conditional_create']}",
        f"If-Match on writes: {found['conditional_replace']}",
        f"checksums: {'accepted' if found['checksums'] else 'not accepted'}",
        f"deletes: {deletes[found['deletes']]}",
        "folder keys: kept as folders without bytes",  # SeaweedFS below every profile
        f"versioning: {'off' if profile.name in NO_VERSIONS else 'on'}",
    ]


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_every_store_profile_publishes_the_whole_scenario(
    profile: StoreProfile, open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, profile)
    try:
        reports = _scenario(_site(tmp_path, bucket), bucket, versions=profile.name not in NO_VERSIONS)
    finally:
        bucket.proxy.stop()

    weakened = [line for report in reports for line in report["fallbacks"]]
    conditional = {profile.expected.get("conditional_create"), profile.expected.get("conditional_replace")}
    assert any("publisher working at the same time is not detected" in line for line in weakened) == bool(
        conditional - {None}
    )
    assert any("Content-MD5 instead" in line for line in weakened) == (profile.expected.get("checksums") is False)


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_check_reports_what_each_store_does(
    profile: StoreProfile, open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, profile)
    site = _site(tmp_path, bucket)
    try:
        checked = site.publish_cli("--check")
    finally:
        bucket.proxy.stop()

    assert checked.returncode == 0, checked.stdout + checked.stderr
    for expected in _expected_lines(profile):
        assert expected in checked.stdout, (expected, checked.stdout)
    assert bucket.site_keys() == set()  # the probe left nothing behind


def test_b2_says_each_fallback_once_in_the_summary_and_the_report(
    open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, PROFILES[0])
    site = _site(tmp_path, bucket)
    try:
        built = site.build()
    finally:
        bucket.proxy.stop()

    assert built.returncode == 0, built.output
    assert built.output.count("refuses conditional writes") == 1
    assert built.output.count("takes no additional checksums") == 1
    assert built.report is not None and len(built.report["fallbacks"]) == 2
    puts = [r for r in bucket.proxy.put_bodies() if r.key.endswith(".html")]
    assert puts and all("content-md5" in r.headers for r in puts)
    assert not any(name.startswith("x-amz-checksum-") for r in puts for name in r.headers)


@pytest.mark.parametrize("profile", [OWNER_ENFORCED, R2], ids=["aws-owner-enforced", "r2"])
def test_an_acl_the_bucket_refuses_is_one_line_before_any_site_file_is_written(
    profile: StoreProfile, open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, profile)
    site = _site(tmp_path, bucket)
    site.settings["S3_PUBLISH_ACL"] = "public-read"
    try:
        built = site.build(env=dict(os.environ, COLUMNS="300"))
    finally:
        bucket.proxy.stop()

    assert built.returncode != 0
    (line,) = [line for line in built.output.splitlines() if "s3-publish:" in line]
    assert "S3_PUBLISH_ACL" in line
    assert "has ACLs disabled (it does not allow them), so S3_PUBLISH_ACL = 'public-read' cannot be sent" in line
    assert "The S3 website endpoint" in built.output and "Traceback" not in built.output
    assert bucket.all_keys() == set()


def test_the_scenario_on_seaweedfs(bucket: Bucket, tmp_path: Path) -> None:
    bucket.client.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
    _scenario(_site(tmp_path, bucket), bucket, versions=True)


def test_the_scenario_on_moto(moto_server: MotoServer, tmp_path: Path) -> None:
    made = new_bucket(moto_server.endpoint_url, s3_client(moto_server.endpoint_url))
    made.client.put_bucket_versioning(Bucket=made.name, VersioningConfiguration={"Status": "Enabled"})
    try:
        _scenario(_site(tmp_path, made), made, versions=True)
    finally:
        made.proxy.stop()


def test_the_scenario_on_s3rver(node_server: s3rver.S3rver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3rver.KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3rver.SECRET)
    made = new_bucket(node_server.endpoint_url, s3_client(node_server.endpoint_url, s3rver.KEY_ID, s3rver.SECRET))
    try:
        _scenario(_site(tmp_path, made), made, versions=False)
    finally:
        made.proxy.stop()


NO_DELETE_OBJECTS = StoreProfile(
    "no-delete-objects",
    (
        Rule(
            "delete-objects",
            "not a store's documented behaviour: the fallback's last step, one key at a time",
            lambda seen: seen.method == "POST" and "delete" in seen.query.split("&"),
            Refusal(501, "NotImplemented", "DeleteObjects is not implemented"),
        ),
    ),
    {"deletes": "single"},
)


def test_a_store_without_delete_objects_gets_single_deletes_said_once(
    open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, NO_DELETE_OBJECTS)
    site = _site(tmp_path, bucket)
    try:
        _publish(site, bucket)
        (site.content / "post-2.rst").unlink()
        (site.content / "post-3.rst").unlink()
        report = _publish(site, bucket)
    finally:
        bucket.proxy.stop()

    assert {"post-2.html", "post-3.html"} <= set(report["deleted"])
    assert report["fallbacks"] == ["this store refuses DeleteObjects: keys are deleted one at a time"]
    single = [r.key for r in bucket.proxy.requests if r.method == "DELETE"]
    assert {"post-2.html", "post-3.html"} <= set(single)


def test_a_conditional_write_conflict_409_is_retried(bucket: Bucket, tmp_path: Path) -> None:
    """AWS answers 409 ConditionalRequestConflict to racing conditional writes, and says to retry."""
    site = _site(tmp_path, bucket)
    answered: list[str] = []

    def conflict_once(method: str, key: str) -> tuple[int, str] | None:
        if method == "PUT" and key.endswith(".s3-publish-manifest.json.gz") and not answered:
            answered.append(key)
            return 409, "ConditionalRequestConflict"
        return None

    bucket.proxy.fault = conflict_once
    built = site.build()

    assert built.returncode == 0, built.output
    assert built.report is not None and built.report["retries"] >= 1
    manifest_puts = [
        r.status for r in bucket.proxy.requests if r.method == "PUT" and r.key.endswith(".s3-publish-manifest.json.gz")
    ]
    assert manifest_puts[:2] == [409, 200]
    _assert_serves_the_output(bucket, site, {})


def _probes(bucket: Bucket) -> list[str]:
    return [r.key for r in bucket.proxy.requests if r.method == "PUT" and r.is_probe]


def test_the_store_is_asked_once_per_address_and_again_at_a_new_one(
    bucket: Bucket, s3_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    site = _site(tmp_path, bucket)
    _publish(site, bucket)
    assert _probes(bucket)
    head, _ = stored_manifest(bucket.body(MANIFEST))
    assert head["store"]["where"] == f"{bucket.endpoint_url}/{bucket.name}" and head["store"]["folder_keys"] is False

    site.article("post-1", "Edited once.")
    _publish(site, bucket)
    assert not _probes(bucket)  # known from the manifest: nothing asked

    elsewhere = proxy_module.Proxy(s3_server.endpoint_url).start()  # the same bucket at another address
    try:
        moved = Bucket(bucket.name, bucket.client, elsewhere.url, elsewhere)
        site.settings["S3_PUBLISH_ENDPOINT_URL"] = elsewhere.url
        site.article("post-1", "Edited twice.")
        _publish(site, moved)
        assert _probes(moved)
    finally:
        elsewhere.stop()
    head, _ = stored_manifest(bucket.body(MANIFEST))
    assert head["store"]["where"] == f"{elsewhere.url}/{bucket.name}"


def _probe_deletes(bucket: Bucket) -> list[proxy_module.Request]:
    return [r for r in bucket.proxy.requests if r.method in ("POST", "DELETE") and r.is_probe]


def test_a_first_publish_asks_the_store_once_and_before_its_first_write(site: Site, bucket: Bucket) -> None:
    """The helper starts the probe as soon as it has read a bucket without a manifest, while the command
    scans; the publish then waits for that probe's answer instead of asking again."""
    site.build_only()

    result = site.publish_cli()

    assert result.returncode == 0, result.stderr
    assert len(_probe_deletes(bucket)) == 1  # one probe, its objects removed once
    writes = bucket.proxy.writes()
    first_site_write = next(n for n, r in enumerate(writes) if not r.is_probe)
    assert all(r.is_probe for r in writes[:first_site_write]) and not any(r.is_probe for r in writes[first_site_write:])
    assert bucket.all_keys() == set(md5_tree(site.output)) | {MANIFEST}


@pytest.mark.parametrize("waits_at_close", [True, False], ids=["command line", "build"])
def test_a_publish_that_ends_while_the_store_is_probed_leaves_no_probe_behind(
    bucket: Bucket, waits_at_close: bool
) -> None:
    """A publish that fails on its own input ends while the probe it started is under way: the helper lets
    the probe finish and remove its objects, and the bucket is as it was. A build, which does not wait for
    a helper that has only to end, waits for one with a probe under way."""
    bucket.proxy.latency_s = 0.2  # each request: the probe is under way for a second
    settings = from_pelican({"S3_PUBLISH_BUCKET": bucket.name, "S3_PUBLISH_ENDPOINT_URL": bucket.endpoint_url})
    read = ChildRead(settings, fork=False, waits_at_close=waits_at_close)
    _wait_until(lambda: _probes(bucket), 30, "the probe never started")

    read.close()

    assert len(_probe_deletes(bucket)) == 1
    assert bucket.all_keys() == set()


def _wait_until(done: Callable[[], object], seconds: float, never: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, never
        time.sleep(0.01)


def _children() -> set[int]:
    """This process's child processes, those ended but not yet reaped (zombies) among them.

    By thread: a thread that ends between the listing of threads and the
    reading of its children is skipped; its children have passed to another
    thread of this process, whose list holds them.
    """
    return {int(pid) for task in Path("/proc/self/task").iterdir() for pid in _task_children(task)}


def _task_children(task: Path) -> list[str]:
    try:
        return (task / "children").read_text().split()
    except FileNotFoundError:
        return []


def test_a_build_goes_on_while_its_helper_ends_and_the_helper_is_reaped(bucket: Bucket) -> None:
    """At the end of a build's publish the helper has nothing under way: the build does not wait while it
    ends, and it is reaped once it has, leaving no zombie behind."""
    settings = from_pelican(
        {"S3_PUBLISH_BUCKET": bucket.name, "S3_PUBLISH_ENDPOINT_URL": bucket.endpoint_url, "S3_PUBLISH_DRY_RUN": True}
    )
    before = _children()
    read = ChildRead(settings, fork=False, waits_at_close=False)
    read.result()
    (helper,) = _children() - before

    read.close()

    _wait_until(lambda: helper not in _children(), 10, "the helper was never reaped")
    assert bucket.proxy.writes() == []


IGNORES_CONTENT_MD5 = StoreProfile(
    "ignores-content-md5",
    (
        Rule(
            "checksum",
            "B2's answer to additional checksums, as in the b2 profile",
            lambda seen: any(name.startswith("x-amz-checksum-") for name in seen.headers),
            Refusal(400, "InvalidArgument", "Unsupported header 'x-amz-checksum-sha256' received for this API call."),
        ),
        Rule(
            "content-md5-ignored",
            "a store that does not check Content-MD5: only the ETag shows a body changed on the way",
            lambda seen: "content-md5" in seen.headers,
            ignores=("content-md5",),
        ),
    ),
)


def test_without_checksums_a_body_changed_on_the_way_is_caught_by_its_etag(
    open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    bucket = _profiled(open_server, IGNORES_CONTENT_MD5)
    site = _site(tmp_path, bucket)
    bucket.proxy.fault = lambda method, key: "corrupt" if method == "PUT" and key == "post-2.html" else None
    try:
        built = site.build(env=dict(os.environ, COLUMNS="300"))
    finally:
        bucket.proxy.stop()

    assert built.returncode == 1, built.output
    (line,) = [line for line in built.output.splitlines() if "s3-publish:" in line]
    assert f"s3://{bucket.name}/post-2.html: BadDigest: the bytes were changed on the way" in line
    _, records = stored_manifest(bucket.body(MANIFEST))
    assert "post-2.html" not in records  # never recorded as published


def test_check_fails_in_one_line_for_a_bucket_that_is_not_there(bucket: Bucket, tmp_path: Path) -> None:
    site = _site(tmp_path, bucket)
    site.settings["S3_PUBLISH_BUCKET"] = "no-such-bucket-here"

    checked = site.publish_cli("--check")

    assert checked.returncode == 1
    assert "FAIL  check: bucket no-such-bucket-here does not exist" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr
