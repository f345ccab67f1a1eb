"""Reading and writing the bucket's state through a `Bucket`: the listing, the manifest.

Where the read runs, so that it overlaps with other work, is `early_read`'s business.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from .bucket import LISTING_PAGE, Bucket, Capabilities, KeyRange, Write, WriteConflict
from .errors import PublishError
from .headers import Headers
from .local import object_key
from .manifest import (
    MANIFEST_NAME,
    Listed,
    Manifest,
    RemoteState,
    Stored,
    checked_listing,
    decode_manifest,
    encode_manifest,
)

MANIFEST_HEADERS: Headers = (("cache-control", "no-store"), ("content-type", "application/gzip"))


class ConcurrentPublishError(PublishError):
    def __init__(self, bucket: str, prefix: str) -> None:
        super().__init__(
            f"someone else published to s3://{bucket}/{prefix} meanwhile: nothing was deleted and "
            "the manifest was left as they wrote it; publish again once they are done"
        )


def read_manifest(bucket: Bucket, prefix: str) -> Manifest:
    return manifest_from(bucket.get(prefix + MANIFEST_NAME), bucket.name, prefix)


def manifest_from(found: tuple[bytes, str] | None, bucket_name: str, prefix: str, with_sha256: bool = True) -> Manifest:
    """The manifest in the object read (bytes and ETag); an empty one when there was none."""
    if found is None:
        return Manifest({})
    body, etag = found
    try:
        return decode_manifest(body, etag, with_sha256)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise PublishError(
            f"the manifest s3://{bucket_name}/{prefix}{MANIFEST_NAME} is unreadable: delete it and publish again "
            "(the bucket's objects are then adopted, not re-sent)"
        ) from None


def fetch(bucket: Bucket, prefix: str, workers: int = 1) -> RemoteState:
    """The manifest, then the listing checked against it."""
    manifest = read_manifest(bucket, prefix)
    return RemoteState(checked_in_parts(bucket, prefix, manifest, workers), manifest)


# Ranges listed at once, at most: more gained nothing for 100,000 keys on loopback (16 ranges 2.35 s,
# 8 ranges 2.18 s), and each holds a page of the listing in memory (64 took 50 MB more than 8).
RANGES = 8


def checked_in_parts(bucket: Bucket, prefix: str, manifest: Manifest, workers: int) -> dict[str, Stored]:
    """The listing in parts listed side by side, at most `workers` (and `RANGES`) at once, each checked as
    it comes.

    One stream of pages is one round trip after another (100 for 100,000
    keys). Where the probe saw S3's order, the parts are ranges cut at the
    manifest's keys; elsewhere, once the manifest holds more than a page, the
    folders under the prefix (a union of prefixes is exact in any order).
    """
    exact = any(key.endswith("/") for key in (*manifest.records, *manifest.in_flight))  # folder keys: list exactly

    def checked(listed: dict[str, Listed]) -> dict[str, Stored]:
        return checked_listing(listed, prefix, manifest.records)

    at_most = max(1, min(workers, RANGES))
    if _lists_in_order(bucket, manifest):
        keys = sorted(object_key(prefix, relpath) for relpath in manifest.records)
        parts = [functools.partial(bucket.list_objects, prefix, exact, within) for within in key_ranges(keys, at_most)]
    elif at_most > 1 and len(manifest.records) > LISTING_PAGE:  # one folder at a time: more requests, no gain
        return _checked_by_folder(bucket, prefix, exact, manifest, checked, at_most)
    else:
        parts = [functools.partial(bucket.list_objects, prefix, exact)]
    listing: dict[str, Stored] = {}
    with ThreadPoolExecutor(max_workers=min(len(parts), at_most)) as pool:
        for part in pool.map(lambda list_part: checked(list_part()), parts):
            listing.update(part)
    return listing


def _checked_by_folder(
    bucket: Bucket,
    prefix: str,
    exact: bool,
    manifest: Manifest,
    checked: Callable[[dict[str, Listed]], dict[str, Stored]],
    at_most: int,
) -> dict[str, Stored]:
    """The objects right under the prefix, and each folder listed on its own.

    The folders the manifest names are listed at once, beside the listing of
    the prefix's own objects that finds the others: a folder waits for no
    other listing (one round trip and a folder's listing fewer in a row).
    """
    known = {object_key(prefix, relpath[: relpath.index("/") + 1]) for relpath in manifest.records if "/" in relpath}

    def listed(folder: str) -> dict[str, Stored]:
        return checked(bucket.list_objects(folder, exact))

    with ThreadPoolExecutor(max_workers=at_most) as pool:
        top = pool.submit(bucket.list_folders, prefix, exact)
        folders = {folder: pool.submit(listed, folder) for folder in sorted(known)}
        objects, found = top.result()
        folders |= {folder: pool.submit(listed, folder) for folder in found if folder not in known}
        listing = checked(objects)
        for folder in sorted(folders):
            listing.update(folders[folder].result())
    return listing


def _lists_in_order(bucket: Bucket, manifest: Manifest) -> bool:
    """The probe saw this store list in S3's order (StartAfter meaning every greater key)."""
    known = Capabilities.from_json(manifest.store)
    return known is not None and known.where == bucket.capabilities.where and known.ordered_listing


def key_ranges(keys: Sequence[str], at_most: int) -> list[KeyRange]:
    """`keys` (sorted) cut into ranges of about a page or more each, at most `at_most`; every key in one.

    A bound is a key S3 and obstore take as StartAfter as it is written: no
    empty, '.' or '..' segment (obstore refuses those paths).
    """
    count = max(1, min(at_most, -(-len(keys) // LISTING_PAGE)))
    bounds: list[str] = []
    for number in range(1, count):
        start, end = number * len(keys) // count, (number + 1) * len(keys) // count
        bound = next((key for key in keys[start:end] if _plain(key)), None)
        if bound is not None and (not bounds or bound > bounds[-1]):
            bounds.append(bound)
    return [KeyRange(after, through) for after, through in zip([None, *bounds], [*bounds, None], strict=True)]


def _plain(key: str) -> bool:
    return all(part not in ("", ".", "..") for part in key.split("/"))


def write_manifest(bucket: Bucket, prefix: str, after: Manifest, previous: Manifest, retry: bool = True) -> Manifest:
    """Written last, and only if nobody else wrote it since we read it; the manifest now there.

    A conditional write whose answer was lost is retried and then finds its
    own manifest there (412): that is checked by reading it back, so a
    lost answer is never taken for another publisher.
    """
    key = prefix + MANIFEST_NAME
    body = encode_manifest(after)
    condition = Write(if_match=previous.etag, create=previous.etag is None, retry=retry)
    try:
        etag = bucket.put(key, body, MANIFEST_HEADERS, condition)
    except WriteConflict:
        found = bucket.get(key)
        if found is None or found[0] != body:
            raise ConcurrentPublishError(bucket.name, prefix) from None
        etag = found[1]
    return replace(after, etag=etag)


def ensure_unchanged(bucket: Bucket, prefix: str, manifest: Manifest) -> None:
    """Deletes are decided from the manifest read at the start: refuse them if it was rewritten since."""
    head = bucket.head(prefix + MANIFEST_NAME)
    if (head.etag if head else None) != manifest.etag:
        raise ConcurrentPublishError(bucket.name, prefix)


def head_headers(bucket: Bucket, prefix: str, relpaths: Iterable[str], workers: int) -> dict[str, Headers]:
    """The headers objects really carry, for the few the manifest cannot vouch for."""

    def headers_of(relpath: str) -> tuple[str, Headers]:
        head = bucket.head(object_key(prefix, relpath))
        return relpath, head.headers if head else ()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(headers_of, relpaths))
