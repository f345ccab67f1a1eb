"""The bucket as a publish needs it: a small interface and its value types, free of any S3 library.

A publish, a dry run's reading and the tests' in-memory bucket all work
against `Bucket`; only `bucket.s3` knows which library speaks to a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import PublishError
from ..headers import Headers
from ..manifest import Listed
from .capabilities import Capabilities

LISTING_PAGE = 1000  # keys in one page of S3's listing, at most
Progress = Callable[[int], None]  # told the bytes of each part or object as it lands


class BucketError(PublishError):
    """A request the store refused or could not answer, worded for the user (what, where, what to do)."""


class WriteConflict(Exception):
    """A conditional write found another version of the object than the one it was conditioned on."""


@dataclass(frozen=True)
class Write:
    """How to write: on what condition (WriteConflict when the object is not that
    version, or exists at all), whether to retry, and whom to tell of the bytes sent."""

    if_match: str | None = None
    create: bool = False
    retry: bool = True
    progress: Progress | None = None

    @property
    def conditional(self) -> bool:
        return self.if_match is not None or self.create


PLAIN = Write()


@dataclass(frozen=True)
class KeyRange:
    """The keys after `after` up to and including `through`; None leaves that end open.

    A listing cut into ranges is listed in parallel: `after` is S3's StartAfter,
    and a range's listing stops at the first key past `through`.
    """

    after: str | None = None
    through: str | None = None

    def holds(self, key: str) -> bool:
        return (self.after is None or key > self.after) and (self.through is None or key <= self.through)

    def passed(self, key: str) -> bool:
        """`key` is beyond the range: keys come in order, so a listing can stop here."""
        return self.through is not None and key > self.through


EVERY_KEY = KeyRange()


@dataclass(frozen=True)
class Version:
    id: str
    etag: str


@dataclass(frozen=True)
class Head:
    etag: str
    headers: Headers
    size: int


class Bucket(Protocol):
    """One bucket, as a publish needs it. Keys are whole keys (the prefix included)."""

    name: str

    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = EVERY_KEY) -> dict[str, Listed]:
        """Every object under the prefix in the range, in key order; `exact` also lists keys that end in '/'
        as they are (slower)."""
        ...

    def list_folders(self, prefix: str, exact: bool = False) -> tuple[dict[str, Listed], tuple[str, ...]]:
        """The objects right under the prefix, and its folders (prefixes that end in '/'): listing each folder
        besides lists every object under the prefix once, in whatever order the store lists."""
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is none."""
        ...

    def head(self, key: str) -> Head | None: ...

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        """Write one object (in parts when it is large); its ETag."""
        ...

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        """Give an object new headers in place, by a server-side copy (of `version` if given); its new ETag."""
        ...

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        """Every version of each key under the prefix, newest first; None when the bucket keeps no versions."""
        ...

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete; the keys the store refused, each with its reason."""
        ...

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        """What the store does: `known` (kept in the manifest) if it was found here, else found out now by
        asking the store under `prefix` (probe objects, removed at once). Call before the first write."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What the store does as far as this publish knows, with what its answers taught since `know`."""
        ...

    @property
    def retries(self) -> int: ...
