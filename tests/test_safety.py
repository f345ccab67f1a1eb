"""Interrupted and failed publishes leave the site working and the record true."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import Bucket, Site, md5_tree

MANIFEST = ".s3-publish-manifest.json.gz"


def _manifest(bucket: Bucket) -> dict[str, list[object]]:
    return dict(json.loads(gzip.decompress(bucket.body(MANIFEST)))["objects"])


def test_killed_publish_is_completed_without_resending_what_arrived(site: Site, bucket: Bucket) -> None:
    for number in range(60):
        site.static(f"files/f{number}.txt", f"file {number}\n".encode())
    site.settings |= {"S3_PUBLISH_ENABLED": False, "S3_PUBLISH_WORKERS": 2}
    assert site.build().returncode == 0
    bucket.proxy.latency_s = 0.05
    site.write_settings()
    command = [sys.executable, "-m", "pelican_s3_publish", "-s", "pelicanconf.py"]
    process = subprocess.Popen(command, cwd=site.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(bucket.proxy.put_bodies()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # requests already in flight reach the server
    arrived = {r.key for r in bucket.proxy.put_bodies() if r.status == 200}
    assert 10 <= len(arrived) < len(md5_tree(site.output))
    assert MANIFEST not in bucket.all_keys()
    bucket.proxy.latency_s = 0
    bucket.proxy.clear()

    completed = site.publish_cli()

    assert completed.returncode == 0, completed.stderr
    resent = {r.key for r in bucket.proxy.put_bodies()}
    assert resent.isdisjoint(arrived)
    assert bucket.site_keys() == set(md5_tree(site.output))
    for key, digest in md5_tree(site.output).items():
        assert bucket.head(key)["ETag"].strip('"') == digest


def test_failed_upload_is_not_recorded_and_deletes_do_not_run(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    (site.content / "post-3.rst").unlink()
    site.article("post-1", "Post 1, edited.")
    bucket.proxy.fault = lambda method, key: 403 if method == "PUT" and key == "post-1.html" else None

    failed = site.build()

    assert failed.returncode == 1, failed.output
    assert "post-1.html" in failed.output
    assert "Traceback" not in failed.output
    assert "post-3.html" in bucket.site_keys()  # the previous site is whole
    recorded = _manifest(bucket)
    assert recorded["post-1.html"][0] != md5_tree(site.output)["post-1.html"]
    bucket.proxy.fault = None
    bucket.proxy.clear()

    retried = site.build()

    assert retried.returncode == 0, retried.output
    assert "post-1.html" in {r.key for r in bucket.proxy.put_bodies()}
    assert "post-3.html" not in bucket.site_keys()
    assert _manifest(bucket)["post-1.html"][0] == md5_tree(site.output)["post-1.html"]


def test_transient_server_errors_are_retried(site: Site, bucket: Bucket) -> None:
    failures = {"left": 3}

    def flaky(method: str, key: str) -> int | None:
        if method == "PUT" and failures["left"] > 0:
            failures["left"] -= 1
            return 503
        return None

    bucket.proxy.fault = flaky
    build = site.build()

    assert build.returncode == 0, build.output
    assert build.report["retries"] >= 3
    assert bucket.site_keys() == set(md5_tree(site.output))


def test_autoreload_does_not_publish_unless_asked(site: Site, bucket: Bucket) -> None:
    def run_autoreload(expected: str) -> str:
        site.write_settings()
        command = [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output", "-r"]
        process = subprocess.Popen(
            command,
            cwd=site.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, COLUMNS="200"),
        )
        seen = ""
        deadline = time.monotonic() + 90
        assert process.stdout is not None
        while expected not in seen and time.monotonic() < deadline:
            seen += process.stdout.readline()
        process.kill()
        process.wait()
        return seen

    skipped = run_autoreload("not publishing")
    assert "S3_PUBLISH_ON_AUTORELOAD" in skipped
    assert bucket.all_keys() == set()

    site.settings["S3_PUBLISH_ON_AUTORELOAD"] = True
    published = run_autoreload("published to")
    assert "published to" in published
    assert bucket.site_keys() == set(md5_tree(site.output))


def test_invoke_livereload_builds_do_not_publish(site: Site, bucket: Bucket) -> None:
    """`invoke livereload` calls pelican.main from a task named livereload, as tasks.py does."""
    site.write_settings()
    tasks = (
        "import pelican\n"
        "def livereload():\n"
        "    pelican.main(['content', '-s', 'pelicanconf.py', '-o', 'output'])\n"
        "livereload()\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", tasks], cwd=site.root, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "not publishing" in done.stdout + done.stderr
    assert bucket.all_keys() == set()


def test_i18n_subsites_publish_once_from_the_top(site: Site, bucket: Bucket) -> None:
    site.settings |= {
        "PLUGINS": ["pelican.plugins.i18n_subsites", "pelican_s3_publish"],
        "I18N_SUBSITES": {"de": {"SITENAME": "Testseite"}, "fr": {"SITENAME": "Site de test"}},
    }

    build = site.build(env=dict(os.environ, COLUMNS="200"))

    assert build.returncode == 0, build.output
    assert build.output.count("published to") == 1
    keys = bucket.site_keys()
    assert {"index.html", "de/index.html", "fr/index.html"} <= keys
    assert keys == set(md5_tree(site.output))
