"""The pure parts: globs, settings, ETags and the plan, without a server."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelican_s3_publish import etags
from pelican_s3_publish.errors import PublishError, RefusedError, SettingsError
from pelican_s3_publish.globs import first_match, matches
from pelican_s3_publish.local import Found, LocalFile, fingerprinted, identify, scan
from pelican_s3_publish.manifest import (
    COMPRESSED_BLOCK,
    MANIFEST_NAME,
    Listed,
    Manifest,
    Record,
    RemoteState,
    checked_listing,
    decode_manifest,
    encode_manifest,
)
from pelican_s3_publish.plan import make_plan, on_record
from pelican_s3_publish.remote import manifest_from
from pelican_s3_publish.settings import (
    ATOM_FEED_SETTINGS,
    DEFAULT_EXCLUDE,
    DEFAULT_MAX_DELETES,
    RSS_FEED_SETTINGS,
    DeleteLimit,
    from_pelican,
)

HTML = (("content-type", "text/html; charset=utf-8"),)


@pytest.mark.parametrize(
    ("pattern", "relpath", "expected"),
    [
        ("*.html", "a/b/index.html", True),
        ("theme/*", "theme/css/main.css", True),
        ("theme/*", "other/theme/x.css", False),
        (".git/", "sub/.git/config", True),
        (".git/", ".gitignore", False),
        ("drafts/", "drafts/a.html", True),
        ("*~", "notes.txt~", True),
    ],
)
def test_globs(pattern: str, relpath: str, expected: bool) -> None:
    assert matches(pattern, relpath) is expected


GLOB = st.text(alphabet="ab.*?/[!^]", min_size=1, max_size=6).filter(lambda p: not re.search(r"\[[^]]*/", p))


@settings(max_examples=1000)
@given(st.lists(GLOB, min_size=1, max_size=6), st.text(alphabet="ab./^", min_size=1, max_size=10))
def test_a_settings_patterns_answer_as_each_pattern_in_turn_would(patterns: list[str], relpath: str) -> None:
    """Patterns matched by what each can see (name, folders, path) give the first that matches, as trying
    them one by one against the whole path does."""
    expected = next((pattern for pattern in patterns if matches(pattern, relpath)), None)
    assert first_match(tuple(patterns), relpath) == expected


def test_default_excludes_keep_well_known_and_drop_junk(tmp_path: Path) -> None:
    for name in (
        ".well-known/security.txt",
        "index.html",
        ".DS_Store",
        "a/Thumbs.db",
        ".git/HEAD",
        ".env",
        "page.html.swp",
        "page.html~",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    found = {f.relpath for f in scan(tmp_path, DEFAULT_EXCLUDE)}

    assert found == {".well-known/security.txt", "index.html"}


def test_scan_hashes_large_files_by_streaming(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "big.bin").write_bytes(data)

    (found,) = scan(tmp_path, ())
    (file,) = identify([found], lambda found: None)

    assert (file.md5, file.sha256, file.size) == (
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
        len(data),
    )


class _IdleBeside:
    """Somewhere beside the scan that is always idle, and hashes what it is given at once."""

    def __init__(self) -> None:
        self.given: list[list[tuple[str, str]]] = []

    def idle(self) -> bool:
        return True

    def fingerprint(self, files: list[tuple[str, str]]) -> Callable[[], list[Found]]:
        self.given.append(files)
        found = fingerprinted(files)
        return lambda: found


def test_a_scan_that_hands_files_beside_it_finds_what_a_scan_alone_finds(tmp_path: Path) -> None:
    """The later files are handed over, cut where each side has as much to hash: here one large file
    outweighs sixty small ones."""
    for number in range(60):
        (tmp_path / f"page-{number:02}.html").write_bytes(b"x" * number * 100)
    (tmp_path / "zz.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    beside = _IdleBeside()

    shared = scan(tmp_path, (), beside=beside)

    assert shared == scan(tmp_path, ())
    assert beside.given == [[("zz.bin", str(tmp_path.resolve() / "zz.bin"))]]


def test_identify_takes_the_recorded_md5_only_for_the_bytes_recorded(tmp_path: Path) -> None:
    (tmp_path / "same.html").write_bytes(b"same")
    (tmp_path / "edited.html").write_bytes(b"edited")
    recorded = {
        "same.html": Record("md5-on-record", 4, "md5-on-record", HTML, hashlib.sha256(b"same").hexdigest()),
        "edited.html": Record("md5-before", 6, "md5-before", HTML, hashlib.sha256(b"before").hexdigest()),
    }

    files = identify(scan(tmp_path, ()), on_record(recorded))

    assert {f.relpath: f.md5 for f in files} == {
        "edited.html": hashlib.md5(b"edited").hexdigest(),
        "same.html": "md5-on-record",
    }


def test_settings_defaults_and_prefix() -> None:
    settings = from_pelican({"S3_PUBLISH_BUCKET": "my-site", "S3_PUBLISH_PREFIX": "blog"})

    assert settings.prefix == "blog/"
    assert settings.delete is True
    assert settings.acl is None
    with pytest.raises(SettingsError, match="S3_PUBLISH_PREFIX"):
        from_pelican({"S3_PUBLISH_BUCKET": "my-site", "S3_PUBLISH_PREFIX": "a/../b"})


def test_multipart_etags_of_other_tools_are_recognised(tmp_path: Path) -> None:
    data = os.urandom(11 * 1024 * 1024)
    path = tmp_path / "f"
    path.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    for part_mib in (5, 8):
        size = part_mib * 1024 * 1024
        parts = [hashlib.md5(data[i : i + size]).digest() for i in range(0, len(data), size)]
        etag = f'"{etags.multipart_etag(parts)}"'
        assert etags.matches_content(str(path), len(data), md5, etag)
    assert not etags.matches_content(str(path), len(data), md5, '"0123456789abcdef0123456789abcdef-3"')
    assert etags.matches_content(str(path), len(data), md5, f'"{md5}"')


def _file(relpath: str, md5: str = "a" * 32, size: int = 1) -> LocalFile:
    return LocalFile(relpath, "/dev/null", size, md5, "sha-" + md5, b"")


def _state(records: dict[str, Record], listing: dict[str, Listed]) -> RemoteState:
    return RemoteState(listing, Manifest(records, "etag"))


def test_plan_decides_each_case_and_orders_assets_first() -> None:
    old = Record("a" * 32, 1, "e1", HTML)
    stale = Record("c" * 32, 1, "e1", HTML)  # bytes no file has: its delete is a loss, not a move
    state = _state(
        {"same.html": old, "edited.html": old, "gone.html": old, "stale.html": stale, "retyped.html": old},
        {
            "same.html": Listed(1, "e1"),
            "edited.html": Listed(1, "e1"),
            "stale.html": Listed(1, "e1"),
            "retyped.html": Listed(1, "e1"),
            "foreign.txt": Listed(3, "zz"),
        },
    )
    files = [
        _file("same.html"),
        _file("edited.html", "b" * 32),
        _file("gone.html"),
        _file("new.css"),
        _file("retyped.html"),
    ]
    headers = {"retyped.html": (("content-type", "text/plain"),), "new.css": (("content-type", "text/css"),)}

    plan = make_plan(files, state, lambda f: headers.get(f.relpath, HTML), delete=True, max_deletes=DeleteLimit())

    assert [(u.file.relpath, u.reason) for u in plan.uploads] == [
        ("new.css", "new"),
        ("edited.html", "changed"),
        ("gone.html", "missing"),
    ]
    assert [h.file.relpath for h in plan.header_updates] == ["retyped.html"]
    assert plan.deletes == ("stale.html",)  # never foreign.txt
    assert set(plan.kept) == {"same.html"}
    with pytest.raises(RefusedError, match="S3_PUBLISH_MAX_DELETES"):
        make_plan(files, state, lambda f: HTML, delete=True, max_deletes=DeleteLimit(count=0))
    everything = make_plan(files, state, lambda f: HTML, delete="all", max_deletes=DeleteLimit())
    assert everything.deletes == ("foreign.txt", "stale.html")


def test_manifest_round_trip_shares_header_sets() -> None:
    records = {f"p{i}.html": Record("c" * 32, i, f"e{i}", HTML, f"{i:064x}") for i in range(100)}

    manifest = decode_manifest(encode_manifest(Manifest(records)), "m")

    assert manifest.records == records
    assert len(encode_manifest(Manifest(records))) < 4000


NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # any text a name can hold


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(NAMES, st.tuples(NAMES, st.integers(0, 2**53), NAMES, st.sampled_from(["", "d" * 64]))))
def test_a_manifest_of_any_names_reads_back_whole(rows: dict[str, tuple[str, int, str, str]]) -> None:
    """Each row is put together from its escaped strings (quotes, backslashes, control and line-separator
    characters, brackets and commas in names and ETags): it reads back as the record it was."""
    records = {relpath: Record(md5, size, etag, HTML, sha256) for relpath, (md5, size, etag, sha256) in rows.items()}

    assert decode_manifest(encode_manifest(Manifest(records)), "m").records == records


def test_a_manifest_larger_than_a_block_reads_back_whole() -> None:
    """Read a block of the body at a time: a head line longer than a block, rows and history lines across
    blocks, random (incompressible) digests."""
    records = {
        f"d{i % 7}/p\u00e9{i}.html": Record(
            os.urandom(16).hex(), i, f"e{i}" if i % 3 else "", (("x-amz-meta-n", str(i % 5)),), os.urandom(32).hex()
        )
        for i in range(5000)
    }
    sources = {f"content/{i}.md": f"posts/{i}.html" for i in range(20_000)}  # a head of about 700 KB
    history = tuple(json.dumps({"at": i, "note": "x" * 300}) for i in range(300))
    written = Manifest(records, sources=sources, history=history, in_flight=("a.html",))

    body = encode_manifest(written)
    read = decode_manifest(body, "m")

    assert len(body) > 4 * COMPRESSED_BLOCK
    assert read == replace(written, etag="m")


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body[: len(body) // 2],
        lambda body: body + body,
        lambda body: body[:-4] + b"\0\0\0\0",
        lambda body: b"<Error/>",
    ],
    ids=["cut short", "more after its end", "wrong size in its trailer", "not gzip"],
)
def test_a_damaged_manifest_is_one_line_saying_what_to_do(damage: Callable[[bytes], bytes]) -> None:
    records = {f"p{i}.html": Record(os.urandom(16).hex(), i, "e", HTML, os.urandom(32).hex()) for i in range(3000)}

    with pytest.raises(PublishError) as raised:
        manifest_from((damage(encode_manifest(Manifest(records))), "m"), "my-blog", "www/")

    assert str(raised.value) == (
        f"the manifest s3://my-blog/www/{MANIFEST_NAME} is unreadable: delete it and publish again "
        "(the bucket's objects are then adopted, not re-sent)"
    )


def test_a_version_1_manifest_reads_with_no_sha256() -> None:
    document = {
        "format": "pelican-s3-publish manifest",
        "version": 1,
        "header_sets": [dict(HTML)],
        "objects": {"index.html": ["c" * 32, 5, "e1", 0]},
    }

    manifest = decode_manifest(gzip.compress(json.dumps(document).encode()), "m")

    assert manifest.records == {"index.html": Record("c" * 32, 5, "e1", HTML, "")}


def test_the_command_line_reads_settings_as_pelican_does(tmp_path: Path) -> None:
    from pelican.settings import DEFAULT_CONFIG
    from pelican.settings import read_settings as pelican_reads

    from pelican_s3_publish.cli import PELICAN_DEFAULTS
    from pelican_s3_publish.cli import read_settings as we_read

    (tmp_path / "content").mkdir()
    (tmp_path / "units_baseconf.py").write_text(
        'PATH = "content"\nOUTPUT_PATH = "public"\nS3_PUBLISH_BUCKET = "my-blog"\nFEED_ALL_ATOM = None\nlower = 1\n'
    )
    (tmp_path / "publishconf.py").write_text(
        "import os, sys\nsys.path.append(os.path.dirname(__file__))\nfrom units_baseconf import *\n"
        'S3_PUBLISH_PREFIX = "www"\nCATEGORY_FEED_RSS = "feeds/{slug}.rss.xml"\n'
    )
    path = str(tmp_path / "publishconf.py")
    overrides = {"S3_PUBLISH_DRY_RUN": True}

    ours, theirs = we_read(path, overrides), pelican_reads(path, override=dict(overrides))

    assert {name: DEFAULT_CONFIG[name] for name in PELICAN_DEFAULTS} == PELICAN_DEFAULTS
    for name in ("OUTPUT_PATH", *ATOM_FEED_SETTINGS, *RSS_FEED_SETTINGS):
        assert ours.get(name) == theirs.get(name), name
    assert ours["OUTPUT_PATH"] == str(tmp_path / "public")
    assert from_pelican(ours) == from_pelican(theirs)
    assert from_pelican(ours).dry_run and from_pelican(ours).prefix == "www/"


def test_a_version_3_manifest_reads_and_is_rewritten_as_lines() -> None:
    document = {
        "format": "pelican-s3-publish manifest",
        "version": 3,
        "header_sets": [dict(HTML)],
        "objects": {"index.html": ["c" * 32, 5, "c" * 32, 0, "d" * 64]},
        "pending_invalidations": {"E1": ["/index.html"]},
    }

    manifest = decode_manifest(gzip.compress(json.dumps(document).encode()), "m")
    lines = gzip.decompress(encode_manifest(manifest)).decode().splitlines()

    assert manifest.records == {"index.html": Record("c" * 32, 5, "c" * 32, HTML, "d" * 64)}
    assert manifest.pending == {"E1": ("/index.html",)}
    assert json.loads(lines[0])["version"] == 4
    assert [json.loads(line) for line in lines[1:]] == [["index.html", "c" * 32, 5, "c" * 32, 0, "d" * 64]]


def test_the_listing_keeps_one_copy_of_what_the_manifest_describes() -> None:
    same = Record("a" * 32, 3, "a" * 32, HTML, "")
    moved = Record("b" * 32, 3, "b" * 32, HTML, "")
    listed = {
        "blog/same.html": Listed(3, "a" * 32),
        "blog/moved.html": Listed(4, "c" * 32),
        "blog/foreign.txt": Listed(1, "f" * 32),
        "blog/.s3-publish-manifest.json.gz": Listed(9, "m"),
    }

    listing = checked_listing(listed, "blog/", {"same.html": same, "moved.html": moved, "gone.html": same})

    assert listing == {"same.html": same, "moved.html": Listed(4, "c" * 32), "foreign.txt": Listed(1, "f" * 32)}
    assert listing["same.html"] is same


@pytest.mark.parametrize(
    ("value", "limit"),
    [(None, DeleteLimit()), (50, DeleteLimit(50)), ("25%", DeleteLimit(share=0.25)), ([7, "5%"], DeleteLimit(7, 0.05))],
)
def test_max_deletes_takes_a_count_a_share_or_both(value: object, limit: DeleteLimit) -> None:
    settings = from_pelican({"S3_PUBLISH_BUCKET": "my-site", "S3_PUBLISH_MAX_DELETES": value})

    assert settings.max_deletes == limit


def _site_of(count: int) -> RemoteState:
    records = {f"p{i}.html": Record("c" * 32, 1, "c" * 32, HTML, "") for i in range(count)}
    listing = {relpath: Listed(1, "c" * 32) for relpath in records}
    return RemoteState(listing, Manifest(records))


def test_the_default_delete_limit_stops_a_build_that_lost_half_the_site() -> None:
    state = _site_of(37)
    kept = [LocalFile(f"p{i}.html", "", 1, "c" * 32, "", b"") for i in range(19)]

    with pytest.raises(RefusedError) as refused:
        make_plan(kept, state, lambda f: HTML, delete=True, max_deletes=DEFAULT_MAX_DELETES)

    assert str(refused.value) == (
        "this publish would delete 18 of the 37 objects it could (49%), over S3_PUBLISH_MAX_DELETES = 1000 and 25%: "
        "nothing was changed; check the output directory, or allow it once with -e S3_PUBLISH_MAX_DELETES=null"
    )


def test_a_share_never_refuses_a_few_deletes_from_a_small_site() -> None:
    state = _site_of(12)
    kept = [LocalFile(f"p{i}.html", "", 1, "c" * 32, "", b"") for i in range(4)]

    plan = make_plan(kept, state, lambda f: HTML, delete=True, max_deletes=DeleteLimit(share=0.25))

    assert len(plan.deletes) == 8


def test_the_history_keeps_the_last_publishes_within_its_bounds() -> None:
    from pelican_s3_publish import history

    lines: tuple[str, ...] = ()
    for number in range(history.MAX_ENTRIES + 5):
        entry = history.new_entry({}, [f"p{number}.html"], [], {"new": 1})
        lines = history.added(lines, entry)
    assert len(lines) == history.MAX_ENTRIES
    assert history.decode(lines[-1]).created == (f"p{history.MAX_ENTRIES + 4}.html",)
    assert history.decode(lines[0]).rows == 0  # nothing is rolled back to before the oldest: it needs no undo

    fits = history.new_entry({}, [f"q{i}.html" for i in range(history.MAX_ROWS)], [], {})
    assert [history.decode(line).id for line in history.added(lines, fits)][-2:] == [
        history.decode(lines[-1]).id,
        fits.id,
    ]
    too_big = history.new_entry({}, [f"q{i}.html" for i in range(history.MAX_ROWS + 1)], [], {})
    assert [history.decode(line).id for line in history.added(lines, too_big)] == [too_big.id]


def test_the_records_after_an_earlier_publish_undo_every_later_one() -> None:
    from pelican_s3_publish import history

    old, new = Record("a" * 32, 1, "a" * 32, HTML, ""), Record("b" * 32, 1, "b" * 32, HTML, "")
    first = history.new_entry({}, ["kept.html", "edited.html", "gone.html"], [], {})
    second = history.new_entry(
        {"kept.html": old, "edited.html": old, "gone.html": old}, ["edited.html", "added.html"], ["gone.html"], {}
    )
    now = {"kept.html": old, "edited.html": new, "added.html": new}

    assert history.records_at([first, second], now, first.id) == {
        "kept.html": old,
        "edited.html": old,
        "gone.html": old,
    }
    assert history.records_at([first, second], now, second.id) == now


def test_rollback_without_an_id_steps_back_and_a_second_one_steps_further() -> None:
    from dataclasses import replace

    from pelican_s3_publish import history

    p1, p2, p3 = (history.new_entry({}, [f"{n}.html"], [], {}) for n in range(3))
    assert history.default_target([p1, p2, p3]) == p2.id
    r1 = replace(history.new_entry({}, [], [], {}, "rollback", p2.id), id="r1")
    assert history.default_target([p1, p2, p3, r1]) == p1.id  # not p3: that would undo the rollback
    r2 = replace(history.new_entry({}, [], [], {}, "rollback", p1.id), id="r2")
    with pytest.raises(SettingsError, match=f"no earlier publish to roll back to: the bucket serves publish {p1.id}"):
        history.default_target([p1, p2, p3, r1, r2])
    p4 = history.new_entry({}, ["4.html"], [], {})
    assert history.default_target([p1, p2, p3, r1, p4]) == r1.id  # a new publish after a rollback: back to that
    with pytest.raises(
        SettingsError, match="the latest, newest first: " + ", ".join(e.id for e in (p4, r1, p3, p2, p1))
    ):
        history.records_at([p1, p2, p3, r1, p4], {}, "nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"old.html": "new.html"}, "the target of 'old.html' must be a path from the site's root"),
        ({"old.html": "ftp://x/y"}, "the target of 'old.html' must be a path from the site's root"),
        ({"a.html": "/b.html", "b.html": "/a.html"}, "S3_PUBLISH_REDIRECTS loops: a.html -> b.html -> a.html"),
        ({"a/index.html": "/a/"}, "S3_PUBLISH_REDIRECTS loops: a/index.html -> a/index.html"),
        ({"old.html": "/café"}, "must be ASCII: percent-encode it"),
        (["old.html"], "S3_PUBLISH_REDIRECTS must be a dict"),
    ],
)
def test_bad_redirects_are_one_line_naming_the_entry(value: object, expected: str) -> None:
    with pytest.raises(SettingsError) as refused:
        from_pelican({"S3_PUBLISH_BUCKET": "my-site", "S3_PUBLISH_REDIRECTS": value})

    assert expected in str(refused.value)


def test_a_page_moved_to_another_key_is_not_counted_as_a_loss() -> None:
    moved = Record("c" * 32, 1, "c" * 32, HTML)
    state = _state({f"old{i}.html": moved for i in range(20)}, {f"old{i}.html": Listed(1, "c" * 32) for i in range(20)})
    files = [LocalFile(f"new{i}/", "", 1, "c" * 32, "", b"") for i in range(20)]

    plan = make_plan(files, state, lambda f: HTML, delete=True, max_deletes=DEFAULT_MAX_DELETES)

    assert len(plan.deletes) == 20 and len(plan.uploads) == 20


def test_the_summary_counts_each_reason_in_its_own_words() -> None:
    from pelican_s3_publish.report import Report, Sent

    def sent(reason: str, count: int) -> list[Sent]:
        return [Sent(f"{reason}{n}.html", reason, 10, "text/html") for n in range(count)]

    uploaded = sent("new", 2) + sent("gzip", 42) + sent("redirect", 1) + sent("missing", 3)
    report = Report("blog", "", False, uploaded, [], 7, 1.5, bytes_sent=2048)

    assert report.summary() == (
        "published to s3://blog/: 2 new, 0 changed, 3 re-sent (missing from the bucket), "
        "42 re-sent for the gzip setting, 0 header-only, 1 redirect, 7 unchanged, 0 deleted; 2.0 KiB sent in 1.50 s"
    )
    two = Report("blog", "", True, sent("redirect", 2), ["a.html"], 0, 0.1, rolled_back_to="ab12cd34")
    assert two.summary() == (
        "dry run for a rollback of s3://blog/ to publish ab12cd34: would send 0 new, 0 changed, 0 header-only, "
        "2 redirects, 1 deleted; nothing was written"
    )


def test_a_redirect_target_is_known_by_its_page_or_its_strip_index_key() -> None:
    from pelican_s3_publish.redirects import unknown_targets

    pairs = (("old/a.html", "/posts/a/"), ("old/b.html", "/blog/posts/b/"), ("old/c.html", "/old/a.html#x"))
    assert unknown_targets((pairs[0], pairs[2]), {"posts/a/index.html"}, "") == []  # a page, another redirect
    assert unknown_targets(pairs[:1], {"posts/a/"}, "") == []  # published as the folder's key
    (line,) = unknown_targets(pairs[1:2], {"posts/a/"}, "blog/")
    assert line.startswith("S3_PUBLISH_REDIRECTS: old/b.html -> /blog/posts/b/, but the site has no posts/b/index.html")
