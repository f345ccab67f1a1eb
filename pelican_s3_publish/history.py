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
from .report import counts_text, size_text

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

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.time))

    def describe(self) -> str:
        what = f"rollback to {self.to}" if self.kind == "rollback" else "publish"
        sent = size_text(self.counts.get("bytes", 0))
        return f"{self.id}  {self.when}  {what}: {counts_text(self.counts)}; {sent} sent"

    def to_json(self) -> dict[str, Any]:
        """What --history --json gives: no undo data, which is the manifest's business."""
        counts = {name: count for name, count in self.counts.items() if name != "bytes"}
        told = {"id": self.id, "time": self.when, "kind": self.kind, "rolled_back_to": self.to}
        return told | {"counts": counts, "bytes_sent": self.counts.get("bytes", 0)}


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


def records_at(entries: list[Entry], records: Mapping[str, Record], wanted: str) -> dict[str, Record]:
    """The records just after publish `wanted`, undoing every later one."""
    after = dict(records)
    for entry in reversed(entries[_index(entries, wanted) + 1 :]):
        for relpath in entry.created:
            after.pop(relpath, None)
        after |= entry.replaced
    return after


def default_target(entries: list[Entry]) -> str:
    """What `--rollback` without an id goes back to: a step back from what the bucket serves.

    The publish before the last; but when the last is itself a rollback to
    publish P, the one before P, so running it again steps further back
    instead of undoing the rollback (`--rollback <id>` goes anywhere).
    """
    ids = [entry.id for entry in entries]
    last = len(entries) - 1
    to = entries[last].to if entries else None
    if to in ids:
        last = ids.index(to)
    if last < 1:
        serving = f"publish {entries[last].id}, the oldest on record" if entries else "no publish"
        raise SettingsError(f"there is no earlier publish to roll back to: the bucket serves {serving}; see --history")
    return entries[last - 1].id


def _index(entries: list[Entry], wanted: str) -> int:
    for index, entry in enumerate(entries):
        if entry.id == wanted:
            return index
    known = ", ".join(entry.id for entry in reversed(entries[-5:])) or "none"
    raise SettingsError(f"no publish {wanted!r} in the history (the latest, newest first: {known}): see --history")


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
