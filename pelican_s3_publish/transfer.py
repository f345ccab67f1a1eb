"""Carry out a plan against a bucket, concurrently, in a safe order.

Order: assets and header updates, then pages and feeds (so no page links to
an asset not yet there). Deletes are a separate step the caller runs only when
everything sent succeeded, and the caller writes the manifest after both.
Nothing here knows about Pelican.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

from . import log
from .client import Connection, explain
from .errors import PublishError
from .etags import content_md5, normalise
from .headers import Headers, to_boto
from .local import LocalFile
from .plan import HeaderUpdate, Plan, Upload
from .remote import Record, parse_xml

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from .s3_wire import S3Wire

DELETE_BATCH = 1000
SMALL_BODY = 1024 * 1024


@dataclass(frozen=True)
class Target:
    connection: Connection  # botocore, made on first use: copies and multipart uploads
    wire: S3Wire  # single PUTs and deletes, the bulk of a publish
    bucket: str
    prefix: str
    part_size: int


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


def _put(target: Target, file: LocalFile, headers: Headers) -> Done:
    md5 = base64.b64encode(bytes.fromhex(file.md5)).decode()
    with open(file.path, "rb") as handle:
        # Up to a megabyte is one buffer; more streams from disk, so memory stays bounded.
        body = handle.read() if file.size <= SMALL_BODY else handle
        etag = target.wire.put_object(
            target.prefix + file.relpath, body, file.size, {**dict(headers), "content-md5": md5}
        )
    record = Record(file.md5, file.size, normalise(etag), headers, file.sha256)
    return Done(file.relpath, record, file.size)


def _parts(path: str, part_size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while part := handle.read(part_size):
            yield part


def _put_multipart(target: Target, file: LocalFile, headers: Headers) -> Done:
    """Parts go up one after another here, while other workers send other files."""
    key = target.prefix + file.relpath
    client = target.connection.client
    upload_id = client.create_multipart_upload(Bucket=target.bucket, Key=key, **to_boto(headers))["UploadId"]
    try:
        parts: list[CompletedPartTypeDef] = []
        for number, data in enumerate(_parts(file.path, target.part_size), start=1):
            response = client.upload_part(
                Bucket=target.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=content_md5(data),
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
        done = client.complete_multipart_upload(
            Bucket=target.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        client.abort_multipart_upload(Bucket=target.bucket, Key=key, UploadId=upload_id)
        raise
    record = Record(file.md5, file.size, normalise(done["ETag"]), headers, file.sha256)
    return Done(file.relpath, record, file.size)


def _upload(target: Target, upload: Upload) -> Done:
    send = _put_multipart if upload.file.size > target.part_size else _put
    log.debug("upload %s (%s)", upload.file.relpath, upload.reason)
    return send(target, upload.file, upload.headers)


def _update_headers(target: Target, update: HeaderUpdate) -> Done:
    key = target.prefix + update.file.relpath
    log.debug("update headers of %s", update.file.relpath)
    response = target.connection.client.copy_object(
        Bucket=target.bucket,
        Key=key,
        CopySource={"Bucket": target.bucket, "Key": key},
        MetadataDirective="REPLACE",
        **to_boto(update.headers),
    )
    etag = normalise(response["CopyObjectResult"]["ETag"])
    record = Record(update.file.md5, update.file.size, etag, update.headers, update.file.sha256)
    return Done(update.file.relpath, record, 0)


def _key_of(task: Upload | HeaderUpdate) -> str:
    return task.file.relpath


def _run_phase(
    pool: ThreadPoolExecutor,
    target: Target,
    tasks: list[Upload | HeaderUpdate],
    outcome: Outcome,
) -> None:
    """Run tasks concurrently; on the first failure, cancel what has not started."""

    def run(task: Upload | HeaderUpdate) -> Done:
        if isinstance(task, Upload):
            return _upload(target, task)
        return _update_headers(target, task)

    futures: dict[Future[Done], Upload | HeaderUpdate] = {pool.submit(run, t): t for t in tasks}
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in pending:
        future.cancel()
    wait(pending)
    for future, task in futures.items():
        if future.cancelled():
            continue
        error = future.exception()
        if error is None:
            done = future.result()
            outcome.records[done.relpath] = done.record
            outcome.bytes_sent += done.bytes_sent
        elif outcome.error is None:
            outcome.error = _explained(error, target, _key_of(task))


def _explained(error: BaseException, target: Target, relpath: str) -> PublishError:
    if not isinstance(error, Exception):
        raise error
    return explain(error, target.bucket, target.prefix + relpath)


def _delete_request(keys: list[str]) -> bytes:
    # html.escape, not xml.sax.saxutils: that one imports urllib.request (20 ms at start-up).
    objects = "".join(f"<Object><Key>{escape(key, quote=False)}</Key></Object>" for key in keys)
    return f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()


def _refused_deletes(answer: bytes) -> dict[str, str]:
    """Key -> "Code Message" for each object a DeleteObjects answer says was not deleted."""
    root, ns = parse_xml(answer)
    refused = {}
    for error in root.iterfind(ns + "Error"):
        detail = f"{error.findtext(ns + 'Code', '')} {error.findtext(ns + 'Message', '')}"
        refused[error.findtext(ns + "Key", "")] = detail.strip()
    return refused


def delete(target: Target, relpaths: tuple[str, ...], outcome: Outcome) -> None:
    """Delete in batches; stop at the first failure and say which key."""
    for start in range(0, len(relpaths), DELETE_BATCH):
        batch = relpaths[start : start + DELETE_BATCH]
        body = _delete_request([target.prefix + r for r in batch])
        headers = {"content-md5": content_md5(body), "content-type": "application/xml"}
        try:
            answer = target.wire.request("POST", "", "DeleteObjects", query={"delete": ""}, headers=headers, body=body)
        except Exception as error:
            outcome.error = _explained(error, target, batch[0])
            return
        refused = _refused_deletes(answer.body)
        outcome.deleted += [r for r in batch if target.prefix + r not in refused]
        if refused:
            key, detail = next(iter(refused.items()))
            outcome.error = PublishError(f"could not delete s3://{target.bucket}/{key}: {detail}")
            return


def _phases(plan: Plan, first_alone: bool) -> list[list[Upload | HeaderUpdate]]:
    """Assets and header updates, then pages; with `first_alone`, the smallest of the first goes before all.

    A store may make room for a bucket on its first write, and make writers
    that come meanwhile wait: SeaweedFS grows a new bucket's volumes then, and
    32 concurrent first PUTs waited a second for it where one alone took 0.2 s.
    """
    assets: list[Upload | HeaderUpdate] = [u for u in plan.uploads if not u.is_page]
    assets += list(plan.header_updates)
    pages: list[Upload | HeaderUpdate] = [u for u in plan.uploads if u.is_page]
    phases = [assets, pages]
    if first_alone and (head := assets or pages):
        smallest = min(range(len(head)), key=lambda index: head[index].file.size)
        phases.insert(0, [head.pop(smallest)])
    return [tasks for tasks in phases if tasks]


def send(plan: Plan, target: Target, workers: int, first_alone: bool = False) -> Outcome:
    """Uploads and header updates in phases (see `_phases`); stops at the first failure."""
    outcome = Outcome()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for tasks in _phases(plan, first_alone):
            if outcome.error is None:
                _run_phase(pool, target, tasks, outcome)
    return outcome
