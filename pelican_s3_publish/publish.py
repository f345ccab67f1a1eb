"""One publish, in the order hugo's deploy taught: walk local, walk remote,
decide, apply, record. Shared by the Pelican plugin and the command line;
it says in what order things happen, and leaves how to the modules it calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from . import log
from .bucket import Bucket
from .errors import PublishError
from .headers import Headers, desired
from .local import LocalFile, identify, scan
from .manifest import MANIFEST_NAME, RemoteState
from .plan import Plan, adoptable, make_plan, md5_on_record, records_after
from .remote import BucketRead, ensure_unchanged, head_headers, write_manifest
from .report import Report, sent_items
from .settings import Settings
from .transfer import Outcome, Tally, Target, delete, send


def _headers_function(settings: Settings) -> Callable[[LocalFile], Headers]:
    """Desired headers per file, sharing one tuple among files that agree."""
    interned: dict[Headers, Headers] = {}

    def headers_of(file: LocalFile) -> Headers:
        headers = desired(file.relpath, file.head, settings)
        return interned.setdefault(headers, headers)

    return headers_of


def start_read(settings: Settings) -> BucketRead:
    """Resolve the bucket and read it in a thread, beside whatever the caller does next."""

    def make_bucket() -> Bucket:
        from .bucket import S3Bucket

        return S3Bucket(settings)

    return BucketRead(make_bucket, settings.prefix)


def prepare(settings: Settings, output_dir: str | Path, remote: BucketRead) -> tuple[Bucket, Plan, RemoteState]:
    """Everything that reads; nothing here writes to the bucket."""
    # More hashing threads than cores only fight over the interpreter lock.
    hashers = min(settings.workers, os.cpu_count() or 1)
    found = scan(output_dir, settings.exclude, reserved=frozenset({MANIFEST_NAME}), workers=hashers)
    bucket, state = remote.result()
    files = identify(found, md5_on_record(state.manifest.records), hashers)
    adopted = adoptable(files, state, settings.workers)
    log.debug("%d objects not on record hold the local bytes", len(adopted))
    verified = head_headers(bucket, settings.prefix, adopted, settings.workers) if adopted else {}
    plan = make_plan(
        files,
        state,
        _headers_function(settings),
        delete=settings.delete,
        max_deletes=settings.max_deletes,
        verified=verified,
    )
    return bucket, plan, state


def _apply(bucket: Bucket, settings: Settings, plan: Plan, state: RemoteState, tally: Tally) -> Outcome:
    """Send, then delete only if everything arrived and nobody else published meanwhile."""
    target = Target(bucket, settings.prefix)
    outcome = send(plan, target, settings.workers, first_alone=not state.listing, tally=tally)
    if plan.deletes and outcome.error is None:
        try:
            ensure_unchanged(bucket, settings.prefix, state.manifest)
        except PublishError as error:
            outcome.error = error
            return outcome
        delete(target, plan.deletes, outcome)
    return outcome


def _record(bucket: Bucket, settings: Settings, plan: Plan, state: RemoteState, outcome: Outcome) -> None:
    """Write the manifest, true even for a publish that failed half-way; then report that failure.

    After a failure it is tried once, not retried: the server has just failed
    every retry of a request, and the next publish adopts by ETag what arrived.
    """
    records = records_after(plan, state, outcome.records, outcome.deleted)
    try:
        write_manifest(bucket, settings.prefix, records, state.manifest, retry=outcome.error is None)
    except PublishError as error:
        if outcome.error is None:
            raise
        log.debug("the manifest could not be written after the failure: %s", error)
    if outcome.error is not None:
        raise outcome.error


def publish(
    settings: Settings,
    output_dir: str | Path,
    remote: BucketRead | None = None,
    on_progress: Callable[[Tally], None] | None = None,
) -> Report:
    """`remote` is a read started earlier: by the command line, or by the plugin when the build began."""
    started = time.monotonic()
    bucket, plan, state = prepare(settings, output_dir, remote or start_read(settings))
    outcome = Outcome()
    up_to_date = plan.is_empty and records_after(plan, state, {}, ()) == state.manifest.records
    if not settings.dry_run and not up_to_date:
        outcome = _apply(bucket, settings, plan, state, Tally(plan, on_progress))
        _record(bucket, settings, plan, state, outcome)
    written = None if settings.dry_run else set(outcome.records)
    report = Report(
        bucket=settings.bucket,
        prefix=settings.prefix,
        dry_run=settings.dry_run,
        uploaded=sent_items(plan, settings.prefix, written),
        deleted=[settings.prefix + r for r in (plan.deletes if settings.dry_run else outcome.deleted)],
        unchanged=plan.unchanged,
        elapsed_s=round(time.monotonic() - started, 3),
        bytes_sent=outcome.bytes_sent,
        retries=bucket.retries,
        endpoint_url=settings.endpoint_url,
        plan=plan.describe() if settings.dry_run else [],
    )
    if settings.report:
        report.write(settings.report)
    return report
