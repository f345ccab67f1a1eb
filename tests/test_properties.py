"""Properties that must hold for any input: key mapping, Content-Type, and the
plan (applied to any remote state, it leaves the remote equal to the local tree)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devtools import seaweed
from pelican_s3_publish import content_types
from pelican_s3_publish.headers import Headers, desired
from pelican_s3_publish.local import LocalFile, object_key, relpath_of, scan
from pelican_s3_publish.manifest import MANIFEST_NAME, Listed, Manifest, Record, RemoteState
from pelican_s3_publish.plan import HeaderUpdate, make_plan, records_after
from pelican_s3_publish.publish import publish
from pelican_s3_publish.settings import DEFAULT_EXCLUDE, DeleteLimit, from_pelican
from tests.conftest import Bucket

# Names a site may really hold, spaces, symbols and non-ASCII letters included;
# none starts like an excluded file (".", "#") or ends like one ("~").
SEGMENT = st.text(alphabet="abcXYZ019 -_=+%&@()'!,;éü中", min_size=1, max_size=10).filter(
    lambda s: s.strip() == s and s[-1] != "~"
)
SUFFIX = st.sampled_from(["", ".html", ".css", ".png", ".txt", ".xml", ".json", ".svg", ".gz", ".woff2"])
RELPATH = st.builds(
    lambda dirs, name, suffix: "/".join([*dirs, name + suffix]), st.lists(SEGMENT, max_size=2), SEGMENT, SUFFIX
)
CONTENT_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+-]+(; charset=utf-8)?$")


def _tree(paths: list[str]) -> list[str]:
    """Drop paths that would need to be both a file and a directory."""
    chosen: list[str] = []
    for path in sorted(set(paths)):
        if not any(c.startswith(path + "/") or path.startswith(c + "/") for c in chosen):
            chosen.append(path)
    return chosen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(RELPATH, min_size=1, max_size=12), st.sampled_from(["", "blog/", "a b/é/"]))
def test_every_file_maps_to_its_key_and_back(tmp_path: Path, paths: list[str], prefix: str) -> None:
    root = tmp_path / f"tree-{next(_counter)}"
    files = _tree(paths)
    for number, relpath in enumerate(files):
        target = root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"%d" % number)

    found = scan(root, DEFAULT_EXCLUDE)

    assert sorted(f.relpath for f in found) == sorted(files)
    keys = [object_key(prefix, file.relpath) for file in found]
    assert len(set(keys)) == len(keys)  # no two files on one key
    for file, key in zip(found, keys, strict=True):
        assert key.startswith(prefix) and relpath_of(prefix, key) == file.relpath
        assert Path(file.path) == root / file.relpath
        assert len(key.encode()) <= 1024


_counter = itertools.count()


@given(RELPATH, st.binary(max_size=600))
def test_content_type_is_always_well_formed(relpath: str, head: bytes) -> None:
    content_type, encoding = content_types.detect(relpath, head)

    assert CONTENT_TYPE.match(content_type), content_type
    if content_type.startswith("text/"):
        assert content_type.endswith("; charset=utf-8")
    if encoding is not None:
        assert encoding == "gzip"
        assert head.startswith(content_types.GZIP_MAGIC) or relpath.endswith(".svgz")
    if relpath.lower().endswith((".gz", ".tgz")):
        assert encoding is None


@given(RELPATH, st.binary(max_size=64), st.sampled_from(["application/x-custom", "text/plain", "font/woff2"]))
def test_an_override_always_wins_as_given(relpath: str, head: bytes, forced: str) -> None:
    assert content_types.detect(relpath, head, overrides=(("*", forced),))[0] == forced


# The plan against a model of S3: contents are small numbers, an object's
# ETag is opaque (as under SSE-KMS), and a manifest record is what was true
# when it was written. Objects whose headers were changed behind the plugin's
# back while keeping their ETag are outside the model: nothing short of a HEAD
# per object could see them.
KEYS = st.sampled_from(["index.html", "a.html", "b/c.html", "s.css", "i.png", "feeds/all.atom.xml", "x.txt"])
OBJECT = st.tuples(st.integers(0, 3), st.integers(0, 1))  # (content, header set)
HEADER_SETS: list[Headers] = [
    (("content-type", "text/html; charset=utf-8"),),
    (("cache-control", "max-age=60"), ("content-type", "text/html; charset=utf-8")),
]


def _md5(content: int) -> str:
    return f"{content:032x}"


def _sha256(content: int) -> str:
    return f"{content:064x}"


def _etag(content: int) -> str:
    return f"opaque-{content}"


def _local_file(relpath: str, content: int) -> LocalFile:
    return LocalFile(relpath, "/nowhere/" + relpath, content + 1, _md5(content), _sha256(content), b"")


def _remote_state(
    remote: dict[str, tuple[int, int]], history: dict[str, tuple[bool, int, int]]
) -> tuple[RemoteState, dict[str, tuple[int, int]]]:
    records = {}
    for relpath, (faithful, content, header_set) in history.items():
        if faithful and relpath in remote:
            content, header_set = remote[relpath]
        elif relpath in remote and remote[relpath][0] == content:
            continue  # same bytes, other headers, same ETag: outside the model
        records[relpath] = Record(_md5(content), content + 1, _etag(content), HEADER_SETS[header_set], _sha256(content))
    listing = {r: Listed(content + 1, _etag(content)) for r, (content, _) in remote.items()}
    return RemoteState(listing, Manifest(records, "m")), dict(remote)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(KEYS, OBJECT, min_size=1),
    st.dictionaries(KEYS, OBJECT),
    st.dictionaries(KEYS, st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 1))),
    st.sampled_from([True, "all", False]),
)
def test_applying_the_plan_makes_the_remote_equal_the_local_tree(
    local: dict[str, tuple[int, int]],
    remote: dict[str, tuple[int, int]],
    history: dict[str, tuple[bool, int, int]],
    delete: Any,
) -> None:
    state, bucket = _remote_state(remote, history)
    files = [_local_file(r, content) for r, (content, _) in sorted(local.items())]
    wanted = {r: HEADER_SETS[h] for r, (_, h) in local.items()}
    adoptable = {
        r: HEADER_SETS[bucket[r][1]]
        for r, (content, _) in local.items()
        if r in bucket and bucket[r][0] == content and r not in state.manifest.records
    }

    plan = make_plan(
        files, state, lambda f: wanted[f.relpath], delete=delete, max_deletes=DeleteLimit(), verified=adoptable
    )

    written = {}
    for task in [*plan.uploads, *plan.header_updates]:
        content = local[task.file.relpath][0]
        if isinstance(task, HeaderUpdate):
            assert bucket[task.file.relpath][0] == content  # a copy never stands in for new bytes
        bucket[task.file.relpath] = (content, HEADER_SETS.index(task.headers))
        written[task.file.relpath] = Record(_md5(content), content + 1, _etag(content), task.headers, _sha256(content))
    for relpath in plan.deletes:
        assert delete == "all" or relpath in state.manifest.records  # only what it published
        del bucket[relpath]
    assert {r: bucket[r] for r in local} == local
    leftovers = set(bucket) - set(local)
    if delete == "all":
        assert leftovers == set()
    elif delete is True:
        assert not leftovers & {r for r in state.manifest.records if r in remote}
    manifest = records_after(plan, state, written, plan.deletes)
    assert set(local) <= set(manifest)
    for relpath, record in manifest.items():  # the new manifest is true
        content, header_set = bucket[relpath]
        assert (record.md5, record.etag, record.headers) == (_md5(content), _etag(content), HEADER_SETS[header_set])


_prefixes = itertools.count()
FILE_BYTES = st.sampled_from([b"<p>one</p>", b"<p>two</p>", b"body{}", b"\x89PNG\r\n\x1a\n\x00", b""])


def _write_tree(root: Path, tree: dict[str, bytes]) -> None:
    for relpath, data in tree.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)


def _trees(paths: list[str], data: st.DataObject) -> dict[str, bytes]:
    return {path: data.draw(FILE_BYTES) for path in _tree(paths)}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.data(),
    st.lists(RELPATH, min_size=1, max_size=8),
    st.lists(RELPATH, min_size=1, max_size=8),
    st.sampled_from([True, "all"]),
)
def test_a_real_publish_makes_any_bucket_equal_the_output(
    bucket: Bucket,
    s3_server: seaweed.SeaweedServer,
    tmp_path: Path,
    data: st.DataObject,
    before_paths: list[str],
    after_paths: list[str],
    delete: Any,
) -> None:
    """Publish one tree, change the bucket behind the plugin's back, publish another."""
    number = next(_prefixes)
    prefix = f"example-{number}/"
    before, after = _trees(before_paths, data), _trees(before_paths + after_paths, data)
    after = {p: b for p, b in after.items() if data.draw(st.booleans()) or p not in before}
    assume(after)
    pelican_settings = {
        "S3_PUBLISH_BUCKET": bucket.name,
        "S3_PUBLISH_ENDPOINT_URL": s3_server.endpoint_url,
        "S3_PUBLISH_PREFIX": prefix,
        "S3_PUBLISH_DELETE": delete,
        "S3_PUBLISH_WORKERS": 4,
    }
    config = from_pelican(pelican_settings)
    _write_tree(tmp_path / f"before-{number}", before)
    _write_tree(tmp_path / f"after-{number}", after)
    if before:
        publish(config, tmp_path / f"before-{number}")
    tampered = data.draw(st.lists(st.sampled_from([*sorted(before), "foreign.txt", "x/foreign.bin"]), max_size=3))
    for relpath in tampered:
        bucket.put(prefix + relpath, b"changed behind its back")

    publish(config, tmp_path / f"after-{number}")

    keys = {k[len(prefix) :] for k in bucket.all_keys(prefix)} - {MANIFEST_NAME}
    for relpath, body in after.items():
        assert bucket.body(prefix + relpath) == body
        expected = dict(desired(relpath, body[:512], config))
        assert bucket.head(prefix + relpath)["ContentType"] == expected["content-type"]
    foreign = {r for r in tampered if r not in before}
    assert keys - set(after) <= (set() if delete == "all" else foreign)
