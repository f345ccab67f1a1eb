"""Cloudflare's cache in front of R2 or B2 (issue 23): exactly what a publish changed is purged, within the
plan's limits, and never lost. Cloudflare's API is a local stand-in (devtools/cloudflare_api.py, each
behaviour with its source) reached by the official library through CLOUDFLARE_BASE_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.cloudflare_api import MAX_ITEMS, CloudflareApi
from pelican_s3_publish.cdn.cloudflare import Zone
from tests.conftest import Bucket, MotoServer, Site, new_bucket, s3_client, stored_manifest

ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN = "test-token-with-cache-purge"
SITE = "https://blog.example"
MANIFEST = ".s3-publish-manifest.json.gz"
URLS_A_REQUEST = 30  # held there on all but Enterprise (cloudflare/cloudflare-docs#21338)


@pytest.fixture
def api() -> Iterator[CloudflareApi]:
    server = CloudflareApi(TOKEN, {ZONE}).start()
    yield server
    server.stop()


def _env(api: CloudflareApi, token: str = TOKEN) -> dict[str, str]:
    return dict(os.environ, CLOUDFLARE_API_TOKEN=token, CLOUDFLARE_BASE_URL=api.base_url, COLUMNS="400")


def _behind_cloudflare(site: Site, **settings: object) -> None:
    site.settings |= {"SITEURL": SITE, "RELATIVE_URLS": False, "S3_PUBLISH_CLOUDFLARE_ZONE_ID": ZONE, **settings}


def _one_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "s3-publish:" in line]
    return line


def test_an_edit_purges_exactly_the_changed_pages_with_their_index_aliases(site: Site, api: CloudflareApi) -> None:
    _behind_cloudflare(site)
    first = site.build(env=_env(api))
    assert first.returncode == 0, first.output
    assert f"{SITE}/" in api.purged()  # new keys too: a 404 may have been cached for them
    api.purges.clear()
    site.article("post-1", "Post number 1, edited.")

    edited = site.build(env=_env(api))

    assert edited.returncode == 0, edited.output
    assert edited.report is not None
    changed = {item["key"] for item in edited.report["uploaded"]}
    wanted = {f"{SITE}/{key}" for key in changed} | {f"{SITE}/" for key in changed if key == "index.html"}
    assert set(api.purged()) == wanted and f"{SITE}/post-1.html" in wanted
    assert all(purge.kind == "files" and len(purge.items) <= URLS_A_REQUEST for purge in api.purges)
    assert f"Cloudflare: {len(wanted)} URLs purged" in edited.output
    (told,) = edited.report["invalidations"]
    assert (told["cdn"], told["distribution"], sorted(told["paths"])) == ("Cloudflare", ZONE, sorted(wanted))


def test_a_header_rule_and_a_deleted_page_are_purged_under_both_host_names(
    site: Site, bucket: Bucket, api: CloudflareApi
) -> None:
    hosts = [SITE, "https://www.blog.example"]
    _behind_cloudflare(site, S3_PUBLISH_CLOUDFLARE_URLS=hosts)
    assert site.build(env=_env(api)).returncode == 0
    api.purges.clear()
    site.settings["S3_PUBLISH_HEADERS"] = [("*.css", {"Cache-Control": "max-age=60"})]
    (site.content / "post-2.rst").unlink()

    built = site.build(env=_env(api))

    assert built.returncode == 0, built.output
    purged = set(api.purged())
    for host in hosts:
        assert f"{host}/post-2.html" in purged and f"{host}/theme/css/main.css" in purged
    assert f"{SITE}/static/img/logo.png" not in purged


def test_index_pages_and_folder_keys_are_purged_under_the_folder_url(
    tmp_path: Path, moto_server: MotoServer, api: CloudflareApi
) -> None:
    """Strip-index keys (`posts/a/`) on a store that keeps them: moto, as AWS and R2 do."""
    bucket = new_bucket(moto_server.endpoint_url, s3_client(moto_server.endpoint_url))
    site = Site(tmp_path / "site", bucket)
    site.article("post-1", "Post number 1.")
    _behind_cloudflare(site, ARTICLE_URL="posts/{slug}/", ARTICLE_SAVE_AS="posts/{slug}/index.html")
    try:
        assert site.build(env=_env(api)).returncode == 0
        site.settings["S3_PUBLISH_STRIP_INDEX_HTML"] = True
        api.purges.clear()
        built = site.build(env=_env(api))
    finally:
        bucket.proxy.stop()

    assert built.returncode == 0, built.output
    assert "posts/post-1/" in bucket.site_keys()
    assert {f"{SITE}/posts/post-1/", f"{SITE}/posts/post-1/index.html"} <= set(api.purged())


def test_with_nothing_to_fold_into_everything_in_the_zone_is_purged() -> None:
    zone = Zone(None, ZONE, [SITE], budget=2, prefix="")

    assert zone.folded(["/a.html", "/b.html", "/c.html"]) == ["*"]
    assert zone.folded(["/a/1.html", "/a/2.html", "/b.html"]) == ["blog.example/a/", f"{SITE}/b.html"]


def test_a_no_op_makes_no_cloudflare_call(site: Site, api: CloudflareApi) -> None:
    _behind_cloudflare(site)
    assert site.build(env=_env(api)).returncode == 0
    api.purges.clear()
    api.answers.clear()

    again = site.build(env=_env(api))

    assert again.returncode == 0, again.output
    assert api.purges == [] and api.answers == []
    assert "Cloudflare" not in again.output


def test_five_thousand_changed_files_fold_into_prefixes_within_the_free_plan(
    site: Site, bucket: Bucket, api: CloudflareApi
) -> None:
    _behind_cloudflare(site)
    for number in range(5000):
        site.static(f"docs/section-{number % 50}/page-{number}.txt", b"first")
    assert site.build(env=_env(api), timeout=900).returncode == 0
    api.purges.clear()
    for number in range(5000):
        site.static(f"docs/section-{number % 50}/page-{number}.txt", b"second")

    built = site.build(env=_env(api), timeout=900)

    assert built.returncode == 0, built.output
    assert len(api.purged()) <= 300 and len(api.purges) <= 11  # the default budget: 10 of the bucket's 25, + prefixes
    assert all(len(p.items) <= (URLS_A_REQUEST if p.kind == "files" else MAX_ITEMS) for p in api.purges)
    prefixes = tuple(item for purge in api.purges if purge.kind == "prefixes" for item in purge.items)
    files = {item for purge in api.purges if purge.kind == "files" for item in purge.items}
    assert prefixes and all(p.startswith("blog.example/static/docs/section-") for p in prefixes)
    for number in range(5000):
        url = f"{SITE}/static/docs/section-{number % 50}/page-{number}.txt"
        assert url in files or url.removeprefix("https://").startswith(prefixes), url


def test_a_429_is_waited_out_as_retry_after_says(site: Site, api: CloudflareApi) -> None:
    _behind_cloudflare(site)
    assert site.build(env=_env(api)).returncode == 0
    api.answers.clear()
    api.drain(refill_per_s=0.125)  # empty, and a token every 8 s: the publish gets there first
    site.article("post-1", "Post number 1, edited.")

    built = site.build(env=_env(api))

    assert built.returncode == 0, built.output
    assert api.answers[:2] == [429, 200]
    assert f"{SITE}/post-1.html" in api.purged()


def test_a_refused_token_stops_before_anything_is_written(site: Site, bucket: Bucket, api: CloudflareApi) -> None:
    _behind_cloudflare(site)
    site.build_only()

    built = site.build(env=_env(api, token="a-token-cloudflare-does-not-know"))

    assert built.returncode == 2, built.output
    line = _one_line(built.output)
    assert "CLOUDFLARE_API_TOKEN" in line and "Cache Purge" in line
    assert "a-token-cloudflare-does-not-know" not in built.output
    assert bucket.all_keys() == set()


def test_a_wrong_zone_stops_before_anything_is_written(site: Site, bucket: Bucket, api: CloudflareApi) -> None:
    _behind_cloudflare(site, S3_PUBLISH_CLOUDFLARE_ZONE_ID="f" * 32)

    built = site.build(env=_env(api))

    assert built.returncode == 2, built.output
    assert "fix S3_PUBLISH_CLOUDFLARE_ZONE_ID" in _one_line(built.output)
    assert bucket.all_keys() == set()


def test_cloudflare_unreachable_keeps_the_urls_and_the_next_no_op_sends_them(
    site: Site, bucket: Bucket, api: CloudflareApi
) -> None:
    _behind_cloudflare(site)
    assert site.build(env=_env(api)).returncode == 0
    site.article("post-1", "Post number 1, edited.")
    api.down = True

    failed = site.build(env=_env(api))

    assert failed.returncode == 1, failed.output
    assert "published, but Cloudflare was not told" in _one_line(failed.output)
    head, _ = stored_manifest(bucket.body(MANIFEST))
    assert "/post-1.html" in head["pending_invalidations"][f"cloudflare:{ZONE}"]
    api.down = False

    no_op = site.build(env=_env(api))

    assert no_op.returncode == 0, no_op.output
    assert no_op.report is not None and no_op.report["uploaded"] == []
    assert f"{SITE}/post-1.html" in api.purged()
    head, _ = stored_manifest(bucket.body(MANIFEST))
    assert head["pending_invalidations"] == {}


def test_dry_run_shows_what_would_be_purged_and_purges_nothing(site: Site, api: CloudflareApi) -> None:
    _behind_cloudflare(site)
    assert site.build(env=_env(api)).returncode == 0
    site.article("post-1", "Post number 1, edited.")
    site.build_only()
    api.purges.clear()

    dry = site.publish_cli("--dry-run", env=_env(api))

    assert dry.returncode == 0, dry.stderr
    assert f"purge  {ZONE}" in dry.stdout and f"{SITE}/post-1.html" in dry.stdout
    assert api.purges == []


def test_a_site_without_an_absolute_siteurl_is_a_settings_error(site: Site, bucket: Bucket, api: CloudflareApi) -> None:
    site.settings["S3_PUBLISH_CLOUDFLARE_ZONE_ID"] = ZONE

    built = site.build(env=_env(api))

    assert built.returncode == 2, built.output
    assert "S3_PUBLISH_CLOUDFLARE_ZONE_ID needs the site's public address" in _one_line(built.output)
    assert bucket.all_keys() == set()


def test_check_verifies_the_token_and_the_zone(site: Site, api: CloudflareApi) -> None:
    _behind_cloudflare(site)

    checked = site.publish_cli("--check", env=_env(api))
    refused = site.publish_cli("--check", env=_env(api, token="wrong"))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok    Cloudflare: zone {ZONE}: the token is active and the zone is there" in checked.stdout
    assert refused.returncode == 1 and "CLOUDFLARE_API_TOKEN" in refused.stdout
    assert api.purges == []
