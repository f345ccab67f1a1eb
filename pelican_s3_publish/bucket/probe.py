"""Find out what a store does by asking it: a few requests on a probe object beside the manifest, removed at once.

Run once per bucket and endpoint (what it finds is kept in the manifest),
before a publish's first write, and by `--check`. Each question is a request
whose answer cannot be mistaken: a store that enforces a condition answers
412 to a write that fails it, one that refuses it answers 501 (or 400), one
that ignores it writes. The first write is plain, with Content-MD5, which
every S3 store takes: if it fails, the failure is the user's to fix
(credentials, access, the bucket) and is said as such.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ..errors import PublishError
from ..headers import Headers
from ..manifest import PROBE_FOLDER, PROBE_NAME, PROBE_ORDER, PROBE_ORDER_BASE, Listed
from .capabilities import Capabilities, Enforcement
from .failures import Failure
from .interface import PLAIN, BucketError, Head, KeyRange, Write, WriteConflict
from .retries import Failed

BODY = b"pelican-s3-publish asked this store what it does; safe to delete\n"
HEADERS: Headers = (("cache-control", "no-store"), ("content-type", "text/plain"))
NOT_THIS_VERSION = "0" * 32  # an ETag no object has
# Statuses with which a store says it will not take what the request asked of it.
REFUSALS = frozenset({400, 403, 405, 501})


class Probed(Protocol):
    """What the probe needs of a real bucket."""

    where: str

    def call(self, operation: str, key: str | None, request: Callable[[], Any], retry: bool = True) -> Any: ...
    def attempt(self, operation: str, key: str | None, request: Callable[[], Any], retry: bool = True) -> Any: ...
    def put(self, key: str, body: bytes, headers: Headers, how: Write = PLAIN) -> str: ...
    def put_with_md5(self, key: str, data: bytes, headers: Headers, how: Write = PLAIN) -> str: ...
    def put_with_checksum(self, key: str, data: bytes, headers: Headers) -> str: ...
    def head(self, key: str) -> Head | None: ...
    def delete(self, keys: list[str]) -> dict[str, str]: ...
    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = ...) -> dict[str, Listed]: ...
    def adopt(self, capabilities: Capabilities) -> None: ...
    def explain(self, failure: Failure) -> BucketError: ...

    @property
    def capabilities(self) -> Capabilities: ...


def find_out(bucket: Probed, prefix: str, acl: str | None) -> Capabilities:
    """Ask the store; the probe objects are removed whatever happens. What it does, learnt deletes included."""
    key, folder = prefix + PROBE_NAME, prefix + PROBE_FOLDER
    probes = [key, folder, *(prefix + name for name in PROBE_ORDER)]
    bucket.adopt(Capabilities(bucket.where, checksums=False, etag_is_md5=False))  # the plain write checks nothing
    etag = _write_plainly(bucket, key)
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:  # each question at once: a round trip, not two
            checksums = pool.submit(_takes_checksums, bucket, key)
            create = pool.submit(_enforcement, bucket, key, Write(create=True))
            replace = pool.submit(_enforcement, bucket, key, Write(if_match=NOT_THIS_VERSION))
            folder_keys = pool.submit(_keeps_folder_bytes, bucket, folder)
            ordered = pool.submit(_lists_in_order, bucket, prefix)
        found = Capabilities(
            bucket.where,
            conditional_create=create.result(),
            conditional_replace=replace.result(),
            checksums=checksums.result(),
            etag_is_md5=etag == hashlib.md5(BODY, usedforsecurity=False).hexdigest(),
            folder_keys=folder_keys.result(),
            ordered_listing=ordered.result(),
            acl=acl,
        )
        if acl:  # a bucket that takes no ACLs refuses this in one line naming S3_PUBLISH_ACL
            bucket.put(key, BODY, (*HEADERS, ("x-amz-acl", acl)))
    except BaseException:
        bucket.adopt(Capabilities(bucket.where))
        with contextlib.suppress(PublishError):
            bucket.delete(probes)
        raise
    bucket.adopt(found)
    _remove(bucket, probes)
    return bucket.capabilities


def _takes_checksums(bucket: Probed, key: str) -> bool:
    try:
        bucket.attempt("PutObject", key, lambda: bucket.put_with_checksum(key, BODY, HEADERS))
    except Failed as failed:
        return _refused(bucket, failed)
    return True


def _enforcement(bucket: Probed, key: str, how: Write) -> Enforcement:
    try:
        bucket.attempt("PutObject", key, lambda: bucket.put_with_md5(key, BODY, HEADERS, how))
    except WriteConflict:
        return "enforced"
    except Failed as failed:
        _refused(bucket, failed)
        return "refused"
    return "ignored"


def _keeps_folder_bytes(bucket: Probed, folder: str) -> bool:
    try:
        bucket.attempt("PutObject", folder, lambda: bucket.put_with_md5(folder, BODY, HEADERS))
    except Failed as failed:
        return _refused(bucket, failed)
    stored = bucket.head(folder)
    return stored is not None and stored.size == len(BODY)


def _lists_in_order(bucket: Probed, prefix: str) -> bool:
    """Whether the listing after `PROBE_ORDER_BASE` holds the two order probes, in S3's order, and
    nothing else: a listing can then be cut into ranges that add up to the whole."""
    keys = [prefix + name for name in PROBE_ORDER]
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:  # side by side: listed once both are written
        list(pool.map(functools.partial(_write_plainly, bucket), keys))
    base = prefix + PROBE_ORDER_BASE
    return list(bucket.list_objects(prefix, False, KeyRange(base, base + "0"))) == keys


def _write_plainly(bucket: Probed, key: str) -> str:
    return str(bucket.call("PutObject", key, functools.partial(bucket.put_with_md5, key, BODY, HEADERS)))


def _refused(bucket: Probed, failed: Failed) -> bool:
    """False for a store's refusal of what was asked; any other failure is raised, worded for the user."""
    if failed.failure.status in REFUSALS or failed.failure.not_implemented:
        return False
    raise bucket.explain(failed.failure)


def _remove(bucket: Probed, keys: list[str]) -> None:
    """The probe's own delete teaches how this store deletes; a key it refuses is the user's to permit."""
    refused = bucket.delete(keys)
    if refused:
        key, reason = next(iter(refused.items()))
        raise BucketError(f"cannot delete the probe object {key} ({reason}): give these credentials s3:DeleteObject")
