"""PUTs are signed and sent by the plugin itself: the server must accept them,
every header must arrive, and a configured HTTP proxy must still be honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import proxy as proxy_module
from devtools import seaweed
from pelican_s3_publish.client import Connection
from pelican_s3_publish.s3_wire import Address, S3Wire, botocore_address, plain_address
from pelican_s3_publish.settings import Settings
from tests.conftest import Bucket, Site, md5_tree


def test_signed_puts_are_accepted_and_carry_every_header(site: Site, bucket: Bucket) -> None:
    site.static("files/report 2026 (final) é+&.txt", b"odd name\n")
    site.settings["S3_PUBLISH_HEADERS"] = [
        ("*.txt", {"Cache-Control": "public,   max-age=60", "x-amz-meta-owner": "docs  team"}),
    ]

    build = site.build()

    assert build.returncode == 0, build.output
    puts = bucket.proxy.put_bodies()
    assert puts and all(r.headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD" for r in puts)
    assert bucket.site_keys() == set(md5_tree(site.output))
    head = bucket.head("static/files/report 2026 (final) é+&.txt")
    assert head["CacheControl"] == "public,   max-age=60"
    assert head["Metadata"] == {"owner": "docs  team"}
    assert head["ContentType"].startswith("text/plain")


def test_a_corrupted_body_is_refused_by_its_signed_md5(site: Site, bucket: Bucket) -> None:
    site.static("img/a.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 64)
    bucket.proxy.fault = lambda method, key: "corrupt" if method == "PUT" and key == "static/img/a.png" else None

    build = site.build()

    assert build.returncode == 1
    lines = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1 and "Traceback" not in build.output, build.output
    assert "static/img/a.png: BadDigest" in " ".join(build.output.split())
    keys = bucket.site_keys()
    assert "static/img/a.png" not in keys
    assert not [key for key in keys if key.endswith(".html")]  # pages wait for every asset


def test_an_http_proxy_in_the_environment_is_used_for_every_request(
    site: Site, bucket: Bucket, s3_server: seaweed.SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward = proxy_module.Proxy(s3_server.endpoint_url).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", forward.url)
        site.settings["S3_PUBLISH_ENDPOINT_URL"] = s3_server.endpoint_url

        build = site.build()

        assert build.returncode == 0, build.output
        assert bucket.site_keys() == set(md5_tree(site.output))
        sent = {r.key for r in forward.put_bodies()}
        assert sent == set(md5_tree(site.output))
    finally:
        forward.stop()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"bucket": "my-site", "region": "eu-west-1"},
         Address("https", "my-site.s3.eu-west-1.amazonaws.com", "/", "eu-west-1")),
        ({"bucket": "www.my.site", "region": "eu-west-1"},
         Address("https", "s3.eu-west-1.amazonaws.com", "/www.my.site/", "eu-west-1")),
        ({"bucket": "my-site", "region": "us-east-1"},
         Address("https", "my-site.s3.amazonaws.com", "/", "us-east-1")),
        ({"bucket": "site", "endpoint_url": "https://minio.example:9000"},
         Address("https", "minio.example:9000", "/site/", "us-east-1")),
        ({"bucket": "site", "endpoint_url": "http://127.0.0.1:8333", "region": "auto"},
         Address("http", "127.0.0.1:8333", "/site/", "auto")),
    ],
    ids=["aws-virtual-host", "aws-dotted-bucket", "aws-us-east-1", "custom-endpoint", "r2-style-region"],
)  # fmt: skip
def test_requests_go_where_botocore_would_send_them(settings: dict[str, str], expected: Address) -> None:
    chosen = Settings(**settings)  # type: ignore[arg-type]

    assert plain_address(chosen) == expected
    assert botocore_address(Connection(chosen).client, chosen.bucket) == expected


@pytest.mark.parametrize(
    "setup",
    [
        {"AWS_PROFILE": "work"},
        {"AWS_ENDPOINT_URL_S3": "https://elsewhere.example"},
        {"config": "[default]\ns3 =\n  addressing_style = path\n"},
    ],
    ids=["profile", "endpoint-env", "config-file-endpoint-setting"],
)  # fmt: skip
def test_botocore_works_it_out_when_the_setup_is_not_plain(
    setup: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "config" in setup:
        (tmp_path / "config").write_text(setup.pop("config"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name, value in setup.items():
        monkeypatch.setenv(name, value)

    assert S3Wire.without_botocore(Settings(bucket="my-site", region="eu-west-1")) is None
