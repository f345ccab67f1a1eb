"""The listing in parts: whatever the keys, the ranges or folders listed side by side hold exactly what one
serial listing holds, each key once (issue 21)."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools import seaweed
from pelican_s3_publish import remote
from pelican_s3_publish.bucket import EVERY_KEY, Bucket, Capabilities, KeyRange, MemoryBucket, S3Bucket
from pelican_s3_publish.manifest import MANIFEST_NAME, RESERVED_NAMES, Manifest, Record, checked_listing
from pelican_s3_publish.settings import Settings, from_pelican
from tests.conftest import MotoServer, s3_client

# Shared beginnings, '/' at the end, non-ASCII, characters S3 sorts around '/' ('-', '.', '0').
# Keys a site can hold: no empty, '.' or '..' segment (a folder key's last, empty, aside).
NAME = st.text(alphabet="ab-./0é中 ", min_size=1, max_size=6).filter(lambda s: remote._plain(s.removesuffix("/")))
PREFIX = st.sampled_from(["", "blog/", "a b/é/"])  # the setting always ends in '/'
_buckets = itertools.count()


def _record(body: bytes) -> Record:
    import hashlib

    md5 = hashlib.md5(body).hexdigest()
    return Record(md5, len(body), md5, (("content-type", "text/html"),))


def _serial(bucket: Bucket, prefix: str, manifest: Manifest, exact: bool) -> dict[str, Any]:
    return checked_listing(bucket.list_objects(prefix, exact, EVERY_KEY), prefix, manifest.records)


def _stock(bucket: MemoryBucket | S3Bucket, prefix: str, data: st.DataObject, names: Any = NAME) -> Manifest:
    """Recorded keys, some removed since and some changed; foreign keys everywhere; keys beside the prefix."""
    recorded = data.draw(st.sets(names, max_size=40), label="recorded")
    foreign = data.draw(st.sets(names, max_size=15), label="foreign")
    removed = data.draw(st.sets(st.sampled_from(sorted(recorded)), max_size=5) if recorded else st.just(set()))
    changed = data.draw(st.sets(st.sampled_from(sorted(recorded)), max_size=5) if recorded else st.just(set()))
    for relpath in sorted((recorded - removed) | foreign):
        bucket.put(prefix + relpath, b"changed" if relpath in changed else relpath.encode(), ())
    for beside in ("a", "blog-x", "zz/z", prefix[:-1] + "!" if prefix else "!"):  # beside the prefix, if any
        bucket.put(beside, b"beside", ())
    records = {relpath: _record(relpath.encode()) for relpath in recorded}
    in_flight = tuple(data.draw(st.sets(names, max_size=2), label="in flight"))
    return Manifest(records, in_flight=in_flight, store=bucket.know(None, prefix).to_json())


def _assert_parts_list_like_one_stream(bucket: Bucket, prefix: str, manifest: Manifest) -> None:
    exact = any(key.endswith("/") for key in (*manifest.records, *manifest.in_flight))
    parted = remote.checked_in_parts(bucket, prefix, manifest, workers=5)
    serial = _serial(bucket, prefix, manifest, exact)
    assert parted == serial
    every = {key[len(prefix) :] for key in bucket.list_objects(prefix, exact, EVERY_KEY)} - {MANIFEST_NAME}
    assert set(parted) == every - set(RESERVED_NAMES)
    # None twice: each part's objects, against every object there is. Each counted by an exact listing,
    # since obstore names a foreign key that ends in '/' ('0/') as its parent ('0'), and one listing's dict
    # then holds the two as one, in whichever part they fall.
    assert sum(map(len, _parts(bucket, prefix, manifest))) == len(bucket.list_objects(prefix, True))


def _parts(bucket: Bucket, prefix: str, manifest: Manifest) -> list[dict[str, Any]]:
    """Each part's exact listing, as `checked_in_parts` cuts them: ranges in S3's order, else folders."""
    if manifest.store is not None and manifest.store["ordered_listing"]:
        ranges = remote.key_ranges(sorted(prefix + relpath for relpath in manifest.records), 5)
        return [bucket.list_objects(prefix, True, within) for within in ranges]
    top, folders = bucket.list_folders(prefix, True)
    assert all(folder.startswith(prefix) and folder.endswith("/") for folder in folders)
    return [top, *(bucket.list_objects(folder, True) for folder in folders)]


@settings(max_examples=300, deadline=None)
@given(st.data(), PREFIX, st.integers(1, 9), st.booleans())
def test_parts_list_what_one_stream_lists(data: st.DataObject, prefix: str, page: int, ordered: bool) -> None:
    """In memory, with a listing page of `page` keys so that a few keys make many parts; ranges where the
    store lists in S3's order, folders where it does not."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(remote, "LISTING_PAGE", page)
        bucket = MemoryBucket()
        bucket.capabilities = Capabilities("memory", ordered_listing=ordered)
        manifest = _stock(bucket, prefix, data)
        _assert_parts_list_like_one_stream(bucket, prefix, manifest)
        exact = any(key.endswith("/") for key in (*manifest.records, *manifest.in_flight))
        listings: list[tuple[Any, ...]] = []
        listing, folders = bucket.list_objects, bucket.list_folders
        patch.setattr(bucket, "list_objects", lambda *given: listings.append(given) or listing(*given))
        patch.setattr(bucket, "list_folders", lambda *given: listings.append(given) or folders(*given))
        remote.checked_in_parts(bucket, prefix, manifest, workers=5)
        keys = sorted(prefix + relpath for relpath in manifest.records)
        if ordered:  # each range listed once
            expected = [(prefix, exact, within) for within in remote.key_ranges(keys, 5)]
            assert len(listings) == max(1, min(5, -(-len(keys) // page))) or not all(map(remote._plain, keys))
        elif len(keys) > page:  # the folders the manifest names and those found, each listed once
            named = {prefix + relpath[: relpath.index("/") + 1] for relpath in manifest.records if "/" in relpath}
            found = set(folders(prefix, exact)[1])
            expected = [(prefix, exact), *((folder, exact) for folder in named | found)]
        else:
            expected = [(prefix, exact)]
        assert sorted(listings, key=str) == sorted(expected, key=str)


@given(st.lists(st.text(alphabet="ab/.é", max_size=5), max_size=60), st.integers(1, 9))
def test_every_key_falls_in_exactly_one_range(keys: list[str], at_most: int) -> None:
    ranges = remote.key_ranges(sorted(keys), at_most)
    assert 1 <= len(ranges) <= at_most
    for key in [*keys, "", "\U0010ffff", "a/"]:
        assert sum(r.holds(key) for r in ranges) == 1
    assert all(not r.after or remote._plain(r.after) for r in ranges)


def _s3_bucket(endpoint_url: str, prefix: str) -> S3Bucket:
    name = f"ranges-{os.getpid()}-{next(_buckets)}"  # the servers are shared by the test processes
    s3_client(endpoint_url).create_bucket(Bucket=name)
    chosen: Settings = from_pelican(
        {"S3_PUBLISH_BUCKET": name, "S3_PUBLISH_ENDPOINT_URL": endpoint_url, "S3_PUBLISH_PREFIX": prefix}
    )
    return S3Bucket(chosen)


@pytest.mark.parametrize("store", ["seaweedfs", "moto", "moto listed by folders"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), prefix=st.sampled_from(["", "a b/é/"]))
def test_ranges_on_real_stores_list_what_one_stream_lists(
    store: str,
    s3_server: seaweed.SeaweedServer,
    moto_server: MotoServer,
    data: st.DataObject,
    prefix: str,
) -> None:
    """StartAfter and the stop at a range's end, as obstore and boto3 send them to moto, which lists as
    S3 does (and keeps keys that end in '/', which boto3 lists); SeaweedFS lists folder by folder, which
    the probe finds, so its listing is cut into folders (delimiter listings, also asked of moto)."""
    endpoint = s3_server.endpoint_url if store == "seaweedfs" else moto_server.endpoint_url
    names = NAME.filter(lambda s: not s.endswith("/")) if store == "seaweedfs" else NAME
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(remote, "LISTING_PAGE", 2)
        bucket = _s3_bucket(endpoint, prefix)
        manifest = _stock(bucket, prefix, data, names)
        assert manifest.store is not None and manifest.store["ordered_listing"] == store.startswith("moto")
        if store == "moto listed by folders":
            manifest = replace(manifest, store={**manifest.store, "ordered_listing": False})
        _assert_parts_list_like_one_stream(bucket, prefix, manifest)


def test_a_range_stops_at_its_end_and_starts_after_its_start(moto_server: MotoServer) -> None:
    bucket = _s3_bucket(moto_server.endpoint_url, "")
    for key in ("a", "b", "b/c", "bb", "c", "é"):
        bucket.put(key, b"x", ())
    assert list(bucket.list_objects("", False, KeyRange("b", "bb"))) == ["b/c", "bb"]
    assert list(bucket.list_objects("", False, KeyRange(None, "a"))) == ["a"]
    assert list(bucket.list_objects("", False, KeyRange("c", None))) == ["é"]
