"""Fixtures: one real SeaweedFS for the session, a fresh bucket per test,
a recording proxy in front of it, and real Pelican builds, each a process of its own."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devtools import proxy as proxy_module
from devtools import seaweed
from devtools.stores import StoreProfile
from tests.forked_runs import ForkedRuns

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY_ID = "AKIATESTFAKEKEY0001"
FAKE_SECRET = "fake-secret-for-tests-0001"
READER_KEY_ID = "AKIATESTREADONLY0002"
READER_SECRET = "fake-secret-read-only-0002"
# Real access control: the tests' own keys may do anything, the reader may only read.
S3_CONFIG = {
    "identities": [
        {
            "name": "tests",
            "credentials": [{"accessKey": FAKE_KEY_ID, "secretKey": FAKE_SECRET}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": READER_KEY_ID, "secretKey": READER_SECRET}],
            "actions": ["Read", "List"],
        },
    ],
    "kms": {"default_provider": "local", "providers": {"local": {"type": "local"}}},
}
KMS_KEY_ALIAS = "alias/seaweedfs-default"  # the key SeaweedFS's local KMS creates
_bucket_numbers = itertools.count(1)


# With parallel workers (pytest-xdist), the controller starts the servers every test shares and tells
# the workers where they are in this variable; each worker would otherwise run its own, idle most of
# the time. Tests make buckets of their own names, so sharing a server shares nothing else.
SHARED_SERVERS = "PELICAN_S3_PUBLISH_TEST_SERVERS"


@dataclass
class SharedServer:
    endpoint_url: str


def _shared(name: str) -> str | None:
    endpoints: dict[str, str] = json.loads(os.environ.get(SHARED_SERVERS, "{}"))
    return endpoints.get(name)


def pytest_configure(config: pytest.Config) -> None:
    if not getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        return  # not the controller of parallel workers
    base = Path(tempfile.mkdtemp(prefix="pelican-s3-publish-servers-"))
    with ThreadPoolExecutor() as starting:
        main = starting.submit(seaweed.start, base / "seaweedfs", S3_CONFIG)
        opened = starting.submit(seaweed.start, base / "seaweedfs-open")
        moto = starting.submit(start_moto)
    servers = {"s3_server": main.result(), "open_server": opened.result(), "moto_server": moto.result()}
    os.environ[SHARED_SERVERS] = json.dumps({name: server.endpoint_url for name, server in servers.items()})
    config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))
    for server in servers.values():
        config.add_cleanup(server.stop)


def _seaweed(name: str, folder: Path, config: dict[str, Any] | None) -> Iterator[seaweed.SeaweedServer | SharedServer]:
    """The controller's server `name` when it shares one, else one of this process's own."""
    shared = _shared(name)
    if shared is not None:
        yield SharedServer(shared)
        return
    server = seaweed.start(folder, config)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[seaweed.SeaweedServer | SharedServer]:
    yield from _seaweed("s3_server", tmp_path_factory.mktemp("seaweedfs"), S3_CONFIG)


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[seaweed.SeaweedServer | SharedServer]:
    """A SeaweedFS without identities: it checks no signatures (a profile may drop a
    header on the way) and takes any session token."""
    yield from _seaweed("open_server", tmp_path_factory.mktemp("seaweedfs-open"), None)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Recognisable fake credentials, and nothing from the developer's own setup."""
    for name in list(os.environ):
        if name.startswith("AWS_") and name != "AWS_CA_BUNDLE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def s3_client(endpoint_url: str, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
    )


@dataclass
class Bucket:
    name: str
    client: Any
    endpoint_url: str  # through the recording proxy
    proxy: proxy_module.Proxy

    def all_keys(self, prefix: str = "") -> set[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        return {
            item["Key"]
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix)
            for item in page.get("Contents", [])
        }

    def site_keys(self, prefix: str = "") -> set[str]:
        return {k for k in self.all_keys(prefix) if not k.endswith(".s3-publish-manifest.json.gz")}

    def body(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client.head_object(Bucket=self.name, Key=key))

    def put(self, key: str, body: bytes, **extra: Any) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body, **extra)


def new_bucket(endpoint_url: str, client: Any, profile: StoreProfile | None = None) -> Bucket:
    """A fresh bucket on the server, and a recording proxy in front of it (answering as `profile` says)."""
    name = f"test-{os.getpid()}-{next(_bucket_numbers)}"
    client.create_bucket(Bucket=name)
    recorder = proxy_module.Proxy(endpoint_url, profile=profile).start()
    return Bucket(name, client, recorder.url, recorder)


