"""The S3 boundary: where botocore says requests go, with its credentials, proxies and
retries; obstore and boto3 send them; failures read as one line.

Each test here stands for a way the earlier hand-written transport diverged
from a user's AWS setup (issue 12, points 1 to 12).
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import trustme

from devtools import proxy as proxy_module
from devtools import seaweed
from pelican_s3_publish.bucket import S3Bucket
from pelican_s3_publish.early_read import MANY_WRITES
from pelican_s3_publish.settings import Settings
from tests.conftest import FAKE_SECRET, Bucket, SharedServer, Site, md5_tree, new_bucket, s3_client, stored_manifest

MANIFEST = ".s3-publish-manifest.json.gz"


def wide() -> dict[str, str]:
    """The test's environment, wide enough that one log line stays one line."""
    return dict(os.environ, COLUMNS="400")


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "s3-publish:" in line]
    assert len(lines) == 1 and "Traceback" not in output, output
    return " ".join(lines[0].split())


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def tls_front(ca: trustme.CA, s3_server: seaweed.SeaweedServer) -> Iterator[proxy_module.Proxy]:
    """SeaweedFS behind a TLS front whose certificate the test CA signed."""
    front = proxy_module.Proxy(s3_server.endpoint_url, tls=_tls_context(ca)).start()
    yield front
    front.stop()


@pytest.fixture
def forward(s3_server: seaweed.SeaweedServer, site: Site) -> Iterator[proxy_module.Proxy]:
    """A forward proxy to SeaweedFS, for a site that names SeaweedFS itself as its endpoint."""
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = s3_server.endpoint_url
    started = proxy_module.Proxy(s3_server.endpoint_url).start()
    yield started
    started.stop()


# 1. A proxy named https:// is spoken to over TLS, credentials and all.
def test_an_https_proxy_with_credentials_is_spoken_to_over_tls(
    site: Site, bucket: Bucket, s3_server: seaweed.SeaweedServer, ca: trustme.CA, ca_file: str
) -> None:
    tls_proxy = proxy_module.Proxy(s3_server.endpoint_url, tls=_tls_context(ca)).start()
    try:
        site.settings["S3_PUBLISH_ENDPOINT_URL"] = s3_server.endpoint_url
        address = tls_proxy.url.removeprefix("https://")
        env = dict(os.environ, HTTP_PROXY=f"https://user:pass@{address}", AWS_CA_BUNDLE=ca_file)

        build = site.build(env=env)

        assert build.returncode == 0, build.output
        assert bucket.site_keys() == set(md5_tree(site.output))
        through = tls_proxy.put_bodies()  # the proxy only speaks TLS: these came encrypted
        assert {r.key for r in through} == set(md5_tree(site.output))
        basic = "Basic " + base64.b64encode(b"user:pass").decode()
        assert {r.headers.get("proxy-authorization") for r in through} == {basic}
    finally:
        tls_proxy.stop()


# 2. NO_PROXY entries with a port, and a proxy user without a password, read as botocore reads them.
def test_no_proxy_with_a_port_goes_direct(
    site: Site, bucket: Bucket, s3_server: seaweed.SeaweedServer, forward: proxy_module.Proxy
) -> None:
    port = s3_server.endpoint_url.rsplit(":", 1)[1]
    env = dict(os.environ, HTTP_PROXY=forward.url, NO_PROXY=f"example.org,127.0.0.1:{port}")

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    assert bucket.site_keys() == set(md5_tree(site.output))
    assert forward.requests == []


def test_a_proxy_user_without_password_sends_no_credentials(
    site: Site, bucket: Bucket, forward: proxy_module.Proxy
) -> None:
    env = dict(os.environ, HTTP_PROXY=forward.url.replace("http://", "http://useronly@"))

    build = site.build(env=env)

    assert build.returncode == 0, build.output
    assert forward.put_bodies()
    assert not [r for r in forward.requests if "proxy-authorization" in r.headers]


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    (tmp_path / "aws-config").write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))


