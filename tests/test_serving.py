"""What visitors get: redirect objects, automatic redirects, pretty URLs from a private bucket (issue 14)."""

from __future__ import annotations

import os
import time

import boto3

from tests.conftest import FAKE_KEY_ID, FAKE_SECRET, Bucket, MotoServer, Site

MOVES = {"old/first-post.html": "/post-1.html", "feed.xml": "https://example.org/feeds/all.atom.xml"}


def test_a_redirect_object_redirects_by_header_and_by_page_and_a_rebuild_sends_nothing(
    site: Site, bucket: Bucket
) -> None:
    site.settings["S3_PUBLISH_REDIRECTS"] = MOVES

    assert site.build().returncode == 0

    sent = {r.key: r.headers for r in bucket.proxy.put_bodies()}
    assert sent["old/first-post.html"]["x-amz-website-redirect-location"] == "/post-1.html"
    page = bucket.client.get_object(Bucket=bucket.name, Key="old/first-post.html")
    assert page["ContentType"] == "text/html; charset=utf-8"
    body = page["Body"].read()
    assert b'<meta http-equiv="refresh" content="0; url=/post-1.html">' in body
    assert b'<a href="/post-1.html">' in body
    assert sent["feed.xml"]["x-amz-website-redirect-location"] == MOVES["feed.xml"]
    bucket.proxy.clear()
    assert site.build().returncode == 0
    assert bucket.proxy.writes() == []

    site.settings["S3_PUBLISH_REDIRECTS"] = {"old/first-post.html": "/post-2.html"}
    bucket.proxy.clear()
    changed = site.build()

    assert changed.returncode == 0, changed.output
    assert [r.key for r in bucket.proxy.put_bodies()] == ["old/first-post.html"]
    assert "feed.xml" not in bucket.site_keys()


def test_a_redirect_to_a_path_the_site_does_not_have_is_warned_of_in_one_line(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_REDIRECTS"] = {
        "old/gone.html": "/nope.html",
        "old/first.html": "/post-1.html",
        "old/home.html": "/",
        "old/news.html": "/category/news.html#top",
        "old/chain.html": "/old/first.html",
        "old/away.html": "https://example.org/nope.html",
    }
    site.build_only()

    published = site.publish_cli()

    assert published.returncode == 0, published.stderr
    # The endpoint left out: its random port once held "404" (127.0.0.1:40413), in the summary line.
    warned = [line for line in published.stderr.splitlines() if "404" in line.replace(bucket.endpoint_url, "")]
    assert warned == [
        "s3-publish: S3_PUBLISH_REDIRECTS: old/gone.html -> /nope.html, but the site has no nope.html: "
        "visitors would get a 404 there; fix the target"
    ]
    assert "old/gone.html" in bucket.site_keys()  # a warning: the publish goes on


def test_a_build_with_three_thousand_redirects_hands_them_to_the_bucket_read(site: Site, bucket: Bucket) -> None:
    """The settings reach the process that reads the bucket on its standard input: on its command line,
    an argument holds 128 KiB, and 1,500 redirects used to end the build with a traceback."""
    site.settings["S3_PUBLISH_REDIRECTS"] = {f"old/{n:05}-a-long-enough-slug.html": "/post-1.html" for n in range(3000)}

    built = site.build("-e", "S3_PUBLISH_DRY_RUN=true")

    assert built.returncode == 0, built.output[-2000:]
    assert "Traceback" not in built.output and "Argument list too long" not in built.output
    assert built.report is not None
    assert sum(item["reason"] == "redirect" for item in built.report["uploaded"]) == 3000


