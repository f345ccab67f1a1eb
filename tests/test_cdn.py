"""CloudFront follows the bucket: the paths a publish changed, folded within a budget, never lost.

CloudFront is moto in server mode, reached as botocore reaches any endpoint
(AWS_ENDPOINT_URL_CLOUDFRONT); the recording proxy in front of it fails on cue.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools import proxy as proxy_module
from pelican_s3_publish.cdn.cloudfront import MAX_WILDCARDS, _origin_names_bucket
from pelican_s3_publish.cdn.paths import fold_paths, url_paths
from tests.conftest import Bucket, MotoServer, Site, md5_tree, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"


def test_keys_become_the_paths_cloudfront_serves() -> None:
    keys = ["blog/index.html", "blog/posts/a b/index.html", "blog/café.html", "blog/*.txt", "other/x.html"]

    assert url_paths(keys, "/blog") == [
        "/",
        "/%2A.txt",
        "/caf%C3%A9.html",
        "/index.html",
        "/posts/a%20b/",
        "/posts/a%20b/index.html",
    ]
    assert url_paths(["index.html", "dir/index.html"], "") == ["/", "/dir/", "/dir/index.html", "/index.html"]


def test_folding_keeps_to_the_budget_deepest_folders_first() -> None:
    paths = [f"/posts/{year}/{n}/" for year in range(2020, 2026) for n in range(40)] + ["/index.html"]

    folded = fold_paths(paths, 30, MAX_WILDCARDS)

    assert folded == ["/index.html", *(f"/posts/{year}/*" for year in range(2020, 2026))]
    assert fold_paths(["/a.html", "/b.html"], 30, MAX_WILDCARDS) == ["/a.html", "/b.html"]
    assert fold_paths([f"/p{n}.html" for n in range(40)], 30, MAX_WILDCARDS) == ["/*"]  # only the root holds them


def test_five_thousand_paths_fold_within_cloudfront_s_limits() -> None:
    paths = [f"/{section}/{n}/page-{m}.html" for section in range(20) for n in range(25) for m in range(10)]

    folded = fold_paths(paths, 3000, MAX_WILDCARDS)

    assert len(folded) <= 3000
    assert sum(p.endswith("*") for p in folded) <= MAX_WILDCARDS
    for path in paths:  # every changed path is still covered
        assert path in folded or any(w.endswith("*") and path.startswith(w[:-1]) for w in folded)


@pytest.fixture
def distribution(moto_server: MotoServer, bucket: Bucket) -> Iterator[tuple[str, proxy_module.Proxy]]:
    """A distribution whose origin is the test bucket, behind a recording proxy that can fail on cue."""
    cloudfront = moto_server.cloudfront()
    created = cloudfront.create_distribution(DistributionConfig=_config(bucket.name, ""))
    recorder = proxy_module.Proxy(moto_server.endpoint_url).start()
    yield created["Distribution"]["Id"], recorder
    recorder.stop()


def _config(bucket: str, origin_path: str) -> dict[str, Any]:
    return {
        "CallerReference": uuid.uuid4().hex,
        "Comment": "test",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "site",
                    "DomainName": f"{bucket}.s3.eu-west-1.amazonaws.com",
                    "OriginPath": origin_path,
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https"},
    }


def _cdn_site(site: Site, distribution: tuple[str, proxy_module.Proxy], **settings: Any) -> dict[str, str]:
    """Settings for the distribution; the environment that points CloudFront at moto."""
    site.settings |= {"S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID": distribution[0], **settings}
    return dict(os.environ, AWS_ENDPOINT_URL_CLOUDFRONT=distribution[1].url, COLUMNS="400")


def _invalidated(moto_server: MotoServer, distribution_id: str) -> list[list[str]]:
    """The paths of each invalidation the distribution received, oldest first."""
    cloudfront = moto_server.cloudfront()
    listed = cloudfront.list_invalidations(DistributionId=distribution_id)["InvalidationList"].get("Items", [])
    found = [cloudfront.get_invalidation(DistributionId=distribution_id, Id=i["Id"])["Invalidation"] for i in listed]
    found.sort(key=lambda invalidation: invalidation["CreateTime"])
    return [sorted(i["InvalidationBatch"]["Paths"].get("Items", [])) for i in found]


def _pending(bucket: Bucket) -> dict[str, list[str]]:
    return dict(stored_manifest(bucket.body(MANIFEST))[0]["pending_invalidations"])


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _paths_of(keys: set[str]) -> list[str]:
    return url_paths(keys, "")


def test_an_edited_article_invalidates_exactly_the_pages_that_changed(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    assert site.build(env=env).returncode == 0
    before = md5_tree(site.output)
    site.article("post-2", "Post number 2, edited.", category="notes")

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    changed = _changed(before, md5_tree(site.output))
    assert "index.html" in changed and "post-2.html" in changed
    assert _invalidated(moto_server, distribution[0])[-1] == fold_paths(_paths_of(changed), 30, MAX_WILDCARDS)
    assert build.report is not None
    assert build.report["invalidations"][0]["distribution"] == distribution[0]
    assert "CloudFront:" in build.output
    assert _pending(bucket) == {}


def test_a_header_rule_change_and_a_deleted_page_are_invalidated(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    assert site.build(env=env).returncode == 0
    site.settings["S3_PUBLISH_HEADERS"] = [("*.css", {"Cache-Control": "max-age=60"})]
    (site.content / "static" / "img" / "logo.png").unlink()

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    sent = _invalidated(moto_server, distribution[0])[-1]
    assert "/static/css/extra.css" in sent  # a header-only update
    assert "/static/img/logo.png" in sent  # a deleted key: its 404 would be cached otherwise


def test_the_origin_path_and_the_prefix_are_taken_off(site: Site, bucket: Bucket, moto_server: MotoServer) -> None:
    cloudfront = moto_server.cloudfront()
    distribution = cloudfront.create_distribution(DistributionConfig=_config(bucket.name, "/blog"))["Distribution"]
    env = dict(os.environ, AWS_ENDPOINT_URL_CLOUDFRONT=moto_server.endpoint_url)
    site.settings |= {"S3_PUBLISH_PREFIX": "blog", "S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID": distribution["Id"]}
    assert site.build(env=env).returncode == 0
    site.article("post-1", "Edited once more.")

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    sent = _invalidated(moto_server, distribution["Id"])[-1]
    assert "/post-1.html" in sent and "/" in sent and "/index.html" in sent
    assert not [path for path in sent if path.startswith("/blog")]


def test_a_no_op_publish_makes_no_cloudfront_call(
    site: Site, bucket: Bucket, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    assert site.build(env=env).returncode == 0
    distribution[1].clear()

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    assert distribution[1].requests == []
    assert build.report is not None and build.report["invalidations"] == []


@pytest.mark.parametrize(
    ("fault", "said"),
    [((403, "AccessDenied"), "cloudfront:CreateInvalidation"), ("reset", "cannot reach CloudFront")],
    ids=["denied", "network"],
)
def test_a_failed_invalidation_is_kept_and_sent_by_the_next_publish_even_a_no_op(
    site: Site,
    bucket: Bucket,
    moto_server: MotoServer,
    distribution: tuple[str, proxy_module.Proxy],
    fault: proxy_module.Fault,
    said: str,
) -> None:
    env = _cdn_site(site, distribution)
    assert site.build(env=env).returncode == 0
    before = md5_tree(site.output)
    site.article("post-3", "Post three, edited.")
    distribution[1].fault = lambda method, key: fault if method == "POST" else None

    failed = site.build(env=env)

    assert failed.returncode == 1
    lines = [line for line in failed.output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1 and "Traceback" not in failed.output, failed.output
    assert "published, but CloudFront was not told" in lines[0]
    assert said in lines[0]
    assert "the next publish sends these paths" in lines[0]
    assert bucket.site_keys() == set(md5_tree(site.output))  # the bucket was published
    changed = _paths_of(_changed(before, md5_tree(site.output)))
    assert _pending(bucket) == {distribution[0]: changed}
    distribution[1].fault = None
    told_before = len(_invalidated(moto_server, distribution[0]))

    again = site.build(env=env)  # nothing changed since

    assert again.returncode == 0, again.output
    batches = _invalidated(moto_server, distribution[0])
    assert len(batches) == told_before + 1 and batches[-1] == fold_paths(changed, 30, MAX_WILDCARDS)
    assert _pending(bucket) == {}


def test_too_many_invalidations_in_progress_is_waited_out(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    busy = {"left": 2}

    def busy_twice(method: str, key: str) -> proxy_module.Fault | None:
        if method == "POST" and busy["left"]:
            busy["left"] -= 1
            return (400, "TooManyInvalidationsInProgress")
        return None

    distribution[1].fault = busy_twice

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    posts = [r for r in distribution[1].requests if r.method == "POST"]
    assert [r.status for r in posts] == [400, 400, 201]
    assert len(_invalidated(moto_server, distribution[0])) == 1
    assert _pending(bucket) == {}


def test_a_wrong_distribution_id_stops_before_anything_is_written(
    site: Site, bucket: Bucket, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    site.settings["S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID"] = "ENOSUCHDIST"

    build = site.build(env=env)

    assert build.returncode == 2
    assert "CloudFront has no distribution ENOSUCHDIST" in build.output
    assert bucket.all_keys() == set()


def test_many_changed_files_fold_into_wildcards_within_the_budget(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    for number in range(5000):
        site.static(f"gallery/{number // 250}/{number}.png", b"\x89PNG\r\n\x1a\n" + number.to_bytes(4, "big"))
    env = _cdn_site(site, distribution, S3_PUBLISH_CLOUDFRONT_MAX_PATHS=100)

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    sent = _invalidated(moto_server, distribution[0])[-1]
    assert len(sent) <= 100 and sum(p.endswith("*") for p in sent) <= MAX_WILDCARDS
    assert "/static/gallery/*" in sent or all(f"/static/gallery/{n}/*" in sent for n in range(20))


def test_dry_run_shows_the_invalidation_and_sends_nothing(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)
    site.build_only()

    result = site.publish_cli("--dry-run", env=env)

    assert result.returncode == 0, result.stderr
    assert f"invalidate  {distribution[0]}" in result.stdout
    assert "CloudFront:" in result.stderr
    assert _invalidated(moto_server, distribution[0]) == []
    assert bucket.all_keys() == set()


def test_waiting_says_when_the_invalidation_is_complete(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution, S3_PUBLISH_CLOUDFRONT_WAIT=True)

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    invalidation = build.report["invalidations"][0]["id"] if build.report else None
    assert f"CloudFront invalidation {invalidation} of {distribution[0]}: COMPLETED" in build.output
    assert [r.method for r in distribution[1].requests if "invalidation/" in r.key] == ["GET"]


@pytest.mark.parametrize(
    ("domain", "names_it"),
    [
        ("site.s3.amazonaws.com", True),
        ("site.s3.eu-west-1.amazonaws.com", True),
        ("site.s3-website-us-east-1.amazonaws.com", True),
        ("site.s3-website.eu-central-1.amazonaws.com", True),
        ("site.s3.dualstack.ap-south-1.amazonaws.com", True),
        ("other-site.s3.amazonaws.com", False),
        ("site.example.org", False),
    ],
)
def test_the_origin_for_the_bucket_is_found_by_its_domain(domain: str, names_it: bool) -> None:
    assert _origin_names_bucket(domain, "site") is names_it


def test_a_distribution_without_an_origin_for_the_bucket_is_one_line(
    site: Site, bucket: Bucket, moto_server: MotoServer
) -> None:
    cloudfront = moto_server.cloudfront()
    elsewhere = cloudfront.create_distribution(DistributionConfig=_config("another-bucket", ""))["Distribution"]
    site.settings["S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID"] = elsewhere["Id"]

    build = site.build(env=dict(os.environ, AWS_ENDPOINT_URL_CLOUDFRONT=moto_server.endpoint_url, COLUMNS="400"))

    assert build.returncode == 2
    assert f"has no origin for bucket {bucket.name}" in build.output
    assert bucket.all_keys() == set()


def test_check_finds_the_distribution_and_a_wrong_id_fails(
    site: Site, bucket: Bucket, moto_server: MotoServer, distribution: tuple[str, proxy_module.Proxy]
) -> None:
    env = _cdn_site(site, distribution)

    checked = site.publish_cli("--check", env=env)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok    CloudFront: distribution {distribution[0]} serves this bucket from origin path /" in checked.stdout
    assert not _invalidated(moto_server, distribution[0])  # checking never invalidates

    site.settings["S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID"] = "ENOSUCHDIST"
    wrong = site.publish_cli("--check", env=env)

    assert wrong.returncode == 1
    assert "FAIL  check: CloudFront has no distribution ENOSUCHDIST" in wrong.stdout