@pytest.fixture
def bucket(s3_server: seaweed.SeaweedServer) -> Iterator[Bucket]:
    made = new_bucket(s3_server.endpoint_url, s3_client(s3_server.endpoint_url))
    yield made
    made.proxy.stop()


def stored_manifest(body: bytes) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The manifest as any reader finds it: gzip'd JSON lines, a head, one row (an array) per object, then
    the history (an object per publish)."""
    head, *lines = (json.loads(line) for line in gzip.decompress(body).splitlines())
    return head, {row[0]: row[1:] for row in lines if isinstance(row, list)}


def md5_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class Build:
    returncode: int
    output: str  # stdout and stderr together, as a user sees them
    report: dict[str, Any] | None


class Site:
    """A real Pelican site on disk, built by `python -m pelican content` and published by
    `python -m pelican_s3_publish`, each in a process of its own (tests/forked_runs.py)."""

    def __init__(self, root: Path, bucket: Bucket | None, settings: dict[str, Any] | None = None):
        self.root = root
        self.content = root / "content"
        self.output = root / "output"
        self.content.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        self.settings: dict[str, Any] = {
            "SITENAME": "Test site",
            "SITEURL": "",
            "FEED_DOMAIN": "https://test.example",
            "PATH": "content",
            "TIMEZONE": "UTC",
            "DEFAULT_LANG": "en",
            "RELATIVE_URLS": True,
            "DELETE_OUTPUT_DIRECTORY": True,
            "PLUGINS": ["pelican_s3_publish"],
            "STATIC_PATHS": ["static"],
            "FEED_ALL_ATOM": "feeds/all.atom.xml",
            "CATEGORY_FEED_ATOM": "feeds/{slug}.atom.xml",
            "S3_PUBLISH_REPORT": str(root / "report.json"),
        }
        if bucket is not None:
            self.settings |= {
                "S3_PUBLISH_BUCKET": bucket.name,
                "S3_PUBLISH_ENDPOINT_URL": bucket.endpoint_url,
            }
        self.settings |= settings or {}

    def article(self, slug: str, body: str = "Some text.", *, category: str = "misc", tags: str = "a") -> Path:
        path = self.content / f"{slug}.rst"
        title = slug.replace("-", " ").title()
        path.write_text(
            f"{title}\n{'#' * len(title)}\n\n:date: 2026-01-01 10:00\n:category: {category}\n"
            f":tags: {tags}\n:slug: {slug}\n\n{body}\n",
            encoding="utf-8",
        )
        return path

    def static(self, relpath: str, data: bytes) -> Path:
        path = self.content / "static" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_settings(self) -> Path:
        lines = [f"{name} = {value!r}" for name, value in self.settings.items()]
        path = self.root / "pelicanconf.py"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def build(self, *extra: str, env: dict[str, str] | None = None, timeout: float = 600) -> Build:
        self.write_settings()
        report_path = Path(self.settings.get("S3_PUBLISH_REPORT", self.root / "no-report.json"))
        report_path.unlink(missing_ok=True)
        command = ["-m", "pelican", "content", "-s", "pelicanconf.py", "-o", "output", *extra]
        done = FORKED.run(command, self.root, env or dict(os.environ), timeout, merged=True)
        report = json.loads(report_path.read_text()) if report_path.exists() else None
        return Build(done.returncode, done.stdout, report)

    def build_only(self) -> None:
        """Build without publishing, for tests of the command line."""
        built = self.build("-e", "S3_PUBLISH_ENABLED=false")
        assert built.returncode == 0, built.output

    def publish_cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        self.write_settings()
        command = ["-m", "pelican_s3_publish", "-s", "pelicanconf.py", *args]
        return FORKED.run(command, self.root, env or dict(os.environ), timeout=600)


# Builds and command lines, each a process of its own, forked from one that has imported their libraries.
FORKED = ForkedRuns()


@pytest.fixture(scope="session", autouse=True)
def forked_runs() -> Iterator[ForkedRuns]:
    """This test process's forking server, stopped with it."""
    yield FORKED
    FORKED.stop()