def test_a_redirect_over_a_page_of_the_site_is_refused_before_anything_is_written(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_REDIRECTS"] = {"post-1.html": "/post-2.html"}

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 2, build.output
    (line,) = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert "S3_PUBLISH_REDIRECTS: post-1.html is a file in" in line
    assert bucket.all_keys() == set()


def test_a_slug_change_leaves_a_working_redirect(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    site.article("post-1", "Post number 1.", category="news")
    (site.content / "post-1.rst").write_text(
        (site.content / "post-1.rst").read_text().replace(":slug: post-1", ":slug: first-post")
    )

    planned = site.build("-e", "S3_PUBLISH_DRY_RUN=true", env=dict(os.environ, COLUMNS="400"))
    assert "redirect post-1.html -> /first-post.html" in planned.output
    bucket.proxy.clear()
    moved = site.build()

    assert moved.returncode == 0, moved.output
    assert moved.report is not None
    assert {"key": "post-1.html", "reason": "redirect"} in [
        {"key": item["key"], "reason": item["reason"]} for item in moved.report["uploaded"]
    ]
    assert moved.report["deleted"] == []
    sent = {r.key: r.headers for r in bucket.proxy.put_bodies()}  # SeaweedFS keeps no redirect header
    assert sent["post-1.html"]["x-amz-website-redirect-location"] == "/first-post.html"
    assert b'url=/first-post.html"' in bucket.body("post-1.html")
    assert "first-post.html" in bucket.site_keys()


def test_a_url_pattern_change_of_200_articles_gives_200_redirects_and_no_deletes(site: Site, bucket: Bucket) -> None:
    for number in range(4, 201):
        site.article(f"post-{number}", f"Post number {number}.")
    site.settings["S3_PUBLISH_MAX_DELETES"] = 0  # a delete would fail the publish
    assert site.build().returncode == 0

    site.settings |= {"ARTICLE_URL": "posts/{slug}/", "ARTICLE_SAVE_AS": "posts/{slug}/index.html"}
    bucket.proxy.clear()
    moved = site.build()

    assert moved.returncode == 0, moved.output
    assert moved.report is not None and moved.report["deleted"] == []
    redirected = {item["key"] for item in moved.report["uploaded"] if item["reason"] == "redirect"}
    assert redirected == {f"post-{number}.html" for number in range(1, 201)}
    sent = {r.key: r.headers for r in bucket.proxy.put_bodies()}
    assert sent["post-7.html"]["x-amz-website-redirect-location"] == "/posts/post-7/"
    assert b'url=/posts/post-7/"' in bucket.body("post-7.html")


def test_strip_index_html_on_a_store_that_keeps_folder_keys(site: Site, moto_server: MotoServer) -> None:
    """moto, like S3, keeps a key that ends in '/' with its bytes (SeaweedFS and MinIO do not)."""
    s3 = boto3.client(
        "s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1",
        aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET,
    )  # fmt: skip
    name = f"strip-{os.getpid()}-{time.monotonic_ns()}"
    s3.create_bucket(Bucket=name)
    site.settings |= {
        "S3_PUBLISH_BUCKET": name,
        "S3_PUBLISH_ENDPOINT_URL": moto_server.endpoint_url,
        "S3_PUBLISH_STRIP_INDEX_HTML": True,
        "ARTICLE_URL": "posts/{slug}/",
        "ARTICLE_SAVE_AS": "posts/{slug}/index.html",
    }

    first = site.build(env=dict(os.environ, COLUMNS="400"))
    assert first.returncode == 0, first.output

    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert {"index.html", "posts/post-1/", "posts/post-2/"} <= keys
    assert not [key for key in keys if key.endswith("/index.html")]
    page = s3.get_object(Bucket=name, Key="posts/post-1/")
    assert page["ContentType"].startswith("text/html")
    assert page["Body"].read() == (site.output / "posts" / "post-1" / "index.html").read_bytes()
    rebuilt = site.build()
    assert rebuilt.returncode == 0 and rebuilt.report is not None and rebuilt.report["uploaded"] == []

    site.settings["S3_PUBLISH_STRIP_INDEX_HTML"] = False
    assert site.build().returncode == 0
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert "posts/post-1/index.html" in keys and "posts/post-1/" not in keys


def test_strip_index_html_on_seaweedfs_stops_with_one_line_naming_the_setting(site: Site, bucket: Bucket) -> None:
    site.settings |= {
        "S3_PUBLISH_STRIP_INDEX_HTML": True,
        "ARTICLE_URL": "posts/{slug}/",
        "ARTICLE_SAVE_AS": "posts/{slug}/index.html",
    }

    build = site.build(env=dict(os.environ, COLUMNS="400"))

    assert build.returncode == 2, build.output
    (line,) = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert "keeps no bytes under keys that end in '/'" in line and "S3_PUBLISH_STRIP_INDEX_HTML = False" in line
    assert bucket.all_keys() == set()  # found out by asking the store: no page, no manifest, no probe left


def test_a_redirect_from_a_folder_key_on_seaweedfs_names_the_entry_and_writes_nothing(
    site: Site, bucket: Bucket
) -> None:
    site.settings["S3_PUBLISH_REDIRECTS"] = {"old/": "/post-1.html"}

    build = site.build(env=dict(os.environ, COLUMNS="400"))

    assert build.returncode == 2, build.output
    (line,) = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert "S3_PUBLISH_REDIRECTS redirects from 'old/'" in line and "redirect from old/index.html instead" in line
    assert bucket.all_keys() == set()
