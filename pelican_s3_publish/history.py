"""The last publishes, kept in the manifest so one can be undone.

Each publish adds an entry: when, what it did (counts and bytes), and its
undo: the keys it created, and the record of each key it replaced or
deleted. Walking the undos of later publishes back from today's records
gives the records just after any publish still in the history; a rollback
then brings each object back from the bucket's own old versions (matched by
ETag), so it sends no bytes. Pure: reading and writing is `remote`'s job.

Bounded, so the manifest stays small: the last `MAX_ENTRIES` publishes, and
of those only as many as keep `MAX_ROWS` keys in their undos together (the
newest is always kept, and the oldest needs no undo).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .errors import SettingsError
from .manifest import Record

MAX_ENTRIES = 20
MAX_ROWS = 20_000


@dataclass(frozen=True)
class Entry:
    id: str
    time: float  # seconds since the epoch, UTC
    kind: str  # "publish", or "rollback" to `to`
    counts: dict[str, int]  # new, changed, headers, deleted, bytes
    created: tuple[str, ...]  # keys this publish made, by relative path
    replaced: dict[str, Record]  # the record each key it overwrote or deleted had before
    to: str | None = None

    @property
    def rows(self) -> int:
        return len(self.created) + len(self.replaced)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.time))
        c = self.counts
        what = f"rollback to {self.to}" if self.kind == "rollback" else "publish"
        restored = f"{c['restored']} restored, " if c.get("restored") else ""
        return (
            f"{self.id}  {when}  {what}: {c.get('new', 0)} new, {c.get('changed', 0)} changed, "
            f"{c.get('headers', 0)} header-only, {restored}{c.get('deleted', 0)} deleted, "
            f"{c.get('bytes', 0)} bytes sent"
        )


def new_entry(
    before: Mapping[str, Record],
    written: Iterable[str],
    deleted: Iterable[str],
    counts: dict[str, int],
    kind: str = "publish",
    to: str | None = None,
) -> Entry:
    """The entry for a publish that wrote `written` and deleted `deleted` over the records `before`."""
    touched = [*written, *deleted]
    created = tuple(sorted(relpath for relpath in touched if relpath not in before))
    replaced = {relpath: before[relpath] for relpath in sorted(touched) if relpath in before}
    return Entry(secrets.token_hex(4), round(time.time(), 3), kind, counts, created, replaced, to)


def added(lines: tuple[str, ...], entry: Entry) -> tuple[str, ...]:
    """The history's lines with `entry` added, the oldest dropped beyond the bounds.

    The oldest kept entry keeps no undo: nothing can be rolled back to before
    it, so it is never undone (a first publish's would name every key).
    """
    kept = [*lines, encode(entry)][-MAX_ENTRIES:]
    rows = [decode(line).rows for line in kept]
    while len(kept) > 1 and sum(rows[1:]) > MAX_ROWS:
        kept.pop(0)
        rows.pop(0)
    kept[0] = encode(replace(decode(kept[0]), created=(), replaced={}))
    return tuple(kept)


def records_at(entries: list[Entry], records: Mapping[str, Record], wanted: str | None) -> dict[str, Record]:
    """The records just after publish `wanted` (default: the one before the last), undoing every later one."""
    if len(entries) < 2 and wanted is None:
        raise SettingsError("there is no earlier publish on record to roll back to: see --history")
    index = len(entries) - 2 if wanted is None else _index(entries, wanted)
    after = dict(records)
    for entry in reversed(entries[index + 1 :]):
        for relpath in entry.created:
            after.pop(relpath, None)
        after |= entry.replaced
    return after


def find(entries: list[Entry], wanted: str | None) -> Entry:
    return entries[-2] if wanted is None else entries[_index(entries, wanted)]


def _index(entries: list[Entry], wanted: str) -> int:
    for index, entry in enumerate(entries):
        if entry.id == wanted:
            return index
    known = ", ".join(entry.id for entry in entries[-5:]) or "none"
    raise SettingsError(f"no publish {wanted!r} in the history (the latest: {known}): see --history")


def encode(entry: Entry) -> str:
    document: dict[str, Any] = {
        "id": entry.id,
        "time": entry.time,
        "kind": entry.kind,
        "counts": entry.counts,
        "created": list(entry.created),
        "replaced": {relpath: _row(record) for relpath, record in entry.replaced.items()},
    }
    if entry.to is not None:
        document["to"] = entry.to
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def decode(line: str) -> Entry:
    document = json.loads(line)
    replaced = {relpath: _record(row) for relpath, row in document["replaced"].items()}
    return Entry(
        document["id"],
        document["time"],
        document["kind"],
        document["counts"],
        tuple(document["created"]),
        replaced,
        document.get("to"),
    )


def _row(record: Record) -> list[Any]:
    return [record.md5, record.size, record.etag, dict(record.headers), record.sha256]


def _record(row: list[Any]) -> Record:
    md5, size, etag, headers, sha256 = row
    return Record(md5, size, etag, tuple(sorted(headers.items())), sha256)
