"""The progress bar, seen through a pseudo-terminal as a user sees it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from tests.conftest import Bucket, Site, md5_tree

BAR = "files, "  # the bar's "N/M files, X of Y" column


def _through_a_terminal(command: list[str], site: Site) -> tuple[int, str]:
    """Run with standard output and error on a pseudo-terminal; everything it drew, and its exit code."""
    site.write_settings()
    controller, terminal = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="160", LINES="40")
    process = subprocess.Popen(command, cwd=site.root, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    drawn = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    return process.wait(timeout=300), drawn.decode("utf-8", "replace")


@pytest.fixture
def slow_site(site: Site, bucket: Bucket) -> Site:
    """Enough files, one at a time, behind enough latency to take longer than a second."""
    for number in range(30):
        site.static(f"img/{number}.png", b"\x89PNG\r\n\x1a\n" + bytes([number]) * 99)
    site.settings["S3_PUBLISH_WORKERS"] = 1
    bucket.proxy.latency_s = 0.05
    return site


def test_the_command_line_shows_a_bar_on_a_terminal(slow_site: Site, bucket: Bucket) -> None:
    slow_site.build_only()

    code, drawn = _through_a_terminal([sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"], slow_site)

    assert code == 0, drawn
    assert BAR in drawn and "published to" in drawn
    assert bucket.site_keys() == set(md5_tree(slow_site.output))


def test_quiet_draws_no_bar(slow_site: Site, bucket: Bucket) -> None:
    slow_site.build_only()

    code, drawn = _through_a_terminal(
        [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py", "-q"], slow_site
    )

    assert code == 0, drawn
    assert BAR not in drawn and "published to" not in drawn


def test_no_bar_when_standard_error_is_not_a_terminal(slow_site: Site, bucket: Bucket) -> None:
    slow_site.build_only()

    result = slow_site.publish_cli()

    assert result.returncode == 0, result.stderr
    assert BAR not in result.stderr + result.stdout
    assert "published to" in result.stderr


def test_inside_pelican_the_bar_shares_pelican_s_console(slow_site: Site, bucket: Bucket) -> None:
    command = [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output"]

    code, drawn = _through_a_terminal(command, slow_site)

    assert code == 0, drawn
    assert BAR in drawn and "published to" in drawn
    assert "live display" not in drawn.lower() and "Traceback" not in drawn
    assert bucket.site_keys() == set(md5_tree(slow_site.output))
