"""Carry out a plan against a bucket, concurrently, in a safe order.

Order: assets and header updates, then pages and feeds (so no page links to
an asset not yet there). Deletes are a separate step the caller runs only when
everything sent succeeded, and the caller writes the manifest after both.
Nothing here knows about Pelican.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from . import compression, log
from .bucket import Bucket, Write
from .errors import PublishError
from .headers import Headers
from .local import object_key
from .manifest import Record
from .plan import HeaderUpdate, Plan, Restore, Upload
from .stopping import GRACE_S, Interrupted, Stop

SMALL_BODY = 1024 * 1024
POLL_S = 0.1  # how often the wait for requests looks whether it was asked to stop


@dataclass(frozen=True)
class Target:
    bucket: Bucket
    prefix: str


@dataclass
class Outcome:
    """What was really done, so the manifest can record exactly that."""

    records: dict[str, Record] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    error: PublishError | None = None


@dataclass(frozen=True)
class Done:
    relpath: str
    record: Record
    bytes_sent: int


class Tally:
    """Files and bytes done against the total, told to a listener (the progress bar) as they land."""

    def __init__(self, plan: Plan, listener: Callable[[Tally], None] | None = None) -> None:
        self.total_files = plan.writes
        self.total_bytes = sum(u.file.size for u in plan.uploads)
        self.files = 0
        self.bytes = 0
        self._listener = listener
        self._lock = threading.Lock()

    def add_bytes(self, size: int) -> None:
        self._add(0, size)

    def add_file(self) -> None:
        self._add(1, 0)

    def _add(self, files: int, size: int) -> None:
        with self._lock:
            self.files += files
            self.bytes += size
        if self._listener is not None:
            self._listener(self)


def _upload(target: Target, upload: Upload, tally: Tally) -> Done:
    file = upload.file
    log.debug("upload %s (%s)", file.relpath, upload.reason)
    body, headers = _body(upload)
    etag = target.bucket.put(object_key(target.prefix, file.relpath), body, headers, Write(progress=tally.add_bytes))
    sent = len(body) if isinstance(body, bytes) else file.size
    return Done(file.relpath, Record(file.md5, file.size, etag, headers, file.sha256), sent)


def _body(upload: Upload) -> tuple[bytes | Path, Headers]:
    """What to send, and with which headers: gzip-compressed when wanted and smaller.

    Up to a megabyte is read whole; more streams from disk, so memory stays
    bounded (a file to compress is read whole: text, and small).
    """
    file = upload.file
    if upload.gzip:
        data = Path(file.path).read_bytes()
        packed = compression.compressed(data)
        return (packed, compression.with_gzip(upload.headers)) if packed is not None else (data, upload.headers)
    return (Path(file.path).read_bytes() if file.size <= SMALL_BODY else Path(file.path)), upload.headers


def _update_headers(target: Target, update: HeaderUpdate) -> Done:
    log.debug("update headers of %s", update.file.relpath)
    etag = target.bucket.copy(object_key(target.prefix, update.file.relpath), update.headers)
    record = Record(update.file.md5, update.file.size, etag, update.headers, update.file.sha256)
    return Done(update.file.relpath, record, 0)


def _restore(target: Target, restore: Restore) -> Done:
    log.debug("restore %s (%s)", restore.relpath, restore.version or "headers")
    etag = target.bucket.copy(object_key(target.prefix, restore.relpath), restore.record.headers, restore.version)
    return Done(restore.relpath, restore.record._replace(etag=etag), 0)


Task = Upload | HeaderUpdate | Restore


def _do(target: Target, task: Task, tally: Tally) -> Done:
    if isinstance(task, Upload):
        return _upload(target, task, tally)
    if isinstance(task, HeaderUpdate):
        return _update_headers(target, task)
    return _restore(target, task)


def _run_phase(
    pool: ThreadPoolExecutor,
    target: Target,
    tasks: list[Task],
    outcome: Outcome,
    tally: Tally,
    stop: Stop,
) -> None:
    """Run tasks concurrently; on the first failure, or when asked to stop, start no more."""

    def run(task: Task) -> Done:
        stop.check("no more requests started")
        done = _do(target, task, tally)
        tally.add_file()
        return done

    futures: list[Future[Done]] = [pool.submit(run, t) for t in tasks]
    _until_failure_or_stop(futures, stop)
    for future in futures:
        future.cancel()  # only those not started yet
    wait(futures, timeout=GRACE_S if stop else None)  # after the grace, what still runs is abandoned
    for future in futures:
        if future.cancelled() or not future.done():
            continue
        error = future.exception()
        if error is None:
            done = future.result()
            outcome.records[done.relpath] = done.record
            outcome.bytes_sent += done.bytes_sent
        elif outcome.error is None:
            outcome.error = _reported(error)
    if stop and outcome.error is None:
        outcome.error = Interrupted("interrupted", stop.signum)


def _until_failure_or_stop(futures: list[Future[Done]], stop: Stop) -> None:
    settled = _Settled(futures)
    while not stop and not settled.wait(POLL_S):
        pass


class _Settled:
    """Set at the first failure, or once every future is done: what the phase waits for.

    Told by each future as it ends, so a poll for a stop costs the same
    however many requests are in flight (a `wait` over the pending futures
    took every one's lock twice, ten times a second: 0.3 s of a first upload).
    """

    def __init__(self, futures: list[Future[Done]]) -> None:
        self._event = threading.Event()
        self._left = len(futures)
        self._lock = threading.Lock()
        if not futures:
            self._event.set()
        for future in futures:
            future.add_done_callback(self._ended)

    def _ended(self, future: Future[Done]) -> None:
        failed = not future.cancelled() and future.exception() is not None
        with self._lock:
            self._left -= 1
            if failed or not self._left:
                self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def _reported(error: BaseException) -> PublishError:
    """A PublishError as it is; anything else is a bug, and keeps its traceback."""
    if isinstance(error, PublishError):
        return error
    if isinstance(error, OSError):  # a file changed or vanished under the publish
        return PublishError(f"cannot read {error.filename}: {error.strerror}: build again, then publish")
    raise error


def delete(target: Target, relpaths: tuple[str, ...], outcome: Outcome, stop: Stop) -> None:
    """Delete, unless asked to stop; stop at the first refusal and say which key."""
    if stop:
        outcome.error = Interrupted("interrupted before deleting", stop.signum)
        return
    try:
        refused = target.bucket.delete([object_key(target.prefix, r) for r in relpaths])
    except PublishError as error:
        outcome.error = error
        return
    outcome.deleted += [r for r in relpaths if target.prefix + r not in refused]
    if refused:
        key, detail = next(iter(refused.items()))
        outcome.error = PublishError(f"could not delete s3://{target.bucket.name}/{key}: {detail}")


def _phases(plan: Plan, first_alone: bool) -> list[list[Task]]:
    """Assets, header updates and restored assets, then pages, then redirects (a redirect points at a page,
    which is there before it); with `first_alone`, the smallest of the first goes before all.

    A store may make room for a bucket on its first write, and make writers
    that come meanwhile wait: SeaweedFS grows a new bucket's volumes then, and
    32 concurrent first PUTs waited a second for it where one alone took 0.2 s.
    """
    assets: list[Task] = [u for u in plan.uploads if not u.is_page]
    assets += list(plan.header_updates)
    assets += [r for r in plan.restores if not r.is_page]
    pages: list[Task] = [u for u in plan.uploads if u.is_page and not u.is_redirect]
    pages += [r for r in plan.restores if r.is_page]
    redirects: list[Task] = [u for u in plan.uploads if u.is_redirect]
    phases = [assets, pages, redirects]
    if first_alone and (head := assets or pages):
        smallest = min(range(len(head)), key=lambda index: _size(head[index]))
        phases.insert(0, [head.pop(smallest)])
    return [tasks for tasks in phases if tasks]


def _size(task: Task) -> int:
    return task.record.size if isinstance(task, Restore) else task.file.size


def send(
    plan: Plan, target: Target, workers: int, stop: Stop, first_alone: bool = False, tally: Tally | None = None
) -> Outcome:
    """Uploads and header updates in phases (see `_phases`); stops at the first failure, or when asked to."""
    outcome = Outcome()
    tally = tally or Tally(plan)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for tasks in _phases(plan, first_alone):
            if outcome.error is None:
                _run_phase(pool, target, tasks, outcome, tally, stop)
    finally:
        pool.shutdown(wait=not stop, cancel_futures=True)  # requests abandoned after a stop are not waited for
    return outcome
