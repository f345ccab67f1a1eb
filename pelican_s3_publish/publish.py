"""One publish, in the order hugo's deploy taught: walk local, walk remote,
decide, apply, record. Shared by the Pelican plugin and the command line;
it says in what order things happen, and leaves how to the modules it calls.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from . import cdn, collector, history, log, redirects
from .bucket import Bucket, Capabilities
from .cdn import Cdn, Invalidation
from .early_read import BucketRead, ThreadRead
from .errors import PublishError, RefusedError, SettingsError
from .headers import Headers, desired
from .local import Found, LocalFile, fingerprinted, identify, key_of, name_of, object_key, scan
from .manifest import RESERVED_NAMES, Manifest, RemoteState
from .plan import (
    Plan,
    adoptable,
    ahead_of,
    in_flight_after,
    make_plan,
    make_rollback,
    on_record,
    records_after,
)
from .remote import ensure_unchanged, head_headers, write_manifest
from .report import Report, sent_items
from .settings import Settings
from .stopping import Interrupted, Stop, on_signals
from .transfer import Outcome, Tally, Target, delete, send


def _wanted_headers(settings: Settings, found: list[Found]) -> dict[str, Headers]:
    """The headers the settings give each file, by relative path, one tuple shared among files that agree.

    Worked out while the bucket is still being read: they depend on the
    file's name and first bytes only, and a small site's publish waits for
    the read, not for them.
    """
    interned: dict[Headers, Headers] = {}
    wanted = {}
    for item in found:
        headers = desired(name_of(item.relpath), item.head, settings)
        wanted[item.relpath] = interned.setdefault(headers, headers)
    return wanted


def _headers_function(
    settings: Settings, targets: dict[str, str], wanted: dict[str, Headers]
) -> Callable[[LocalFile], Headers]:
    """Desired headers per file: `wanted`'s, else worked out; `targets`: the redirects'."""

    def headers_of(file: LocalFile) -> Headers:
        headers = wanted.get(file.relpath)
        if headers is None:  # a redirect page, written after the scan
            headers = desired(name_of(file.relpath), file.head, settings)
        if (target := targets.get(file.relpath)) is not None:
            headers = redirects.as_redirect(headers, target)
        return headers

    return headers_of


def start_read(settings: Settings) -> ThreadRead:
    """Resolve the bucket and read it in a thread: for what waits for the answer at once."""
    from .bucket import S3Bucket

    return ThreadRead(functools.partial(S3Bucket, settings), settings.prefix, settings.workers)


@dataclass(frozen=True)
class _Local:
    files: list[LocalFile]
    redirects: dict[str, str]  # every redirect object's target, by key: the automatic ones and the settings'
    moved: dict[str, str]  # of those, the automatic ones
    wanted: dict[str, Headers]  # the headers the settings give the output's files


def _local_and_remote(
    settings: Settings, output_dir: str | Path, remote: BucketRead, scratch: str, sources: dict[str, str] | None
) -> tuple[Bucket, RemoteState, _Local]:
    """The files hashed while the bucket is read, and all that needs only the manifest done before the
    listing is waited for; the scan's own list is let go before planning.

    The redirect pages are written to `scratch` and published beside the output's files.
    """
    found = scan(
        output_dir,
        settings.exclude,
        frozenset(RESERVED_NAMES),
        settings.strip_index_html,
        remote.hashed_ahead(),
        remote.beside(),
    )
    wanted = _wanted_headers(settings, found)
    manifest = remote.manifest()
    moved: dict[str, str] = {}
    if settings.redirects or manifest.moved or sources is not None:
        local = {item.relpath for item in found}
        redirects.check_sources(settings.redirects, local, str(output_dir))
        for line in redirects.unknown_targets(settings.redirects, local, settings.prefix):
            log.warning(line)
        moved = _moved(settings, manifest, sources, local)
    targets = moved | dict(settings.redirects)
    found += fingerprinted(redirects.write_pages(tuple(targets.items()), scratch))
    # More hashing threads than cores only fight over the interpreter lock.
    hashers = min(settings.workers, os.cpu_count() or 1)
    files = identify(found, on_record(manifest.records), hashers)
    bucket, state = remote.result()
    return bucket, state, _Local(files, targets, moved, wanted)


def _moved(settings: Settings, manifest: Manifest, sources: dict[str, str] | None, local: set[str]) -> dict[str, str]:
    """The automatic redirects to keep: those on record, and, in a build, one for each page that moved.

    A page of the site at the old key wins over its redirect; so does a page moved back.
    """
    if not settings.auto_redirects:
        return {}
    active = manifest.moved
    if sources is not None:
        active = redirects.automatic(manifest.sources, sources, manifest.moved, settings.prefix)
    keys = {(key_of(saved) if settings.strip_index_html else saved): target for saved, target in active.items()}
    return {
        key: target
        for key, target in keys.items()
        if key not in local and target != redirects.url_of(key, settings.prefix)
    }


def prepare(
    settings: Settings,
    output_dir: str | Path,
    remote: BucketRead,
    scratch: str,
    sources: dict[str, str] | None = None,
) -> tuple[Bucket, Plan, RemoteState]:
    """Everything that reads; nothing here writes to the bucket."""
    bucket, state, local = _local_and_remote(settings, output_dir, remote, scratch, sources)
    files = local.files
    adopted = adoptable(files, state, settings.workers)
    if adopted:
        log.debug(
            "files already in the bucket with the same bytes, put there by something else: %d; "
            "taken on record after a check of their headers, not sent again",
            len(adopted),
        )
    verified = head_headers(bucket, settings.prefix, adopted, settings.workers) if adopted else {}
    plan = make_plan(
        files,
        state,
        _headers_function(settings, local.redirects, local.wanted),
        delete=settings.delete,
        max_deletes=settings.max_deletes,
        verified=verified,
        gzip=settings.gzip,
    )
    return bucket, replace(plan, sources=sources, moved=local.moved), state


def _serviceable(plan: Plan, settings: Settings, store: Capabilities) -> None:
    """Refuse, before anything is written, keys the store cannot keep: one that ends in '/' on a store
    that keeps such keys as folders without bytes (SeaweedFS, MinIO)."""
    folder = next((u.file.relpath for u in plan.uploads if u.file.relpath.endswith("/")), None)
    if folder is None or store.folder_keys:
        return
    where = f"{settings.bucket} keeps no bytes under keys that end in '/' (it keeps them as folders)"
    if folder in dict(settings.redirects):
        raise SettingsError(
            f"S3_PUBLISH_REDIRECTS redirects from {folder!r}, but {where}: redirect from {folder}index.html instead"
        )
    raise SettingsError(f"{where}, as {settings.prefix + folder} would be: set S3_PUBLISH_STRIP_INDEX_HTML = False")


def _write_ahead(bucket: Bucket, settings: Settings, plan: Plan, state: RemoteState, pending: Pending) -> Manifest:
    """Before anything changes: the keys about to change go in flight, and the CDN paths pending.

    Conditional on the manifest read at the start, so a publisher that lost a
    race stops here, having changed nothing.
    """
    if plan.is_empty:
        return state.manifest
    claimed = replace(ahead_of(plan, state), pending=pending, store=bucket.capabilities.to_json())
    return write_manifest(bucket, settings.prefix, claimed, state.manifest)


def _apply(
    bucket: Bucket,
    sender: Bucket,
    settings: Settings,
    plan: Plan,
    state: RemoteState,
    ahead: Manifest,
    tally: Tally,
    stop: Stop,
) -> Outcome:
    """Send (through `sender`, `BucketRead.writer`), then delete only if everything arrived and nobody else
    published meanwhile."""
    sending = Target(sender, settings.prefix)
    outcome = send(plan, sending, settings.workers, stop, first_alone=not state.listing, tally=tally)
    target = Target(bucket, settings.prefix)
    if plan.deletes and outcome.error is None:
        try:
            ensure_unchanged(bucket, settings.prefix, ahead)
        except PublishError as error:
            outcome.error = error
            return outcome
        delete(target, plan.deletes, outcome, stop)
    return outcome


Pending = dict[str, tuple[str, ...]]  # URL paths not yet told, by CDN (a distribution's id, cloudflare:<zone>)


def _record(
    bucket: Bucket,
    settings: Settings,
    plan: Plan,
    state: RemoteState,
    ahead: Manifest,
    outcome: Outcome,
    pending: Pending,
) -> Manifest:
    """Write the manifest, true even for a publish that failed half-way; then report that failure.

    Conditional on the manifest written ahead. It keeps the CDN paths pending
    until the CDN has been told, and in flight the keys whose fate is unknown.
    After a failure it is tried once, not retried: the server has just failed
    every retry of a request, and the next publish adopts by ETag what arrived.
    """
    records = records_after(plan, state, outcome.records, outcome.deleted)
    after = Manifest(
        records,
        pending=pending,
        history=_history_after(plan, state, outcome),
        in_flight=in_flight_after(plan, state, records, outcome.deleted),
        sources=state.manifest.sources if plan.sources is None else plan.sources,
        moved=state.manifest.moved if plan.moved is None else plan.moved,
        store=bucket.capabilities.to_json(),
    )
    try:
        written = write_manifest(bucket, settings.prefix, after, ahead, retry=outcome.error is None)
    except PublishError as error:
        if outcome.error is None:
            raise
        log.debug("the manifest could not be written after the failure: %s", error)
    if isinstance(outcome.error, Interrupted):
        raise _stopped_midway(plan, state, outcome, outcome.error.signum)
    if outcome.error is not None:
        raise outcome.error
    return written


def _history_after(plan: Plan, state: RemoteState, outcome: Outcome) -> tuple[str, ...]:
    """A publish that wrote or deleted nothing (it only adopted objects, say) has nothing to undo."""
    if not (outcome.records or outcome.deleted):
        return state.manifest.history
    return history.added(state.manifest.history, _entry(plan, state, outcome))


def _entry(plan: Plan, state: RemoteState, outcome: Outcome) -> history.Entry:
    counts: Counter[str] = Counter(u.reason for u in plan.uploads if u.file.relpath in outcome.records)
    counts["headers"] = sum(h.file.relpath in outcome.records for h in plan.header_updates)
    counts["restored"] = sum(r.relpath in outcome.records for r in plan.restores)
    counts["deleted"] = len(outcome.deleted)
    counts["bytes"] = outcome.bytes_sent
    kind = "publish" if plan.rollback_to is None else "rollback"
    return history.new_entry(
        state.manifest.records, outcome.records, outcome.deleted, dict(counts), kind, plan.rollback_to
    )


def _stopped_midway(plan: Plan, state: RemoteState, outcome: Outcome, signum: int) -> Interrupted:
    """What state the bucket is in: the old site with what landed (and is on record) updated, or part of a first."""
    total = len(plan.uploads) + len(plan.header_updates) + len(plan.restores)
    done = f"{len(outcome.records)} of {total} files sent and recorded in the manifest"
    if plan.deletes:
        done += f", {len(outcome.deleted)} of {len(plan.deletes)} deleted"
    serves = "serves the old site with those updated" if state.manifest.records else "holds part of a first publish"
    safe = "assets go first, so no page links to a missing file"
    return Interrupted(f"interrupted: {done}; the bucket {serves} ({safe}); publish again to finish", signum)


def _cdn_paths(settings: Settings, plan: Plan, state: RemoteState) -> tuple[list[Cdn], Pending]:
    """Per CDN, the URL paths whose answer may have changed, and those still pending.

    Read before anything is written, so a wrong distribution or zone id stops
    the publish with nothing changed. Nothing changed and nothing pending: no call.
    """
    keys = [object_key(settings.prefix, relpath) for relpath in plan.changed]
    pending = state.manifest.pending
    if not (settings.cloudfront_distributions or settings.cloudflare_zones) or not (keys or pending):
        return [], {}
    targets = cdn.targets(settings)
    wanted = {}
    for target in targets:
        if paths := tuple(sorted({*target.wanted(keys), *pending.get(target.key, ())})):
            wanted[target.key] = paths
    return targets, wanted


def _tell_cdn(targets: list[Cdn], settings: Settings, bucket: Bucket, manifest: Manifest) -> list[Invalidation]:
    """One invalidation or purge per CDN; what could not be sent stays pending in the manifest."""
    told, left, reasons = [], dict(manifest.pending), dict[str, list[str]]()
    for target in targets:
        if (paths := manifest.pending.get(target.key)) is None:
            continue
        folded = target.folded(paths)
        try:
            told.append(
                Invalidation(target.name, target.tell(folded, manifest.etag or ""), tuple(folded), target.label)
            )
            del left[target.key]
        except PublishError as error:
            reasons.setdefault(target.label, []).append(str(error))
    if left != manifest.pending:
        write_manifest(bucket, settings.prefix, replace(manifest, pending=left), manifest)
    if reasons:
        untold = "; ".join(f"{label} was not told: {'; '.join(why)}" for label, why in reasons.items())
        raise PublishError(f"published, but {untold}; the next publish sends these paths")
    if settings.cloudfront_wait:
        for invalidation in told:
            target = next(t for t in targets if t.name == invalidation.distribution)
            target.wait(invalidation.id, settings.cloudfront_wait_timeout, log.status)
    return told


def _planned(targets: list[Cdn], wanted: Pending) -> list[Invalidation]:
    return [Invalidation(t.name, None, tuple(t.folded(wanted[t.key])), t.label) for t in targets if t.key in wanted]


def publish(
    settings: Settings,
    output_dir: str | Path,
    remote: BucketRead | None = None,
    on_progress: Callable[[Tally], None] | None = None,
    sources: dict[str, str] | None = None,
) -> Report:
    """`remote` is a read started earlier: by the command line, or by the plugin when the build began.

    `sources`, from a build: each content source's saved page (by source path under PATH), so a page
    that moved leaves a redirect behind; the command line, which runs no generators, has none.
    """
    started = time.monotonic()
    remote = remote or start_read(settings)
    with on_signals() as stop, tempfile.TemporaryDirectory(prefix="s3-publish-") as scratch:
        try:
            with collector.held_off():
                bucket, plan, state = prepare(settings, output_dir, remote, scratch, sources)
            stop.check("nothing was written; the bucket is as it was")
            return _carry_out(settings, remote, bucket, plan, state, on_progress, stop, started)
        finally:
            remote.close()


def past_publishes(settings: Settings) -> list[history.Entry]:
    """The publishes the manifest remembers, oldest first."""
    _, state = start_read(settings).result()
    return [history.decode(line) for line in state.manifest.history]


def rollback(settings: Settings, to: str | None, on_progress: Callable[[Tally], None] | None = None) -> Report:
    """Put the site back as publish `to` left it (default: `history.default_target`), from old versions."""
    started = time.monotonic()
    with on_signals() as stop:
        read = start_read(settings)
        bucket, state = read.result()
        if state.manifest.in_flight:
            raise RefusedError(
                "the last publish stopped midway, so the history does not say what it changed: "
                "publish again, then roll back"
            )
        entries = [history.decode(line) for line in state.manifest.history]
        chosen = to or history.default_target(entries)
        target = history.records_at(entries, state.manifest.records, chosen)
        versions = bucket.versions(settings.prefix)
        if versions is None:
            raise RefusedError(
                f"cannot roll back to {chosen}: the bucket {settings.bucket} keeps no old versions; "
                "turn versioning on (see the README), and later publishes can be rolled back"
            )
        plan = make_rollback(target, state, versions, settings.prefix, chosen)
        stop.check("nothing was written; the bucket is as it was")
        return _carry_out(settings, read, bucket, plan, state, on_progress, stop, started)


def _carry_out(
    settings: Settings,
    remote: BucketRead,
    bucket: Bucket,
    plan: Plan,
    state: RemoteState,
    on_progress: Callable[[Tally], None] | None,
    stop: Stop,
    started: float,
) -> Report:
    outcome = Outcome()
    targets, wanted = _cdn_paths(settings, plan, state)
    settled = (
        not state.manifest.in_flight
        and records_after(plan, state, {}, ()) == state.manifest.records
        and plan.sources in (None, state.manifest.sources)
        and plan.moved in (None, state.manifest.moved)
    )
    up_to_date = plan.is_empty and settled and not wanted
    invalidations = _planned(targets, wanted) if settings.dry_run else []
    sender = bucket
    if not settings.dry_run and not up_to_date:
        writer = remote.writer(bucket, plan.writes)
        _serviceable(plan, settings, bucket.know(Capabilities.from_json(state.manifest.store), settings.prefix))
        sender = writer()
        ahead = _write_ahead(bucket, settings, plan, state, wanted)
        outcome = _apply(bucket, sender, settings, plan, state, ahead, Tally(plan, on_progress), stop)
        manifest = _record(bucket, settings, plan, state, ahead, outcome, wanted)
        if wanted:
            invalidations = _tell_cdn(targets, settings, bucket, manifest)
    written = None if settings.dry_run else set(outcome.records)
    report = Report(
        bucket=settings.bucket,
        prefix=settings.prefix,
        dry_run=settings.dry_run,
        uploaded=sent_items(plan, settings.prefix, written),
        deleted=[object_key(settings.prefix, r) for r in (plan.deletes if settings.dry_run else outcome.deleted)],
        unchanged=plan.unchanged,
        elapsed_s=round(time.monotonic() - started, 3),
        bytes_sent=outcome.bytes_sent,
        retries=bucket.retries + (sender.retries if sender is not bucket else 0),
        endpoint_url=settings.endpoint_url,
        invalidations=invalidations,
        fallbacks=[] if settings.dry_run or up_to_date else bucket.capabilities.fallbacks(),
        plan=[*plan.describe(), *(i.describe() for i in invalidations)] if settings.dry_run else [],
        rolled_back_to=plan.rollback_to,
    )
    if settings.report:
        report.write(settings.report)
    return report