# 3. What the AWS config file and environment say about endpoints is botocore's to read.
@pytest.mark.parametrize(
    ("config", "endpoint"),
    [
        ("[default]\nregion = us-east-1\nuse_fips_endpoint = true\n", "https://my-site.s3-fips.us-east-1.amazonaws.com"),
        ("[default]\nregion = eu-west-1\nuse_dualstack_endpoint = true\n",
         "https://my-site.s3.dualstack.eu-west-1.amazonaws.com"),
        ("[default]\nregion = eu-west-1\nendpoint_url = https://store.example:9000\n", "https://store.example:9000"),
        ("[default]\nregion = eu-west-1\n", "https://my-site.s3.eu-west-1.amazonaws.com"),
    ],
    ids=["fips", "dual-stack", "config-file-endpoint", "plain"],
)  # fmt: skip
def test_endpoints_from_the_aws_config_file_are_followed(
    config: str, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, config)

    assert S3Bucket(Settings(bucket="my-site")).address.endpoint == endpoint


def test_the_environment_and_a_tilde_config_path_are_read_as_botocore_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x").write_text("[default]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", "~/x")
    assert S3Bucket(Settings(bucket="my-site")).address.region == "eu-central-1"

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://elsewhere.example")
    assert S3Bucket(Settings(bucket="my-site")).address.endpoint == "https://elsewhere.example"
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")

    monkeypatch.setenv("AWS_DEFAULTS_MODE", "in-region")
    assert S3Bucket(Settings(bucket="my-site")).connect_timeout_s == 1.1

    double_dash = S3Bucket(Settings(bucket="my--site", region="eu-west-1")).address
    assert (double_dash.endpoint, double_dash.virtual_hosted) == ("https://my--site.s3.eu-west-1.amazonaws.com", True)


# 4. S3 Express directory buckets: their own endpoint, signed for their own service.
def test_an_s3_express_directory_bucket_gets_its_zonal_endpoint() -> None:
    address = S3Bucket(Settings(bucket="site--usw2-az1--x-s3", region="us-west-2")).address

    assert address.endpoint == "https://site--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com"
    assert address.service == "s3express"


# 5. Every credential source botocore knows, AWS_SECURITY_TOKEN included.
def test_aws_security_token_is_sent_with_every_request(
    site: Site, open_server: seaweed.SeaweedServer | SharedServer
) -> None:
    """Against the SeaweedFS without identities: the other refuses session tokens for its static keys."""
    tokens = new_bucket(open_server.endpoint_url, s3_client(open_server.endpoint_url))
    try:
        site.settings |= {"S3_PUBLISH_BUCKET": tokens.name, "S3_PUBLISH_ENDPOINT_URL": tokens.endpoint_url}

        build = site.build(env=dict(os.environ, AWS_SECURITY_TOKEN="legacy-session-token"))

        assert build.returncode == 0, build.output
        assert len(tokens.proxy.put_bodies()) == len(md5_tree(site.output))
        assert {r.headers.get("x-amz-security-token") for r in tokens.proxy.requests} == {"legacy-session-token"}
    finally:
        tokens.proxy.stop()