@pytest.fixture
def site(tmp_path: Path, bucket: Bucket) -> Site:
    made = Site(tmp_path / "site", bucket)
    for number in range(1, 4):
        made.article(f"post-{number}", f"Post number {number}.", category="news" if number % 2 else "notes")
    made.static("img/logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    made.static("css/extra.css", b"body { color: #333; }\n")
    return made


def sample_site_copy(tmp_path: Path) -> Path:
    """sample_site as a user's clone has it: no output, no bytecode."""
    site = tmp_path / "sample_site"
    shutil.copytree(ROOT / "sample_site", site, ignore=shutil.ignore_patterns("output", "__pycache__"))
    return site


def uploaded_keys(build: Build) -> set[str]:
    assert build.report is not None, build.output
    return {item["key"] for item in build.report["uploaded"]}


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


@dataclass
class MotoServer:
    """moto in server mode: CloudFront over real HTTP, reached through AWS_ENDPOINT_URL_CLOUDFRONT."""

    endpoint_url: str
    process: subprocess.Popen[bytes] | None = None  # None: another process's, shared

    def cloudfront(self) -> Any:
        return boto3.client(
            "cloudfront",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_KEY_ID,
            aws_secret_access_key=FAKE_SECRET,
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def start_moto() -> MotoServer:
    port = seaweed.free_ports(1)[0]
    moto = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1).close()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    shared = _shared("moto_server")
    server = MotoServer(shared) if shared is not None else start_moto()
    yield server
    server.stop()


# The quick tier (`bash scripts/test.sh --quick`): a minute, and every module of the package run at
# least once; each entry says what it adds. The whole suite is the full tier.
QUICK = {
    "tests/test_units.py": "settings, globs, headers, plan, history, report, etags, redirects: pure logic",
    "tests/test_memory_bucket.py": "publish and transfer against bucket/memory.py",
    "tests/test_content_types.py::test_answers_do_not_come_from_the_machine": "content_types",
    "tests/test_publish.py::test_editing_one_article_sends_exactly_the_changed_files": (
        "a real build: plugin, local, remote (the child read), bucket/s3, probe, connections, resolution"
    ),
    "tests/test_rollback.py::test_history_is_newest_first_in_the_summary_s_words_and_as_json": (
        "cli, history, compression, redirects, through a real SeaweedFS"
    ),
    "tests/test_errors_and_cli.py::test_missing_bucket_fails_the_build_with_one_line": "failures, library_errors",
    "tests/test_bucket.py::test_what_botocore_retries_is_retried_and_counted[500]": "retries",
    "tests/test_stores.py::test_check_fails_in_one_line_for_a_bucket_that_is_not_there": "check",
    "tests/test_cdn.py::test_an_edited_article_invalidates_exactly_the_pages_that_changed": "cdn: paths, cloudfront",
    "tests/test_cloudflare.py::test_an_edit_purges_exactly_the_changed_pages_with_their_index_aliases": (
        "cdn/cloudflare"
    ),
    "tests/test_stopping.py::test_a_signal_stops_the_command_line_soon_and_records_what_landed[2-130]": "stopping",
    "tests/test_progress.py::test_the_command_line_shows_a_bar_on_a_terminal": "progress",
    "tests/test_plugin_loading.py::test_pelican_plugins_lists_it": "the pelican.plugins namespace entry",
}


# The longest tests (with four workers on two cores: a minute or more, then half a minute), longest first.
# scripts/test.sh hands out tests one at a time (`--dist load --maxschedchunk 1`), after a first two to
# each worker: these go first, one to each worker, so the run does not end waiting for one of them.
LONGEST = (
    "tests/test_chaos.py",
    "tests/test_faults.py::test_publish_killed_at_20_random_points_is_completed_by_the_next",
    "tests/test_bench.py",
    "tests/test_package.py::test_every_shell_command_in_the_readme_runs_or_says_why_not",  # builds the wheel
    "tests/test_cloudflare.py::test_five_thousand_changed_files_fold_into_prefixes_within_the_free_plan",
    "tests/test_faults.py::test_server_stopped_mid_publish_fails_in_bounded_time",
    "tests/test_cdn.py::test_many_changed_files_fold_into_wildcards_within_the_budget",
)


def _longest_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """LONGEST's tests first, the first `workers` of them each followed by a short one (a worker's first two)."""

    def rank(item: pytest.Item) -> int:
        return next((n for n, name in enumerate(LONGEST) if item.nodeid.startswith(name)), len(LONGEST))

    longest = sorted((item for item in items if rank(item) < len(LONGEST)), key=rank)
    rest = [item for item in items if rank(item) == len(LONGEST)]
    paired = [item for pair in zip(longest[:workers], rest, strict=False) for item in pair]
    return paired + longest[workers:] + rest[len(paired) // 2 :]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        items[:] = _longest_first(items, workers)
    for item in items:
        if item.nodeid in QUICK or item.nodeid.split("::")[0] in QUICK:
            item.add_marker(pytest.mark.quick)
    if config.getoption("markexpr") == "quick" and not config.option.file_or_dir:
        collected = {item.nodeid for item in items} | {item.nodeid.split("::")[0] for item in items}
        missing = sorted(set(QUICK) - collected)
        if missing:  # a renamed test would quietly leave its modules out of the tier
            raise pytest.UsageError(f"the quick tier names tests that do not exist: {', '.join(missing)}")
