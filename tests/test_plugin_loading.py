"""Every way Pelican loads a plugin loads this one, once: its namespace
(`s3_publish`, `pelican.plugins.s3_publish`, or every installed plugin when
PLUGINS is unset) and the package's own name. Real `pelican content` builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pelican_s3_publish.manifest import MANIFEST_NAME

from .conftest import Site


def published_once(site: Site) -> None:
    built = site.build()
    assert built.returncode == 0, built.output
    assert built.output.count("published to s3://") == 1, built.output
    assert site.bucket is not None
    assert "index.html" in site.bucket.site_keys()
    manifest_writes = [r for r in site.bucket.proxy.writes() if r.key == MANIFEST_NAME and r.method == "PUT"]
    assert len(manifest_writes) == 2, manifest_writes  # write-ahead, then the final record: one publish


@pytest.mark.parametrize(
    "plugins",
    [["s3_publish"], ["pelican.plugins.s3_publish"], ["pelican_s3_publish"], ["s3_publish", "pelican_s3_publish"]],
    ids=["short-name", "namespace-name", "package-name", "two-ways-at-once"],
)
def test_each_way_of_naming_the_plugin_publishes_once(site: Site, plugins: list[str]) -> None:
    site.settings["PLUGINS"] = plugins
    published_once(site)


def test_a_site_without_a_plugins_list_finds_it_among_the_installed_plugins(site: Site) -> None:
    del site.settings["PLUGINS"]
    published_once(site)


def test_found_but_inert_without_an_s3_publish_setting(tmp_path: Path) -> None:
    """Installed, found by discovery, and silent on a site that does not publish."""
    site = Site(tmp_path / "site", bucket=None)
    del site.settings["PLUGINS"]
    del site.settings["S3_PUBLISH_REPORT"]
    site.article("hello")
    built = site.build()
    assert built.returncode == 0, built.output
    assert "s3-publish" not in built.output
    assert (site.output / "hello.html").exists()


def test_pelican_plugins_lists_it() -> None:
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("pelican-plugins"))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "pelican.plugins.s3_publish" in listed.stdout + listed.stderr
