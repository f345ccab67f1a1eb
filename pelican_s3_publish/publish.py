"""One publish, in the order hugo's deploy taught: walk local, walk remote,
decide, apply, record. Shared by the Pelican plugin and the command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import etags, log
from .client import Connection, explain
from .errors import PublishError
from .headers import Headers, desired
from .local import Found, LocalFile, identify, scan
from .plan import Plan, make_plan, records_after, to_inspect
from .remote import MANIFEST_NAME, Record, RemoteState, ensure_unchanged, head_headers, write_manifest
from .remote_read import BucketRead, ThreadRead
from .report import Report, sent_items
from .settings import Settings
from .transfer import Outcome, Target, delete, send

if TYPE_CHECKING:
    from .s3_wire import S3Wire


def _headers_function(settings: Settings) -> Callable[[LocalFile], Headers]:
    """Desired headers per file, sharing one tuple among files that agree."""
    interned: dict[Headers, Headers] = {}

    def headers_of(file: LocalFile) -> Headers:
        headers = desired(file.relpath, file.head, settings)
        return interned.setdefault(headers, headers)

    return headers_of


def _md5_on_record(records: dict[str, Record]) -> Callable[[Found], str | None]:
    """A record's MD5 holds for a file whose bytes have the SHA-256 recorded beside it."""

    def md5_of(found: Found) -> str | None:
        record = records.get(found.relpath)
        return record.md5 if record and record.sha256 == found.sha256 and record.size == found.size else None

    return md5_of


def _verify(
    connection: Connection, settings: Settings, files: list[LocalFile], state: RemoteState
) -> dict[str, Headers]:
    """Headers of unrecorded objects whose ETag shows they already hold the local bytes."""
    candidates = to_inspect(files, state)
    if not candidates:
        return {}
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        same = pool.map(
            lambda f: etags.matches_content(f.path, f.size, f.md5, state.listing[f.relpath].etag),
            candidates,
        )
        adoptable = [f.relpath for f, ok in zip(candidates, same, strict=True) if ok]
    log.debug("%d objects not on record hold the local bytes", len(adoptable))
    if not adoptable:
        return {}
    return head_headers(connection.client, settings.bucket, settings.prefix, adoptable, settings.workers)


def prepare(
    settings: Settings, output_dir: str | Path, remote: BucketRead, connection: Connection
) -> tuple[Plan, RemoteState, int]:
    """Everything that reads; nothing here writes to the bucket.

    The remote read is already under way (in a thread, or in the child
    process a build started) and overlaps with hashing the local files.
    Returns the retries the read needed.
    """
    # More hashing threads than cores only fight over the interpreter lock.
    hashers = min(settings.workers, os.cpu_count() or 1)
    found = scan(output_dir, settings.exclude, reserved=frozenset({MANIFEST_NAME}), workers=hashers)
    state, read_retries = remote.result()
    files = identify(found, _md5_on_record(state.manifest.records), hashers)
    verified = _verify(connection, settings, files, state)
    plan = make_plan(
        files,
        state,
        _headers_function(settings),
        delete=settings.delete,
        max_deletes=settings.max_deletes,
        verified=verified,
    )
    return plan, state, read_retries


def _apply(connection: Connection, wire: S3Wire, settings: Settings, plan: Plan, state: RemoteState) -> Outcome:
    """Send, then delete only if everything arrived and nobody else published meanwhile."""
    target = Target(connection, wire, settings.bucket, settings.prefix, settings.part_size)
    outcome = send(plan, target, settings.workers, first_alone=not state.listing)
    if plan.deletes and outcome.error is None:
        try:
            ensure_unchanged(wire, settings.bucket, settings.prefix, state.manifest)
        except PublishError as error:
            outcome.error = error
            return outcome
        delete(target, plan.deletes, outcome)
    return outcome


def _record(wire: S3Wire, settings: Settings, plan: Plan, state: RemoteState, outcome: Outcome) -> None:
    """Write the manifest, true even for a publish that failed half-way; then report that failure.

    After a failure it is tried once, not retried: the server has just failed
    every retry of a request, and the next publish adopts by ETag what arrived.
    """
    records = records_after(plan, state, outcome.records, outcome.deleted)
    try:
        once = wire if outcome.error is None else replace(wire, attempts=1)
        write_manifest(once, settings.bucket, settings.prefix, records, state.manifest)
    except Exception as error:
        if outcome.error is None:
            raise
        log.debug("the manifest could not be written after the failure: %s", error)
    if outcome.error is not None:
        raise outcome.error


def _wire(settings: Settings, connection: Connection) -> S3Wire:
    """Plain credentials and endpoints need no botocore; others take what it resolves."""
    from .s3_wire import S3Wire  # HTTP and TLS modules, which a no-op never needs

    return S3Wire.without_botocore(settings) or S3Wire.from_connection(connection)


def publish(settings: Settings, output_dir: str | Path, remote: BucketRead | None = None) -> Report:
    """`remote` is a read started earlier: by the command line, or by the plugin when the build began."""
    started = time.monotonic()
    connection = Connection(settings)
    plan, state, read_retries = prepare(settings, output_dir, remote or ThreadRead(settings), connection)
    outcome = Outcome()
    write_retries = 0
    up_to_date = plan.is_empty and records_after(plan, state, {}, ()) == state.manifest.records
    if not settings.dry_run and not up_to_date:
        try:
            wire = _wire(settings, connection)
            try:
                outcome = _apply(connection, wire, settings, plan, state)
                _record(wire, settings, plan, state, outcome)
            finally:
                write_retries = wire.retries.total
        except Exception as error:
            raise explain(error, settings.bucket, settings.prefix + MANIFEST_NAME) from None
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
        retries=read_retries + write_retries + connection.retries,
        endpoint_url=settings.endpoint_url,
        plan=plan.describe() if settings.dry_run else [],
    )
    if settings.report:
        report.write(settings.report)
    return report
