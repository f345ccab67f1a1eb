"""`MemoryBucket`: the interface's promises without a server, for fast tests of logic, not of stores."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..headers import Headers
from ..manifest import Listed
from .capabilities import Capabilities
from .interface import EVERY_KEY, PLAIN, Head, KeyRange, Version, Write, WriteConflict


@dataclass
class _Stored:
    body: bytes
    etag: str
    headers: Headers


class MemoryBucket:
    """Conditional writes, ETags as MD5s, refusals on cue; a store that does everything, asked nothing."""

    def __init__(self, name: str = "memory", refuse_deletes: Iterable[str] = ()) -> None:
        self.name = name
        self.objects: dict[str, _Stored] = {}
        self.writes: list[tuple[str, str]] = []  # (operation, key), in order
        self._refuse_deletes = set(refuse_deletes)
        self._lock = threading.Lock()
        self.capabilities = Capabilities("memory")

    @property
    def retries(self) -> int:
        return 0

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        return self.capabilities

    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = EVERY_KEY) -> dict[str, Listed]:
        return self._listed(prefix, within)

    def list_folders(self, prefix: str, exact: bool = False) -> tuple[dict[str, Listed], tuple[str, ...]]:
        listed = self._listed(prefix, EVERY_KEY)
        folders = {key[: key.index("/", len(prefix)) + 1] for key in listed if "/" in key[len(prefix) :]}
        return {k: v for k, v in listed.items() if "/" not in k[len(prefix) :]}, tuple(sorted(folders))

    def _listed(self, prefix: str, within: KeyRange) -> dict[str, Listed]:
        with self._lock:
            return {
                k: Listed(len(v.body), v.etag)
                for k, v in sorted(self.objects.items())
                if k.startswith(prefix) and within.holds(k)
            }

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            stored = self.objects.get(key)
        return (stored.body, stored.etag) if stored else None

    def head(self, key: str) -> Head | None:
        with self._lock:
            stored = self.objects.get(key)
        return Head(stored.etag, stored.headers, len(stored.body)) if stored else None

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        data = body if isinstance(body, bytes) else body.read_bytes()
        with self._lock:
            current = self.objects.get(key)
            stale = how.if_match is not None and (current is None or current.etag != how.if_match)
            if (how.create and current) or stale:
                raise WriteConflict(key)
            etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self.objects[key] = _Stored(data, etag, headers)
            self.writes.append(("put", key))
        if how.progress is not None:
            how.progress(len(data))
        return etag

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        return None  # keeps no versions: a rollback is refused, as on a bucket without versioning

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        with self._lock:
            stored = self.objects[key]
            self.objects[key] = _Stored(stored.body, stored.etag, headers)
            self.writes.append(("copy", key))
            return stored.etag

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        refused = {}
        with self._lock:
            for key in keys:
                if key in self._refuse_deletes:
                    refused[key] = "AccessDenied"
                    continue
                self.objects.pop(key, None)
                self.writes.append(("delete", key))
        return refused
