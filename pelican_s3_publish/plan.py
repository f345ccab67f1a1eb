"""The plan: what a publish will do, decided before anything is written.

A plain value: it can be printed (`--dry-run`), tested, and handed to the
transfer. Deciding is pure; the only facts it needs are the local files, the
remote state, and which unrecorded objects were found to hold the local bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from . import compression, etags
from .bucket import Version
from .compression import GzipSetting
from .errors import RefusedError
from .headers import Headers
from .local import Found, LocalFile, object_key
from .manifest import Manifest, Record, RemoteState
from .redirects import REDIRECT_HEADER
from .settings import Delete, DeleteLimit

# gzip: the same bytes, now stored (un)compressed; redirect: a redirect object, new or with a new target
Reason = Literal["new", "changed", "missing", "headers", "gzip", "redirect"]

# Sent after everything else, so they never link to an asset not yet there.
PAGE_TYPES = ("text/html", "application/xhtml+xml", "application/atom+xml", "application/rss+xml")


def _is_page(headers: Headers) -> bool:
    return dict(headers).get("content-type", "").startswith(PAGE_TYPES)


@dataclass(frozen=True)
class Upload:
    file: LocalFile
    headers: Headers
    reason: Reason
    gzip: bool = False  # sent gzip-compressed, with Content-Encoding: gzip, if that makes it smaller

    @property
    def is_page(self) -> bool:
        return _is_page(self.headers)

    @property
    def is_redirect(self) -> bool:
        return any(name == REDIRECT_HEADER for name, _ in self.headers)


@dataclass(frozen=True)
class HeaderUpdate:
    """Replace an object's headers in place: a server-side copy, no bytes sent."""

    file: LocalFile
    headers: Headers
    old_headers: Headers


@dataclass(frozen=True)
class Restore:
    """Bring back an object as `record` says, by a server-side copy of an old version (None: the current one)."""

    relpath: str
    record: Record
    version: str | None

    @property
    def is_page(self) -> bool:
        return _is_page(self.record.headers)


@dataclass(frozen=True)
class Plan:
    uploads: tuple[Upload, ...]  # assets first, then pages and feeds
    header_updates: tuple[HeaderUpdate, ...]
    deletes: tuple[str, ...]
    kept: dict[str, Record] = field(default_factory=dict)  # local files already right in the bucket
    restores: tuple[Restore, ...] = ()  # only in a rollback
    rollback_to: str | None = None  # the publish a rollback brings back
    # For the manifest, when they change: content sources' saved pages, the automatic redirects kept.
    sources: dict[str, str] | None = None
    moved: dict[str, str] | None = None

    @property
    def unchanged(self) -> int:
        return len(self.kept)

    @property
    def is_empty(self) -> bool:
        return not (self.uploads or self.header_updates or self.deletes or self.restores)

    @property
    def writes(self) -> int:
        """Objects this plan writes (uploads, header updates, restores): a request each."""
        return len(self.uploads) + len(self.header_updates) + len(self.restores)

    @property
    def changed(self) -> list[str]:
        """Every path whose object this plan changes: what a CDN may have cached another answer for."""
        writes = [u.file.relpath for u in self.uploads] + [h.file.relpath for h in self.header_updates]
        return writes + [r.relpath for r in self.restores] + [*self.deletes]

    def describe(self) -> list[str]:
        """One line per key that would change, saying what and why."""
        lines = [
            f"redirect {u.file.relpath} -> {dict(u.headers)[REDIRECT_HEADER]}"
            if u.reason == "redirect"
            else f"upload  {u.file.relpath}  ({u.reason}, {u.file.size} bytes, {dict(u.headers)['content-type']}"
            f"{', gzip' if u.gzip else ''})"
            for u in self.uploads
        ]
        for update in self.header_updates:
            old, new = dict(update.old_headers), dict(update.headers)
            changes = ", ".join(
                f"{name}: {old.get(name, '(none)')!r} -> {new.get(name, '(none)')!r}"
                for name in sorted(old.keys() | new.keys())
                if old.get(name) != new.get(name)
            )
            lines.append(f"headers {update.file.relpath}  ({changes})")
        lines += [
            f"restore {r.relpath}  ({f'version {r.version}' if r.version else 'headers'}, {r.record.size} bytes)"
            for r in self.restores
        ]
        lines += [f"delete  {relpath}" for relpath in self.deletes]
        return lines


