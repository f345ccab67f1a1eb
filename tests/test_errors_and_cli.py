"""What a user sees when something is wrong, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAKE_KEY_ID, FAKE_SECRET, Bucket, Site, md5_tree, sample_site_copy


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


def test_the_bucket_in_the_endpoint_s_path_is_named_before_any_request(site: Site, bucket: Bucket) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = f"{bucket.endpoint_url}/{bucket.name}"

    result = site.publish_cli()

    assert result.returncode == 2
    assert _one_error_line(result.stderr) == (
        f"s3-publish: S3_PUBLISH_ENDPOINT_URL {bucket.endpoint_url}/{bucket.name} has the bucket in its path: "
        f"give the server's address only ({bucket.endpoint_url}); the bucket goes in S3_PUBLISH_BUCKET"
    )
    assert bucket.proxy.requests == []


def test_a_path_in_the_endpoint_is_named_when_the_bucket_is_not_found(site: Site, bucket: Bucket) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = f"{bucket.endpoint_url}/s3"

    result = site.publish_cli()

    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert (
        f"bucket {bucket.name} was not found under {bucket.endpoint_url}/s3: the endpoint URL has a path (/s3)" in line
    )
    assert bucket.all_keys() == set()


def test_https_to_a_plain_http_server_says_tls_not_timed_out(site: Site, bucket: Bucket) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = bucket.endpoint_url.replace("http://", "https://")
    started = time.monotonic()

    for args in ((), ("--check",)):
        result = site.publish_cli(*args)

        assert result.returncode == 1
        assert (
            f"{site.settings['S3_PUBLISH_ENDPOINT_URL']} does not answer in TLS, as an https:// address needs: "
            "if the server speaks plain HTTP, use http:// in S3_PUBLISH_ENDPOINT_URL"
        ) in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    assert bucket.all_keys() == set()


def test_a_closed_pipe_ends_the_command_quietly(site: Site, bucket: Bucket) -> None:
    """`pelican-s3-publish --dry-run | head -3`, with `head` gone before the first line."""
    site.build_only()
    site.write_settings()
    for args in (["--dry-run"], ["--history"]):
        if args == ["--history"]:
            assert site.publish_cli().returncode == 0
        reader, writer = os.pipe()
        os.close(reader)
        done = subprocess.run(
            [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py", *args],
            cwd=site.root,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        os.close(writer)
        assert done.returncode == 141, done.stderr  # 128 + SIGPIPE, as a tool the pipe killed
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_verbose_says_in_a_user_s_words_what_it_took_on_record_without_sending(site: Site, bucket: Bucket) -> None:
    site.build_only()
    bucket.put("static/css/extra.css", (site.output / "static/css/extra.css").read_bytes(), ContentType="text/css")

    result = site.publish_cli("-v")

    assert result.returncode == 0, result.stderr
    assert (
        "s3-publish: files already in the bucket with the same bytes, put there by something else: 1; "
        "taken on record after a check of their headers, not sent again"
    ) in result.stderr.splitlines()
    assert "static/css/extra.css" not in {r.key for r in bucket.proxy.put_bodies()}
    again = site.publish_cli("-v")
    assert "put there by something else" not in again.stderr


def test_the_sample_publishconf_without_its_bucket_variable_says_what_to_set(tmp_path: Path) -> None:
    site = sample_site_copy(tmp_path)
    env = {name: value for name, value in os.environ.items() if not name.startswith("S3_PUBLISH_")}

    built = subprocess.run(
        [sys.executable, "-m", "pelican", "content", "-s", "publishconf.py"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert built.returncode == 1
    assert built.stderr.strip() == (
        "publishconf.py publishes to the bucket named in S3_PUBLISH_BUCKET, which is not set: "
        "S3_PUBLISH_BUCKET=my-bucket pelican content -s publishconf.py"
    )
    assert not (site / "output").exists()


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
    assert bucket.proxy.writes() == []  # not even the probe that asks a new bucket's store what it does


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


def test_a_command_that_fails_first_does_not_wait_for_its_bucket_read(site: Site) -> None:
    """The read's child holds no copy of the command's output: a caller reading it to the end (a pipe,
    a CI step) is not kept waiting by a server that never answers."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
    site.settings |= {
        "S3_PUBLISH_BUCKET": "silent-bucket",
        "S3_PUBLISH_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "S3_PUBLISH_TIMEOUT": 60,
    }
    started = time.monotonic()

    result = site.publish_cli("-o", "no-such-output")

    silent.close()
    assert result.returncode == 2
    assert "output directory" in result.stderr and "does not exist" in result.stderr
    assert time.monotonic() - started < 30  # the read alone would wait 60 s for its first answer