# 6. Text beyond ASCII in metadata arrives; elsewhere in a header it is one line at once.
def test_metadata_beyond_ascii_is_published_and_reads_back(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_HEADERS"] = [("*.css", {"x-amz-meta-author": "José", "x-amz-meta-city": "日本"})]

    build = site.build()

    assert build.returncode == 0, build.output
    metadata = bucket.head("static/css/extra.css")["Metadata"]
    assert {name: str(make_header(decode_header(value))) for name, value in metadata.items()} == {
        "author": "José",
        "city": "日本",
    }
    bucket.proxy.clear()
    assert site.build().returncode == 0
    assert bucket.proxy.writes() == []  # what was sent is what is on record


def test_a_header_beyond_ascii_outside_metadata_is_a_settings_error(site: Site, bucket: Bucket) -> None:
    site.settings["S3_PUBLISH_HEADERS"] = [("*.css", {"Content-Disposition": "attachment; filename=é.css"})]

    build = site.build(env=wide())

    assert build.returncode == 2
    assert "must be ASCII" in _one_line(build.output)
    assert bucket.all_keys() == set()


# 7. A certificate the machine does not trust is named, at once; so is a refused connection.
def test_tls_with_the_right_ca_bundle_publishes(
    site: Site, bucket: Bucket, tls_front: proxy_module.Proxy, ca_file: str
) -> None:
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = tls_front.url

    build = site.build(env=dict(os.environ, AWS_CA_BUNDLE=ca_file))

    assert build.returncode == 0, build.output
    assert bucket.site_keys() == set(md5_tree(site.output))


def test_an_untrusted_certificate_is_named_quickly(site: Site, bucket: Bucket, tls_front: proxy_module.Proxy) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = tls_front.url
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    started = time.monotonic()

    result = site.publish_cli(env=env)

    took = time.monotonic() - started
    assert result.returncode == 1
    line = _one_line("s3-publish: " + result.stderr.strip())
    assert f"the TLS certificate of {tls_front.url} is not trusted" in line
    assert "AWS_CA_BUNDLE" in line
    assert took < 10  # the earlier transport retried for 21 s, then blamed the network
    assert bucket.all_keys() == set()


def test_a_refused_connection_is_reported_quickly(site: Site) -> None:
    site.build_only()
    site.settings["S3_PUBLISH_ENDPOINT_URL"] = f"http://127.0.0.1:{seaweed.free_ports(1)[0]}"
    started = time.monotonic()

    result = site.publish_cli()

    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:" in _one_line("s3-publish: " + result.stderr.strip())
    assert time.monotonic() - started < 10  # the earlier transport took 20 s


# 8. botocore's standard retries: 429 and RequestTimeout are retried too, and every retry is counted.
@pytest.mark.parametrize(
    "fault", [(429, "TooManyRequests"), (400, "RequestTimeout"), (500, "InternalError")], ids=["429", "timeout", "500"]
)
def test_what_botocore_retries_is_retried_and_counted(site: Site, bucket: Bucket, fault: proxy_module.Fault) -> None:
    failures = {"left": 2}
    lock = threading.Lock()

    def twice_on_the_logo(method: str, key: str) -> proxy_module.Fault | None:
        with lock:
            if method == "PUT" and key == "static/img/logo.png" and failures["left"]:
                failures["left"] -= 1
                return fault
        return None

    bucket.proxy.fault = twice_on_the_logo

    build = site.build()

    assert build.returncode == 0, build.output
    assert build.report is not None and build.report["retries"] == 2
    assert [r.status for r in bucket.proxy.requests if r.key == "static/img/logo.png"] == [fault[0], fault[0], 200]  # type: ignore[index]
    assert bucket.site_keys() == set(md5_tree(site.output))


# 9. A manifest write whose answer was lost is not taken for someone else's publish.
def test_a_lost_answer_to_the_manifest_write_is_not_a_concurrent_publish(site: Site, bucket: Bucket) -> None:
    manifest_writes = {"seen": 0}

    def lose_the_answer_to_the_record(method: str, key: str) -> proxy_module.Fault | None:
        """The second manifest write records the publish (the first claims the keys it changes)."""
        if method == "PUT" and key == MANIFEST:
            manifest_writes["seen"] += 1
            return "lost-answer" if manifest_writes["seen"] == 2 else None
        return None

    bucket.proxy.fault = lose_the_answer_to_the_record

    build = site.build()

    assert build.returncode == 0, build.output
    manifest_puts = [r.status for r in bucket.proxy.requests if r.method == "PUT" and r.key == MANIFEST]
    assert manifest_puts == [200, 200, 412]  # claimed; recorded, answer lost; the retry finds it there
    assert set(stored_manifest(bucket.body(MANIFEST))[1]) == set(md5_tree(site.output))
    bucket.proxy.clear()
    assert site.build().returncode == 0
    assert bucket.proxy.writes() == []


# 10. Nothing the package holds shows a secret when printed.
def test_no_secret_in_the_repr_of_anything_the_bucket_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-to-hide")
    made = S3Bucket(Settings(bucket="site", endpoint_url="http://127.0.0.1:9"))

    shown = repr(made) + "".join(repr(value) for value in vars(made).values())

    assert FAKE_SECRET not in shown
    assert "session-token-to-hide" not in shown


# 11. A large file goes up in parts at once; a failed abort never hides why the upload failed.
@pytest.fixture
def big_file_site(site: Site) -> Site:
    site.static("files/big.bin", os.urandom(3 * 5 * 1024 * 1024 + 1234))
    site.settings["S3_PUBLISH_PART_SIZE"] = 5 * 1024 * 1024
    return site


BIG = "static/files/big.bin"


def test_parts_of_a_large_file_go_up_concurrently(big_file_site: Site, bucket: Bucket) -> None:
    together = threading.Barrier(2)
    seen = {"two_at_once": False}

    def wait_for_a_second_part(method: str, key: str) -> None:
        if method == "PUT" and key == BIG:
            try:
                together.wait(timeout=5)
                seen["two_at_once"] = True
            except threading.BrokenBarrierError:
                pass

    bucket.proxy.fault = wait_for_a_second_part  # type: ignore[assignment]

    build = big_file_site.build()

    assert build.returncode == 0, build.output
    assert seen["two_at_once"]
    assert bucket.body(BIG) == (big_file_site.output / "static/files/big.bin").read_bytes()
    assert bucket.head(BIG)["ETag"].strip('"').endswith("-4")


def test_a_failed_abort_does_not_hide_the_failed_part(big_file_site: Site, bucket: Bucket) -> None:
    def deny_parts_and_aborts(method: str, key: str) -> proxy_module.Fault | None:
        if key == BIG and method == "PUT":
            return (403, "AccessDenied")
        if key == BIG and method == "DELETE":
            return (500, "InternalError")
        return None

    bucket.proxy.fault = deny_parts_and_aborts

    build = big_file_site.build(env=wide())

    assert build.returncode == 1
    assert f"access denied: PutObject on s3://{bucket.name}/{BIG}" in _one_line(build.output)
    assert BIG not in bucket.site_keys()


# 12. Nested builds are told from Pelican's signals, not from the call stack.
THREADED_SUBSITE = """
import threading
from pelican import Pelican, signals

def build_a_subsite_in_a_thread(pelican_obj):
    if pelican_obj.settings.get("IS_SUBSITE"):
        return
    settings = dict(pelican_obj.settings, IS_SUBSITE=True, OUTPUT_PATH=pelican_obj.output_path + "/sub",
                    DELETE_OUTPUT_DIRECTORY=False, S3_PUBLISH_REPORT=None)
    worker = threading.Thread(target=lambda: Pelican(settings).run())
    worker.start()
    worker.join()

def register():
    signals.finalized.connect(build_a_subsite_in_a_thread)
"""


def test_a_nested_build_in_another_thread_does_not_publish(site: Site, bucket: Bucket) -> None:
    (site.root / "threaded_subsite.py").write_text(THREADED_SUBSITE)
    site.settings |= {"PLUGIN_PATHS": [str(site.root)], "PLUGINS": ["threaded_subsite", "pelican_s3_publish"]}

    build = site.build()

    assert build.returncode == 0, build.output
    assert build.output.count("published to") == 1, build.output
    assert [r.key for r in bucket.proxy.writes() if r.key == MANIFEST] == [MANIFEST] * 2  # one publish: claim, record
    assert "sub/index.html" in bucket.site_keys()
    assert bucket.site_keys() == set(md5_tree(site.output))


A_THREAD_FIRST = """
import threading, time

def register():
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
"""


def test_a_build_already_running_a_thread_reads_and_writes_through_a_new_interpreter(
    site: Site, bucket: Bucket
) -> None:
    """A fork would copy locks another thread may hold, so the helper is a new interpreter: it gets the
    settings and then each write on its standard input, and answers on its output."""
    (site.root / "a_thread_first.py").write_text(A_THREAD_FIRST)
    site.settings |= {"PLUGIN_PATHS": [str(site.root)], "PLUGINS": ["a_thread_first", "pelican_s3_publish"]}
    site.article("first")
    site.static("img/a.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 64)

    first, again = site.build(), site.build()

    assert first.returncode == 0, first.output
    assert bucket.site_keys() == set(md5_tree(site.output))
    assert first.report is not None and {item["key"] for item in first.report["uploaded"]} == bucket.site_keys()
    assert again.returncode == 0, again.output
    assert again.report is not None and again.report["uploaded"] == []


def test_a_publish_imports_no_botocore_until_the_bucket_is_made() -> None:
    """The plugin's import and registration stay light: the boundary's libraries load when a publish runs."""
    probe = (
        "import sys, pelican_s3_publish; print(sorted(m for m in ('boto3', 'botocore', 'obstore') if m in sys.modules))"
    )

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"


# What the earlier transport's own tests promised, kept: every header arrives, a body changed on the way is
# refused, a proxy in the environment carries every request.
def test_puts_are_accepted_and_carry_every_header_and_their_body_s_digest(site: Site, bucket: Bucket) -> None:
    site.static("files/report 2026 (final) é+&.txt", b"odd name\n")
    site.settings["S3_PUBLISH_HEADERS"] = [
        ("*.txt", {"Cache-Control": "public,   max-age=60", "x-amz-meta-owner": "docs  team"}),
    ]

    build = site.build()

    assert build.returncode == 0, build.output
    assert bucket.site_keys() == set(md5_tree(site.output))
    sha256 = {r.key: r.headers.get("x-amz-content-sha256") for r in bucket.proxy.put_bodies()}
    for key in md5_tree(site.output):
        assert sha256[key] == hashlib.sha256((site.output / key).read_bytes()).hexdigest()
    head = bucket.head("static/files/report 2026 (final) é+&.txt")
    assert head["CacheControl"] == "public,   max-age=60"
    assert head["Metadata"] == {"owner": "docs  team"}
    assert head["ContentType"].startswith("text/plain")


def test_a_corrupted_body_is_refused_by_its_signed_digest(site: Site, bucket: Bucket) -> None:
    site.static("img/a.png", b"\x89PNG\r\n\x1a\n" + b"\x01" * 64)
    bucket.proxy.fault = lambda method, key: "corrupt" if method == "PUT" and key == "static/img/a.png" else None

    build = site.build(env=wide())

    assert build.returncode == 1
    line = _one_line(build.output)
    assert f"s3://{bucket.name}/static/img/a.png: BadDigest: the bytes were changed on the way" in line
    keys = bucket.site_keys()
    assert "static/img/a.png" not in keys
    assert not [key for key in keys if key.endswith(".html")]  # pages wait for every asset


def test_an_http_proxy_in_the_environment_is_used_for_every_request(
    site: Site, bucket: Bucket, forward: proxy_module.Proxy
) -> None:
    build = site.build(env=dict(os.environ, HTTP_PROXY=forward.url))

    assert build.returncode == 0, build.output
    assert bucket.site_keys() == set(md5_tree(site.output))
    assert {r.key for r in forward.put_bodies()} == set(md5_tree(site.output))


LOADED_LIBRARIES = (
    "import sys; from pelican_s3_publish.cli import main; code = main(sys.argv[1:]); "
    "s3 = ('boto3', 'botocore', 'obstore', 'pelican_s3_publish.bucket.s3'); "
    "print(sorted(m for m in s3 if m in sys.modules), code)"
)


def test_a_command_line_publish_loads_no_s3_library_in_its_own_process(site: Site) -> None:
    """The read happens in a child (issue 21), and so do the writes: the command itself never resolves the
    bucket (which cost a publish of one changed page half a second), nor loads the bucket that would."""
    site.article("first")
    site.build_only()
    site.write_settings()

    def libraries_loaded() -> str:
        command = [sys.executable, "-c", LOADED_LIBRARIES, "-q", "-s", "pelicanconf.py"]
        done = subprocess.run(command, cwd=site.root, capture_output=True, text=True, timeout=120)
        return done.stdout.strip() + done.stderr

    assert libraries_loaded() == "[] 0"  # a first publish, which writes
    assert libraries_loaded() == "[] 0"  # a no-op


def test_a_publish_of_many_writes_sends_them_from_its_own_process(site: Site, bucket: Bucket) -> None:
    """From `MANY_WRITES` on, the command sends the writes itself (through the helper each cost more CPU
    than resolving the bucket again): uploads and header updates land as they would through the helper,
    and the deletes, which can teach the bucket what the store does, still go through the helper."""
    many = [f"many/file-{number}.txt" for number in range(MANY_WRITES)]
    for relpath in many:
        site.static(relpath, f"{relpath}\n".encode())
    site.settings["S3_PUBLISH_MAX_DELETES"] = None
    site.build_only()
    sent_from_here = "writes to send: sending them from this process"

    first = site.publish_cli("-v")
    assert first.returncode == 0, first.stderr
    assert f"{len(md5_tree(site.output))} {sent_from_here}" in first.stderr  # the site's pages besides
    assert bucket.site_keys() == set(md5_tree(site.output))
    assert bucket.body("static/many/file-7.txt") == b"many/file-7.txt\n"
    assert bucket.head("static/many/file-7.txt")["ContentType"] == "text/plain; charset=utf-8"

    site.settings["S3_PUBLISH_HEADERS"] = [["static/many/*", {"Cache-Control": "max-age=5"}]]
    updated = site.publish_cli("-v")
    assert updated.returncode == 0, updated.stderr
    assert f"{MANY_WRITES} {sent_from_here}" in updated.stderr
    assert {bucket.head(f"static/{relpath}")["CacheControl"] for relpath in many[::50]} == {"max-age=5"}

    for relpath in many[1:]:
        (site.output / "static" / relpath).unlink()
    removed = site.publish_cli("-v")
    assert removed.returncode == 0, removed.stderr
    assert sent_from_here not in removed.stderr
    assert bucket.site_keys() == set(md5_tree(site.output))