def vouched(relpath: str, state: RemoteState) -> Record | None:
    """The manifest's record, if the object listed is still the one it describes."""
    record = state.manifest.records.get(relpath)
    listed = state.listing.get(relpath)
    return record if record and listed and listed.etag == record.etag else None


def to_inspect(files: Iterable[LocalFile], state: RemoteState) -> list[LocalFile]:
    """Listed objects the manifest cannot vouch for whose size fits the local file.

    They were uploaded by another tool, or by a publish that was interrupted
    before writing its manifest: if their bytes match, they are adopted.
    """
    return [
        f
        for f in files
        if (listed := state.listing.get(f.relpath)) and listed.size == f.size and not vouched(f.relpath, state)
    ]


def on_record(records: dict[str, Record]) -> Callable[[Found], LocalFile | None]:
    """A record's MD5 holds for a file whose bytes have the SHA-256 recorded beside it.

    The file is then made of the record's own strings, not copies of them.
    """

    def known(found: Found) -> LocalFile | None:
        record = records.get(found.relpath)
        if record is None or record.sha256 != found.sha256 or record.size != found.size:
            return None
        return LocalFile(found.relpath, found.path, found.size, record.md5, record.sha256, found.head)

    return known


def adoptable(files: Iterable[LocalFile], state: RemoteState, workers: int) -> list[str]:
    """Unrecorded objects whose ETag shows they already hold the local bytes: adopted, not sent again."""
    candidates = to_inspect(files, state)
    if not candidates:  # the usual case, once a manifest vouches for everything: no pool to start
        return []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        same = pool.map(
            lambda f: etags.matches_content(f.path, f.size, f.md5, state.listing[f.relpath].etag), candidates
        )
        return [f.relpath for f, ok in zip(candidates, same, strict=True) if ok]


def _decide(
    file: LocalFile, headers: Headers, gzip: GzipSetting, state: RemoteState, verified: dict[str, Headers]
) -> Upload | HeaderUpdate | Record:
    """What one file needs. Bytes are compared as they are on disk, whatever encoding they are stored in."""
    want_gzip = compression.wanted(file.relpath, file.size, headers, gzip)
    listed = state.listing.get(file.relpath)
    if listed is None:
        return _sent(file, headers, "missing" if file.relpath in state.manifest.records else "new", want_gzip)
    record = vouched(file.relpath, state)
    if record is None and file.relpath in verified:
        record = Record(file.md5, file.size, listed.etag, verified[file.relpath], file.sha256)
    if record is None or (record.md5, record.size) != (file.md5, file.size):
        return _sent(file, headers, "changed", want_gzip)
    stored_gzip = compression.stored_gzipped(record.headers, headers)
    if want_gzip != stored_gzip and (stored_gzip or _shrinks(file)):
        return Upload(file, headers, "gzip", want_gzip)
    expected = compression.with_gzip(headers) if stored_gzip else headers
    if record.headers != expected:
        return HeaderUpdate(file, expected, record.headers)
    return record if record.sha256 == file.sha256 else record._replace(sha256=file.sha256)


def _sent(file: LocalFile, headers: Headers, reason: Reason, gzip: bool) -> Upload:
    """An upload; a redirect object's, whatever else changed, is told as one."""
    sent = Upload(file, headers, reason, gzip)
    return replace(sent, reason="redirect") if sent.is_redirect else sent


def _shrinks(file: LocalFile) -> bool:
    """Read and compressed only when gzip is newly wanted for bytes stored plain (or that did not shrink)."""
    return compression.compressed(Path(file.path).read_bytes()) is not None


def _deletes(local: set[str], state: RemoteState, delete: Delete) -> list[str]:
    if delete is False:
        return []
    owned = {*state.manifest.records, *state.manifest.in_flight}
    stale = [r for r in owned if r not in local and r in state.listing]
    unmanaged = [r for r in state.listing if r not in local and not state.manifest.owns(r)]
    return sorted(stale + (unmanaged if delete == "all" else []))


def records_after(
    plan: Plan, state: RemoteState, written: dict[str, Record], deleted: Iterable[str]
) -> dict[str, Record]:
    """What the manifest must say once `written` and `deleted` are done.

    Old records stay while the object they describe is still there: a key
    whose upload failed keeps its old record, never the new bytes'.
    """
    records = {r: rec for r, rec in state.manifest.records.items() if vouched(r, state)}
    records |= plan.kept | written
    for relpath in deleted:
        records.pop(relpath, None)
    return records


