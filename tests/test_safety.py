"""Interrupted and failed publishes leave the site working and the record true."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devtools import proxy as proxy_module
from devtools import seaweed
from tests.conftest import Bucket, Site, md5_tree, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"


def _manifest(bucket: Bucket) -> dict[str, list[object]]:
    return stored_manifest(bucket.body(MANIFEST))[1]


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


def test_a_delete_refused_per_key_is_reported_and_kept_on_record(site: Site, bucket: Bucket) -> None:
    assert site.build().returncode == 0
    (site.content / "post-3.rst").unlink()
    bucket.proxy.fault = lambda method, key: "refuse-first-delete" if method == "POST" else None

    failed = site.build(env=dict(os.environ, COLUMNS="300"))  # the message on one line

    assert failed.returncode == 1, failed.output
    lines = [line for line in failed.output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1 and "Traceback" not in failed.output, failed.output
    assert f"could not delete s3://{bucket.name}/post-3.html: AccessDenied" in lines[0]
    assert "post-3.html" in _manifest(bucket)  # still on record, so the next publish deletes it again
    bucket.proxy.fault = None

    retried = site.build()

    assert retried.returncode == 0, retried.output
    assert set(_manifest(bucket)) == set(md5_tree(site.output)) == bucket.site_keys()


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
            # A line may never come (the loop waits for changes): never block past the deadline.
            if select.select([process.stdout], [], [], 1)[0]:
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


def _build(root: Path, bucket: Bucket, name: str, numbers: range) -> Site:
    made = Site(root / name, bucket, {"S3_PUBLISH_ENABLED": False})
    for number in numbers:
        made.article(f"post-{number}", f"Post {number} as {name} has it.")
    assert made.build().returncode == 0
    return made


@pytest.mark.parametrize("held_at", ["HEAD", "PUT"], ids=["before-deletes", "at-manifest-write"])
def test_concurrent_publisher_is_told_and_overwrites_no_record(
    tmp_path: Path, bucket: Bucket, s3_server: seaweed.SeaweedServer, held_at: str
) -> None:
    """First publishes, then two builds race: first holds at its check before
    deleting (or at its manifest write) while second publishes in full."""
    base = _build(tmp_path, bucket, "base", range(1, 6))
    assert base.publish_cli().returncode == 0
    first = _build(tmp_path, bucket, "first", range(1, 4) if held_at == "HEAD" else range(1, 8))
    second = _build(tmp_path, bucket, "second", range(1, 7))
    other_door = proxy_module.Proxy(s3_server.endpoint_url).start()
    second.settings["S3_PUBLISH_ENDPOINT_URL"] = other_door.url
    first_held, second_done = threading.Event(), threading.Event()

    def hold_first(method: str, key: str) -> None:
        if method == held_at and key == MANIFEST:
            first_held.set()
            assert second_done.wait(120)

    bucket.proxy.fault = hold_first  # type: ignore[assignment]
    bucket.proxy.clear()
    racing = ThreadPoolExecutor(max_workers=1).submit(first.publish_cli)
    while not first_held.is_set() and not racing.done():
        time.sleep(0.05)
    try:
        assert second.publish_cli().returncode == 0
    finally:
        second_done.set()
        other_door.stop()
    lost = racing.result()

    assert lost.returncode == 1
    assert "someone else published to" in lost.stderr and "Traceback" not in lost.stderr
    assert not [r for r in bucket.proxy.writes() if r.method in ("DELETE", "POST")]
    assert sorted(_manifest(bucket)) == sorted(md5_tree(second.output))
    for key, digest in md5_tree(second.output).items():
        assert bucket.head(key)["ETag"].strip('"') == digest
    assert {"post-4.html", "post-5.html"} <= bucket.site_keys()  # first's deletes were not made

    bucket.proxy.fault = None
    assert first.publish_cli().returncode == 0  # publishing again, once they are done, works
    assert _manifest(bucket).keys() == md5_tree(first.output).keys()


def test_a_name_written_in_nfd_publishes_to_the_key_of_its_nfc_twin(site: Site, bucket: Bucket) -> None:
    """macOS writes accents decomposed (NFD): a site built there and on Linux must keep one key per file."""
    nfc = "docs/café.txt"
    site.static(unicodedata.normalize("NFD", nfc), b"accents\n")
    assert site.build().returncode == 0
    assert bucket.body(f"static/{nfc}") == b"accents\n"
    assert [key for key in bucket.site_keys() if "caf" in key] == [f"static/{nfc}"]

    (site.content / "static" / unicodedata.normalize("NFD", nfc)).rename(site.content / "static" / nfc)
    shutil.rmtree(site.output)
    bucket.proxy.clear()
    again = site.build()

    assert again.returncode == 0, again.output
    assert bucket.proxy.writes() == []


def test_two_files_that_map_to_one_key_are_named_and_nothing_is_written(site: Site, bucket: Bucket) -> None:
    nfc = "docs/café.txt"
    site.static(nfc, b"composed\n")
    site.static(unicodedata.normalize("NFD", nfc), b"decomposed\n")

    build = site.build(env=dict(os.environ, COLUMNS="400"))

    assert build.returncode == 2, build.output
    (line,) = [line for line in build.output.splitlines() if "s3-publish:" in line]
    assert "publish to the same key" in line
    assert line.count("café.txt") + line.count(unicodedata.normalize("NFD", "café.txt")) == 2
    assert bucket.all_keys() == set()
