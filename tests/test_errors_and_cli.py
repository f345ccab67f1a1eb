"""What a user sees when something is wrong, and the command line."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import FAKE_KEY_ID, FAKE_SECRET, Bucket, Site, md5_tree


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_missing_bucket_fails_the_build_with_one_line(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_BUCKET"] = "no-such-bucket-here"

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 1
    line = _one_error_line(build.output)
    assert "bucket no-such-bucket-here does not exist" in line
    assert "S3_PUBLISH_BUCKET" in line


def test_unreachable_endpoint_fails_quickly(site: Site) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = "http://127.0.0.1:9"
    started = time.monotonic()

    result = site.publish_cli(env=dict(os.environ))

    assert result.returncode == 1
    assert time.monotonic() - started < 60
    assert "cannot reach http://127.0.0.1:9" in _one_error_line(result.stderr)


def test_no_credentials_is_explained(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    site.build_only()

    result = site.publish_cli()

    assert result.returncode == 1
    assert "no AWS credentials found" in _one_error_line(result.stderr)


def test_credentials_never_appear_in_output(site: Site) -> None:
    site.build_only()
    verbose = site.publish_cli("-v", "--json")

    assert verbose.returncode == 0, verbose.stderr
    everything = verbose.stdout + verbose.stderr + (site.root / "report.json").read_text()
    assert FAKE_KEY_ID not in everything
    assert FAKE_SECRET not in everything


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("S3_PUBLISH_BUKET", "x", "unknown setting S3_PUBLISH_BUKET: did you mean S3_PUBLISH_BUCKET?"),
        ("S3_PUBLISH_WORKERS", "ten", "S3_PUBLISH_WORKERS must be a whole number from 1 to 256"),
        ("S3_PUBLISH_MAX_DELETES", -1, "S3_PUBLISH_MAX_DELETES must be None, a count such as 50, a share"),
        ("S3_PUBLISH_MAX_DELETES", "ten", "S3_PUBLISH_MAX_DELETES must be None, a count such as 50, a share"),
        ("S3_PUBLISH_MAX_DELETES", 2.5, "S3_PUBLISH_MAX_DELETES must be None, a count such as 50, a share"),
        ("S3_PUBLISH_MAX_DELETES", "250%", "S3_PUBLISH_MAX_DELETES must be None, a count such as 50, a share"),
        ("S3_PUBLISH_MAX_DELETES", [5, 6], "S3_PUBLISH_MAX_DELETES must be None, a count such as 50, a share"),
        ("S3_PUBLISH_ENABLED", "yes", "S3_PUBLISH_ENABLED must be True or False"),
        ("S3_PUBLISH_BUCKET", "My_Bucket!", "S3_PUBLISH_BUCKET must be a valid bucket name"),
        ("S3_PUBLISH_BUCKET", "ab", "S3_PUBLISH_BUCKET must be a valid bucket name (3-255 letters"),
        ("S3_PUBLISH_BUCKET", "b" * 256, "S3_PUBLISH_BUCKET must be a valid bucket name (3-255 letters"),
        ("S3_PUBLISH_PREFIX", "/blog", "S3_PUBLISH_PREFIX must be a relative key prefix"),
        ("S3_PUBLISH_PREFIX", "blog/../www", "S3_PUBLISH_PREFIX must be a relative key prefix"),
        ("S3_PUBLISH_PREFIX", "blog//www", "S3_PUBLISH_PREFIX must be a relative key prefix"),
        ("S3_PUBLISH_PREFIX", 7, "S3_PUBLISH_PREFIX must be a string"),
        ("S3_PUBLISH_SSE", "aes", 'S3_PUBLISH_SSE must be "AES256", "aws:kms" or None'),
        ("S3_PUBLISH_SSE_KMS_KEY_ID", "alias/x", 'set S3_PUBLISH_SSE = "aws:kms"'),
        ("S3_PUBLISH_TIMEOUT", 0, "S3_PUBLISH_TIMEOUT must be a whole number from 1 to 3600"),
        ("S3_PUBLISH_EXCLUDE", "*.psd", "S3_PUBLISH_EXCLUDE must be a list of glob patterns"),
        ("S3_PUBLISH_DELETE", "yes", 'S3_PUBLISH_DELETE must be True, False or "all"'),
        ("S3_PUBLISH_ACL", "public", "S3_PUBLISH_ACL must be a canned ACL"),
        ("S3_PUBLISH_HEADERS", [("*", {"Content-Type": "x/y"})], "use S3_PUBLISH_CONTENT_TYPES"),
    ],
)
def test_bad_settings_exit_2_and_write_nothing(
    site: Site, bucket: Bucket, name: str, value: object, expected: str
) -> None:
    site.settings[name] = value

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 2, build.output
    assert expected in _one_error_line(build.output)
    assert bucket.all_keys() == set()


def test_bad_bucket_name_is_named(site: Site) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_BUCKET"] = "s3://my-bucket/blog"

    result = site.publish_cli()

    assert result.returncode == 2
    assert "S3_PUBLISH_PREFIX" in _one_error_line(result.stderr)


def test_cli_dry_run_prints_the_plan_and_writes_nothing(site: Site, bucket: Bucket) -> None:
    site.build_only()

    result = site.publish_cli("--dry-run")

    assert result.returncode == 0, result.stderr
    planned = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("upload")]
    assert set(planned) == set(md5_tree(site.output))
    assert bucket.all_keys() == set()


def test_cli_json_report_has_the_promised_shape(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_PREFIX"] = "www"
    site.build_only()

    result = site.publish_cli("--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bucket"] == bucket.name
    assert report["prefix"] == "www/"
    assert report["dry_run"] is False
    assert isinstance(report["elapsed_s"], float)
    assert report["unchanged"] == 0
    assert report["deleted"] == []
    first = report["uploaded"][0]
    assert set(first) == {"key", "reason", "bytes", "content_type"}
    assert {item["key"] for item in report["uploaded"]} == {f"www/{k}" for k in md5_tree(site.output)}
    assert {item["reason"] for item in report["uploaded"]} == {"new"}


def test_pelican_extra_settings_override_the_bucket(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_BUCKET"] = "wrong-bucket"

    build = site.build("-e", f'S3_PUBLISH_BUCKET="{bucket.name}"')

    assert build.returncode == 0, build.output
    assert bucket.site_keys() == set(md5_tree(site.output))


def test_a_misspelt_bucket_inside_a_build_fails_instead_of_publishing_nothing(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_BUKET"] = site.settings.pop("S3_PUBLISH_BUCKET")

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 2, build.output
    assert "unknown setting S3_PUBLISH_BUKET: did you mean S3_PUBLISH_BUCKET?" in _one_error_line(build.output)
    assert bucket.all_keys() == set()


def test_settings_without_a_bucket_inside_a_build_say_so(site: Site, bucket: Bucket) -> None:
    del site.settings["S3_PUBLISH_BUCKET"]

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 2, build.output
    assert "S3_PUBLISH_BUCKET is not set" in _one_error_line(build.output)


def test_a_header_name_in_a_rule_gets_did_you_mean(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_HEADERS"] = [("*.html", {"Cache-Controll": "max-age=60"})]

    build = site.build(env=dict(os.environ, COLUMNS="300"))

    assert build.returncode == 2, build.output
    assert "did you mean 'cache-control'?" in _one_error_line(build.output)
    assert bucket.all_keys() == set()


def test_an_override_pelican_dropped_is_named_and_nothing_is_written(site: Site, bucket: Bucket) -> None:
    build = site.build(
        "-e", "S3_PUBLISH_DRY_RUN=true", "-e", 'S3_PUBLISH_PREFIX="staging"', env=dict(os.environ, COLUMNS="300")
    )

    assert build.returncode == 2, build.output
    line = _one_error_line(build.output)
    assert "-e S3_PUBLISH_DRY_RUN=true was dropped" in line
    assert "after a single -e" in line
    assert bucket.all_keys() == set()


def test_the_command_line_takes_every_e_and_python_literals(site: Site, bucket: Bucket) -> None:
    site.build_only()

    result = site.publish_cli("-e", "S3_PUBLISH_DRY_RUN=True", "-e", 'S3_PUBLISH_PREFIX="staging"', "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["prefix"] == "staging/"
    assert bucket.all_keys() == set()


def test_version_and_help_say_what_the_command_does(site: Site) -> None:
    from pelican_s3_publish import __version__

    version = site.publish_cli("--version")
    helped = site.publish_cli("--help")

    assert (version.returncode, version.stdout.strip()) == (0, f"pelican-s3-publish {__version__}")
    assert "does not build the site" in " ".join(helped.stdout.split())
    assert "3 refused for safety" in " ".join(helped.stdout.split())