def _lost(deletes: list[str], uploads: list[Upload], state: RemoteState) -> list[str]:
    """Deletes whose bytes go nowhere else: a page moved to another key (a new slug, folder keys) is not lost."""
    sent = {upload.file.md5 for upload in uploads}
    records = state.manifest.records
    return [key for key in deletes if key not in records or records[key].md5 not in sent]


def _check_deletes(count: int, deletable: int, limit: DeleteLimit) -> None:
    over_count = limit.count is not None and count > limit.count
    over_share = limit.share is not None and count > DeleteLimit.SHARE_FLOOR and count > limit.share * max(deletable, 1)
    if over_count or over_share:
        raise RefusedError(
            f"this publish would delete {count} of the {deletable} objects it could ({count / max(deletable, 1):.0%}), "
            f"over S3_PUBLISH_MAX_DELETES = {limit}: nothing was changed; check the output directory, "
            "or allow it once with -e S3_PUBLISH_MAX_DELETES=null"
        )


def ahead_of(plan: Plan, state: RemoteState) -> Manifest:
    """The manifest written before the plan changes anything: each key it will write or delete moves from
    the records to in flight, so a publish killed midway leaves no record the bucket contradicts, and the
    next still knows those keys for its own."""
    touched = set(plan.changed)
    records = {r: rec for r, rec in records_after(plan, state, {}, ()).items() if r not in touched}
    return replace(state.manifest, records=records, in_flight=tuple(sorted({*state.manifest.in_flight, *touched})))


def in_flight_after(
    plan: Plan, state: RemoteState, records: dict[str, Record], deleted: Iterable[str]
) -> tuple[str, ...]:
    """What is still in flight once the publish is done: keys neither recorded nor deleted that may hold
    something of ours (listed at the start, or written to by this publish)."""
    settled, changed = {*records, *deleted}, set(plan.changed)
    candidates = {*state.manifest.in_flight, *changed}
    return tuple(sorted(r for r in candidates if r not in settled and (r in state.listing or r in changed)))


def make_plan(
    files: list[LocalFile],
    state: RemoteState,
    headers_of: Callable[[LocalFile], Headers],
    *,
    delete: Delete,
    max_deletes: DeleteLimit,
    verified: dict[str, Headers] | None = None,
    gzip: GzipSetting = False,
) -> Plan:
    verified = verified or {}
    uploads: list[Upload] = []
    updates: list[HeaderUpdate] = []
    kept: dict[str, Record] = {}
    for file in files:
        decision = _decide(file, headers_of(file), gzip, state, verified)
        if isinstance(decision, Upload):
            uploads.append(decision)
        elif isinstance(decision, HeaderUpdate):
            updates.append(decision)
        else:
            kept[file.relpath] = decision
    local = {f.relpath for f in files}
    deletes = _deletes(local, state, delete)
    owned = len(state.manifest.records) + len(state.manifest.in_flight)
    _check_deletes(len(_lost(deletes, uploads, state)), len(state.listing) if delete == "all" else owned, max_deletes)
    uploads.sort(key=lambda u: (u.is_page, u.file.relpath))
    return Plan(tuple(uploads), tuple(updates), tuple(deletes), kept)


def make_rollback(
    target: dict[str, Record], state: RemoteState, versions: dict[str, list[Version]], prefix: str, to: str
) -> Plan:
    """Bring the bucket back to the records `target`, from the bucket's own old versions; delete what it lacks.

    A version is found by the ETag on record. Refused, with nothing changed,
    when any object's version is gone (expired by a lifecycle rule, or saved
    before versioning was turned on).
    """
    restores, kept, missing = [], {}, []
    for relpath, wanted in sorted(target.items()):
        current = vouched(relpath, state)
        if current is not None and (current.etag, current.headers) == (wanted.etag, wanted.headers):
            kept[relpath] = current
        elif current is not None and current.etag == wanted.etag:
            restores.append(Restore(relpath, wanted, None))
        elif found := next(
            (v.id for v in versions.get(object_key(prefix, relpath), []) if v.etag == wanted.etag), None
        ):
            restores.append(Restore(relpath, wanted, found))
        else:
            missing.append(relpath)
    if missing:
        raise RefusedError(
            f"cannot roll back to {to}: {len(missing)} objects no longer have the version it needs "
            f"(such as {object_key(prefix, missing[0])}); they expired or were written before versioning was on"
        )
    deletes = tuple(sorted(r for r in state.manifest.records if r not in target and r in state.listing))
    return Plan((), (), deletes, kept, tuple(sorted(restores, key=lambda r: (r.is_page, r.relpath))), to)
