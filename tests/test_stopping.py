"""Ctrl-C and SIGTERM during a publish: it stops soon, says what state the bucket is in, and the
manifest it leaves is true, so the next publish sends only what is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import Bucket, Site, md5_tree, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"
FILES = 300


def _slow_site(site: Site, bucket: Bucket) -> None:
    """300 files, 4 at a time, 0.1 s each: a publish of several seconds, interrupted early."""
    for number in range(FILES):
        site.static(f"many/f{number:04}.txt", f"file {number}\n".encode())
    site.settings["S3_PUBLISH_WORKERS"] = 4
    bucket.proxy.latency_s = 0.1


def _interrupt(command: list[str], site: Site, bucket: Bucket, *signals: int) -> tuple[int, str, float]:
    """Start `command`, send `signals` once 8 files landed; its exit code, output and seconds to stop."""
    running = subprocess.Popen(
        command, cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    deadline = time.monotonic() + 120
    while len(bucket.proxy.put_bodies()) < 8 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.monotonic()
    for number in signals:
        running.send_signal(number)
        time.sleep(0.2)
    output, _ = running.communicate(timeout=60)
    return running.returncode, output, time.monotonic() - asked


def _manifest_is_true(bucket: Bucket) -> dict[str, list[object]]:
    """Each record names an object that is there with the recorded ETag; the records."""
    rows = stored_manifest(bucket.body(MANIFEST))[1]
    listed = {
        item["Key"]: item["ETag"].strip('"')
        for page in bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
        for item in page.get("Contents", [])
    }
    assert {key: row[2] for key, row in rows.items()} == {key: listed.get(key) for key in rows}
    return rows


def _next_publish_sends_only_what_is_missing(site: Site, bucket: Bucket, recorded: set[str]) -> None:
    bucket.proxy.latency_s = 0
    bucket.proxy.clear()
    done = site.publish_cli("--json")
    assert done.returncode == 0, done.stderr
    sent = {item["key"] for item in json.loads(done.stdout)["uploaded"]}
    assert sent.isdisjoint(recorded)
    assert not [r.key for r in bucket.proxy.requests if r.method == "HEAD" and r.key in recorded]
    assert bucket.site_keys() == set(md5_tree(site.output))


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_command_line_soon_and_records_what_landed(
    site: Site, bucket: Bucket, number: int, code: int
) -> None:
    _slow_site(site, bucket)
    site.build_only()
    site.write_settings()

    exit_code, output, took = _interrupt(
        [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"], site, bucket, number
    )

    assert exit_code == code, output
    assert took < 3.5, output
    assert "Traceback" not in output
    assert "interrupted:" in output and "recorded in the manifest" in output and "publish again to finish" in output
    recorded = set(_manifest_is_true(bucket))
    assert 8 <= len(recorded) < FILES
    assert not [r for r in bucket.proxy.writes() if r.method in ("DELETE", "POST") and not r.is_probe]
    _next_publish_sends_only_what_is_missing(site, bucket, recorded)


def test_ctrl_c_inside_pelican_content_exits_non_zero_with_a_true_manifest(site: Site, bucket: Bucket) -> None:
    _slow_site(site, bucket)
    site.write_settings()

    exit_code, output, took = _interrupt(
        [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output"],
        site,
        bucket,
        signal.SIGINT,
    )

    assert exit_code == 130, output
    assert took < 3.5, output
    assert "interrupted:" in output
    recorded = set(_manifest_is_true(bucket))
    assert 8 <= len(recorded) < FILES
    _next_publish_sends_only_what_is_missing(site, bucket, recorded)


def test_a_second_ctrl_c_exits_at_once_even_with_requests_stuck(site: Site, bucket: Bucket) -> None:
    _slow_site(site, bucket)
    site.build_only()
    site.write_settings()
    bucket.proxy.stall_s = 30
    landed = 0

    def stall_after_eight(method: str, key: str) -> str | None:
        nonlocal landed
        landed += method == "PUT"
        return "stall" if landed > 8 else None

    bucket.proxy.fault = stall_after_eight  # type: ignore[assignment]

    exit_code, output, took = _interrupt(
        [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"],
        site,
        bucket,
        signal.SIGINT,
        signal.SIGINT,
    )

    assert exit_code == 130, output
    assert took < 1.5, output
    assert "stopped at once" in output
