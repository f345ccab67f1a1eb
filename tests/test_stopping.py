"""Ctrl-C and SIGTERM during a publish: it stops soon, says what state the bucket is in, and the
manifest it leaves is true, so the next publish sends only what is missing."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pyte
import pytest

from pelican_s3_publish.manifest import RESERVED_NAMES
from pelican_s3_publish.stopping import GRACE_S, STOPPING
from tests.conftest import Bucket, Site, md5_tree, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"
FILES = 600
# A stopped publish takes the grace for requests on the wire, then records what landed: on a loaded
# two-core machine, seconds more. Left to run on, the slow site would take 15 s.
STOPS_WITHIN_S = GRACE_S + 5


def _slow_site(site: Site, bucket: Bucket) -> None:
    """600 files, 4 at a time, 0.1 s each: a publish of 15 s, interrupted early."""
    for number in range(FILES):
        site.static(f"many/f{number:04}.txt", f"file {number}\n".encode())
    site.settings["S3_PUBLISH_WORKERS"] = 4
    bucket.proxy.latency_s = 0.1


def _interrupt(
    command: list[str], site: Site, bucket: Bucket, *signals: int, to_group: bool = False
) -> tuple[int, str, float]:
    """Start `command`, send `signals` once 8 files landed, to it or to its whole process group; its exit
    code, output and seconds to stop."""
    running = subprocess.Popen(
        command, cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
        start_new_session=to_group,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(bucket.proxy.put_bodies()) < 8 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.monotonic()
    for number in signals:
        if to_group:
            os.killpg(running.pid, number)
        else:
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


@pytest.mark.parametrize(
    ("number", "code", "to_group"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, False), (signal.SIGTERM, 143, True)],
    ids=["SIGINT", "SIGTERM", "SIGTERM to the process group"],
)
def test_a_signal_stops_the_command_line_soon_and_records_what_landed(
    site: Site, bucket: Bucket, number: int, code: int, to_group: bool
) -> None:
    """The helper process that writes is in the command's process group: a signal to the group (a CI
    runner stopping a job) leaves it to the command, which still records what landed through it."""
    _slow_site(site, bucket)
    site.build_only()
    site.write_settings()

    exit_code, output, took = _interrupt(
        [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"], site, bucket, number, to_group=to_group
    )

    assert exit_code == code, output
    assert took < STOPS_WITHIN_S, output
    assert "Traceback" not in output
    (said,) = [line for line in output.splitlines() if "interrupted:" in line]
    assert re.search(
        r"interrupted: \d+ of \d+ files sent and recorded in the manifest; the bucket holds part of a first publish "
        r"\(assets go first, so no page links to a missing file\); publish again to finish$",
        said,
    )
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
    assert took < STOPS_WITHIN_S, output
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
        """The site's first 8 files land (as `_interrupt` waits for), the rest hang."""
        nonlocal landed
        landed += method == "PUT" and not key.endswith(RESERVED_NAMES)
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
    assert took < GRACE_S, output  # not the grace, nor the 30 s the stuck requests would take
    assert "stopped at once" in output


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_the_helper_process_killed_midway_is_one_line_and_leaves_a_true_manifest(site: Site, bucket: Bucket) -> None:
    """The child that reads and writes the bucket, gone (the OOM killer, a stray kill): the publish says so
    in one line, having recorded nothing untrue, and the next publish finishes the job."""
    _slow_site(site, bucket)
    site.build_only()
    site.write_settings()
    running = subprocess.Popen(
        [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"],
        cwd=site.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(bucket.proxy.put_bodies()) < 8 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    (helper,) = _children(running.pid)
    os.kill(helper, signal.SIGKILL)
    output, _ = running.communicate(timeout=60)

    assert running.returncode == 1, output
    assert "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .endswith("the helper process that reads and writes the bucket failed: it was killed (signal 9)")
    ), output
    recorded = set(_manifest_is_true(bucket))
    assert len(recorded) < FILES
    _next_publish_sends_only_what_is_missing(site, bucket, recorded)


def _on_a_terminal(command: list[str], site: Site, bucket: Bucket) -> tuple[list[str], bytes]:
    """Run `command` on a pseudo-terminal 160 columns wide, Ctrl-C once the progress bar is drawn and
    8 files landed; the lines a user sees at the end (scrollback included), and what was drawn."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    running = subprocess.Popen(command, cwd=site.root, stdin=child, stdout=child, stderr=child, env=env)
    os.close(child)
    drawn = bytearray()

    def read_all() -> None:
        with contextlib.suppress(OSError):  # EIO once the child is gone
            while chunk := os.read(main, 65536):
                drawn.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    deadline = time.monotonic() + 120
    while b" left" not in drawn or len(bucket.proxy.put_bodies()) < 8:
        assert running.poll() is None and time.monotonic() < deadline, drawn.decode(errors="replace")
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    running.wait(timeout=60)
    reader.join(timeout=10)
    os.close(main)
    screen = pyte.HistoryScreen(160, 40, history=2000)
    pyte.ByteStream(screen).feed(bytes(drawn))
    seen = [*("".join(char.data for char in row.values()) for row in screen.history.top), *screen.display]
    return [line.rstrip() for line in seen], bytes(drawn)


@pytest.mark.parametrize("where", ["command line", "pelican content"])
def test_ctrl_c_s_line_is_whole_on_its_own_line_above_the_progress_bar(site: Site, bucket: Bucket, where: str) -> None:
    _slow_site(site, bucket)
    if where == "command line":
        site.build_only()
    site.write_settings()
    command = {
        "command line": [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"],
        "pelican content": [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output"],
    }[where]

    lines, drawn = _on_a_terminal(command, site, bucket)

    assert STOPPING in lines, "\n".join(lines)
    assert b"files, " in drawn and b" left" in drawn  # the bar was drawn, its time column labelled
    assert any("interrupted: " in line for line in lines), "\n".join(lines)
