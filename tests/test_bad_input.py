"""Bad input in the output directory: one line naming it, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Bucket, Site

# Root reads any file whatever its mode; without these capabilities it cannot.
AS_AN_ORDINARY_USER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    if os.geteuid() == 0
    else []
)


def _publish(site: Site) -> subprocess.CompletedProcess[str]:
    site.write_settings()
    command = [*AS_AN_ORDINARY_USER, sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"]
    return subprocess.run(command, cwd=site.root, capture_output=True, text=True, timeout=120)


def _non_utf8_name(output: Path) -> str:
    path = os.path.join(os.fsencode(output), b"caf\xe9.html")
    with open(path, "wb") as handle:
        handle.write(b"<p>latin-1 name</p>")
    return "is not valid UTF-8"


def _control_character(output: Path) -> str:
    (output / "tab\there.html").write_text("<p>x</p>")
    return "holds control characters"


def _key_too_long(output: Path) -> str:
    deep = output.joinpath(*["d" * 200] * 5)
    deep.mkdir(parents=True)
    (deep / ("f" * 40 + ".html")).write_text("<p>deep</p>")
    return "is over 1024 bytes"


def _unreadable_file(output: Path) -> str:
    (output / "index.html").chmod(0)
    return "cannot read"


def _unreadable_directory(output: Path) -> str:
    (output / "theme").chmod(0)
    return "cannot read the directory"


def _unreadable_output(output: Path) -> str:
    output.chmod(0)
    return "cannot read the directory"


def _link_loop(output: Path) -> str:
    (output / "a").symlink_to("b")
    (output / "b").symlink_to("a")
    return "link loop"


def _link_to_a_parent(output: Path) -> str:
    (output / "theme" / "again").symlink_to("..", target_is_directory=True)
    return "links back to"


def _link_leaving(output: Path) -> str:
    outside = output.parent / "outside.txt"
    outside.write_text("not for the web")
    (output / "leak.txt").symlink_to(outside)
    return "outside the output directory"


def _dangling_link(output: Path) -> str:
    (output / "gone.css").symlink_to(output / "never-there.css")
    return "cannot be followed"


@pytest.mark.parametrize(
    "spoil",
    [
        _non_utf8_name,
        _control_character,
        _key_too_long,
        _unreadable_file,
        _unreadable_directory,
        _unreadable_output,
        _link_loop,
        _link_to_a_parent,
        _link_leaving,
        _dangling_link,
    ],
)
def test_bad_output_is_named_and_nothing_is_written(site: Site, bucket: Bucket, spoil: Callable[[Path], str]) -> None:
    site.build_only()
    expected = spoil(site.output)

    result = _publish(site)

    site.output.chmod(0o755)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert expected in lines[0]
    assert "s3-publish:" in lines[0]
    assert bucket.proxy.writes() == []
    assert bucket.all_keys() == set()


def test_excluded_problem_files_do_not_stop_a_publish(site: Site, bucket: Bucket) -> None:
    """A bad name under an excluded directory is never looked at."""
    site.build_only()
    (site.output / ".git").mkdir()
    (site.output / ".git" / "tab\there").write_text("x")
    (site.output / ".env").write_text("SECRET=1")
    (site.output / "notes.txt.swp").write_text("x")

    result = _publish(site)

    assert result.returncode == 0, result.stderr
    keys = bucket.site_keys()
    assert "index.html" in keys
    assert not [k for k in keys if k.startswith(".git/") or k in (".env", "notes.txt.swp")]


def test_empty_or_missing_output_is_refused(site: Site, bucket: Bucket, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    refused = site.publish_cli("-o", str(empty))
    missing = site.publish_cli("-o", str(tmp_path / "nowhere"))

    assert refused.returncode == 3
    assert "empty site" in refused.stderr
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    assert bucket.all_keys() == set()
