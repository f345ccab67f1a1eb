"""The real bucket, `S3Bucket`: each request sent by the library that does it best, as the store allows.

- botocore has resolved where requests go and with which credentials (`resolution`);
- obstore (the Rust `object_store`) sends the hot requests, PUT, GET and
  LIST, at a tenth of botocore's CPU per request and with the interpreter
  lock released while it waits;
- boto3 does what obstore cannot express: a PUT with a canned ACL, `Expires`
  or a website redirect, a HEAD that shows an object's headers, DeleteObjects
  whose answer names each key refused, versions, and large files in parts;
- a request signed by botocore's signer and sent on botocore's HTTP session
  where neither fits: a copy that replaces headers (a third of boto3's CPU),
  and bodies with Content-MD5 for a store that takes no additional checksums.

What the store does (`capabilities`) decides how: a condition it does not
enforce is checked before and after the write instead, a store without
checksums gets Content-MD5, DeleteObjects gets Content-MD5 or becomes single
deletes. Retries are botocore's standard mode for every request, counted.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..errors import PublishError
from ..etags import normalise
from ..headers import META_PREFIX, Headers
from ..manifest import Listed
from ..settings import Settings
from . import probe
from .capabilities import Capabilities
from .connections import http_session, obstore_store
from .failures import Failure, explain
from .interface import EVERY_KEY, LISTING_PAGE, PLAIN, BucketError, Head, KeyRange, Version, Write, WriteConflict
from .library_errors import Refused, failure_of
from .resolution import resolve
from .retries import ALSO_RETRIED, Failed, Retrier

DELETE_BATCH = 1000

# Headers obstore sends as object attributes; metadata goes as `x-amz-meta-*`.
OBSTORE_ATTRIBUTES = {
    "content-type": "Content-Type",
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "content-language": "Content-Language",
    "x-amz-storage-class": "Storage-Class",
}
# Applied by the store's own configuration to every write, not per object.
STORE_HEADERS = frozenset({"x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"})

# What S3 calls each header in boto3's PutObject/CopyObject parameters.
BOTO_PARAMS = {
    "content-type": "ContentType",
    "content-encoding": "ContentEncoding",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-language": "ContentLanguage",
    "expires": "Expires",
    "x-amz-website-redirect-location": "WebsiteRedirectLocation",
    "x-amz-storage-class": "StorageClass",
    "x-amz-acl": "ACL",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
}
# An MD5 ETag: what a plain PUT answers on stores that can be checked by it.
MD5_ETAG = re.compile(r"[0-9a-f]{32}")


def _up_to_the_end(listed: Iterable[tuple[str, Listed]], within: KeyRange) -> dict[str, Listed]:
    """A range's objects, in key order from its start: the listing stops at the first key past its end."""
    found: dict[str, Listed] = {}
    for key, entry in listed:
        if within.passed(key):
            break
        found[key] = entry
    return found


def _listed_by_obstore(item: Mapping[str, Any]) -> tuple[str, Listed]:
    return item["path"], Listed(item["size"], normalise(item["e_tag"] or ""))


def _listed_by_boto3(item: Mapping[str, Any]) -> tuple[str, Listed]:
    return item["Key"], Listed(item["Size"], normalise(item["ETag"]))


def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class S3Bucket:
    """A real bucket. Made once per publish: the resolution happens here, the requests later."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.bucket
        self._settings = settings
        resolved = resolve(settings)
        self._client = resolved.client
        self._session = resolved.session
        self.address = resolved.address
        self.connect_timeout_s = float(resolved.client.meta.config.connect_timeout)
        self._credentials = resolved.credentials
        self._store = obstore_store(settings, resolved)
        self._http = http_session(settings, resolved)
        self._retrier = Retrier(self._client.meta.service_model.operation_model)
        self._client.meta.events.register("after-call.s3", self._count_retries)
        self._client.meta.events.register("before-call.s3.DeleteObjects", self._delete_with_md5)
        self.where = self.address.bucket_url(self.name)
        self._capabilities = Capabilities(self.where)  # what AWS does, until the store is asked

    def __repr__(self) -> str:
        return f"S3Bucket({self.name!r} at {urlsplit(self.address.endpoint)._replace(path='').geturl()})"

    @property
    def retries(self) -> int:
        return self._retrier.count

    # --- What the store does ---

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def know(self, known: Capabilities | None, prefix: str) -> Capabilities:
        if known is None or known.where != self.where or known.acl != self._settings.acl:
            return probe.find_out(self, prefix, self._settings.acl)
        self._capabilities = known
        return known

    def adopt(self, capabilities: Capabilities) -> None:
        self._capabilities = capabilities

    def _learn(self, **changes: Any) -> None:
        """A store answered against what was known of it: work with what it said from now on."""
        self._capabilities = replace(self._capabilities, **changes)

    # --- Sending, counting, failing ---

    def _count_retries(self, parsed: Mapping[str, Any], **_: Any) -> None:
        self._retrier.add(int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)))

    def call(
        self, operation: str, key: str | None, request: Callable[[], Any], retry: bool = True, acl: str | None = None
    ) -> Any:
        try:
            return self.attempt(operation, key, request, retry, acl)
        except Failed as failed:
            raise self.explain(failed.failure) from None

    def explain(self, failure: Failure) -> BucketError:
        return explain(failure, self.name, self.address.endpoint)

    def attempt(
        self, operation: str, key: str | None, request: Callable[[], Any], retry: bool = True, acl: str | None = None
    ) -> Any:
        """`request`, retried as botocore would; `Failed` with what the store answered if it never succeeds."""
        return self._retrier.call(operation, request, lambda error: failure_of(error, operation, key, acl), retry)

    def _boto3_call(self, operation: str, key: str | None, request: Callable[[], Any], acl: str | None = None) -> Any:
        """boto3's requests are retried by botocore itself (standard mode), and counted by `_count_retries`."""
        return self.call(operation, key, request, retry=False, acl=acl)

    def _signed(self, method: str, key: str, headers: Mapping[str, str], body: bytes = b"") -> Any:
        """One request signed by botocore's SigV4 signer, sent on botocore's HTTP session; `Refused` if refused.

        S3 may answer 200 and fail in the body (a copy): that is a refusal too.
        """
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method, self._object_url(key), headers=dict(headers), data=body)
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.address.region).add_auth(request)
        answer = self._http.send(request.prepare())
        content = bytes(answer.content)
        if answer.status_code == 412 and ("if-match" in headers or "if-none-match" in headers):
            raise WriteConflict(key)
        if answer.status_code != 200 or b"<Error>" in content:
            raise Refused(answer.status_code if answer.status_code != 200 else 500, content)
        return answer

    def _object_url(self, key: str) -> str:
        base = self.address.endpoint + ("/" if self.address.virtual_hosted else f"/{self.name}/")
        return base + quote(key, safe="/~")

    # --- Reading ---

    def list_objects(self, prefix: str, exact: bool = False, within: KeyRange = EVERY_KEY) -> dict[str, Listed]:
        if self._lists_with_boto3(exact):
            listing = functools.partial(self._list_with_boto3, prefix, within)
            return dict(self._boto3_call("ListObjectsV2", None, listing))
        return dict(self.call("ListObjectsV2", None, functools.partial(self._list_with_obstore, prefix, within)))

    def _lists_with_boto3(self, exact: bool) -> bool:
        """Keys that end in '/' may be there: obstore's paths cannot end in '/', boto3 lists them."""
        return exact or self._settings.strip_index_html

    def _list_with_obstore(self, prefix: str, within: KeyRange) -> dict[str, Listed]:
        import obstore

        batches = obstore.list(self._store, prefix=prefix or None, offset=within.after, chunk_size=LISTING_PAGE)
        listed = (_listed_by_obstore(item) for batch in batches for item in batch)
        return _up_to_the_end(listed, within)

    def _list_with_boto3(self, prefix: str, within: KeyRange) -> dict[str, Listed]:
        start = {"StartAfter": within.after} if within.after is not None else {}
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix, **start)
        listed = (_listed_by_boto3(item) for page in pages for item in page.get("Contents", []))
        return _up_to_the_end(listed, within)

    def list_folders(self, prefix: str, exact: bool = False) -> tuple[dict[str, Listed], tuple[str, ...]]:
        folders: tuple[dict[str, Listed], tuple[str, ...]]
        if self._lists_with_boto3(exact):
            folders = self._boto3_call("ListObjectsV2", None, functools.partial(self._folders_with_boto3, prefix))
        else:
            folders = self.call("ListObjectsV2", None, functools.partial(self._folders_with_obstore, prefix))
        return folders

    def _folders_with_obstore(self, prefix: str) -> tuple[dict[str, Listed], tuple[str, ...]]:
        import obstore

        found = obstore.list_with_delimiter(self._store, prefix or None)
        objects = dict(map(_listed_by_obstore, found["objects"]))
        return objects, tuple(folder + "/" for folder in found["common_prefixes"])  # obstore's paths lose the '/'

    def _folders_with_boto3(self, prefix: str) -> tuple[dict[str, Listed], tuple[str, ...]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix, Delimiter="/")
        objects: dict[str, Listed] = {}
        folders: list[str] = []
        for page in pages:
            objects.update(map(_listed_by_boto3, page.get("Contents", [])))
            folders += (common["Prefix"] for common in page.get("CommonPrefixes", []))
        return objects, tuple(folders)

    def get(self, key: str) -> tuple[bytes, str] | None:
        import obstore

        def read() -> tuple[bytes, str] | None:
            try:
                answer = obstore.get(self._store, key)
            except FileNotFoundError:
                return None
            return bytes(answer.bytes()), normalise(answer.meta["e_tag"] or "")

        found: tuple[bytes, str] | None = self.call("GetObject", key, read)
        return found

    def head(self, key: str) -> Head | None:
        def read() -> Head | None:
            try:
                answer = self._client.head_object(Bucket=self.name, Key=key)
            except self._client.exceptions.ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None
                raise
            return Head(normalise(answer["ETag"]), from_head(answer), int(answer.get("ContentLength", -1)))

        found: Head | None = self._boto3_call("HeadObject", key, read)
        return found

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        """boto3: obstore lists only the latest versions."""
        if not self.keeps_versions():
            return None

        def listing() -> dict[str, list[Version]]:
            found: dict[str, list[Version]] = {}
            for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Versions", []):
                    found.setdefault(item["Key"], []).append(Version(item["VersionId"], normalise(item["ETag"])))
            return found

        versions: dict[str, list[Version]] = self._boto3_call("ListObjectVersions", None, listing)
        return versions

    def keeps_versions(self) -> bool:
        """Versioning is on; a store that implements none (501) keeps none."""
        versioning = functools.partial(self._client.get_bucket_versioning, Bucket=self.name)
        try:
            answer = self.attempt("GetBucketVersioning", None, versioning, retry=False)
        except Failed as failed:
            if failed.failure.not_implemented:
                return False
            raise self.explain(failed.failure) from None
        return bool(answer.get("Status") == "Enabled")

    # --- For --check ---

    def whoami(self) -> str:
        """Where the credentials came from, and on AWS whose they are (STS GetCallerIdentity)."""
        key = self._credentials.access_key
        found = f"from {self._credentials.method} (access key {key[:4]}...{key[-4:]})"
        if not re.search(r"\.amazonaws\.com(\.cn)?$", urlsplit(self.address.endpoint).hostname or ""):
            return found  # another store: STS is AWS's alone
        sts = self._session.create_client("sts", region_name=self.address.region)
        identity = self._boto3_call("GetCallerIdentity", None, sts.get_caller_identity)
        return f"{found}, {identity['Arn']}"

    def reach(self, prefix: str) -> None:
        """One listing of at most one key: the bucket is there and these credentials may list it."""
        listing = functools.partial(self._client.list_objects_v2, Bucket=self.name, Prefix=prefix, MaxKeys=1)
        self._boto3_call("ListObjectsV2", None, listing)

    # --- Writing ---

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        size = len(body) if isinstance(body, bytes) else body.stat().st_size
        if how.conditional and not self._enforces(how):
            etag = self._put_checked(key, body, headers, how)
        elif isinstance(body, Path) and size > self._settings.part_size and not how.conditional:
            etag = self._boto3_call("PutObject", key, lambda: self._upload_in_parts(key, body, headers, how))
        elif not _obstore_can_send(headers) or key.endswith("/"):  # obstore would drop the key's final '/'
            data = body if isinstance(body, bytes) else body.read_bytes()
            acl = dict(headers).get("x-amz-acl")
            etag = self._boto3_call("PutObject", key, lambda: self._put_with_boto3(key, data, headers), acl=acl)
        else:
            etag = self._put_small(key, body, headers, how)
        if how.progress is not None:
            how.progress(size)
        return str(etag)

    def _enforces(self, how: Write) -> bool:
        found = self._capabilities
        return (found.conditional_create if how.create else found.conditional_replace) == "enforced"

    def _put_small(self, key: str, body: bytes | Path, headers: Headers, how: Write) -> str:
        """obstore with its checksum, or a PUT with Content-MD5 where checksums are not taken; a condition
        the store turns out not to implement (501) is learnt, and checked instead."""
        if self._capabilities.checksums:
            send = functools.partial(self._put_with_obstore, key, body, headers, how)
        else:
            data = body if isinstance(body, bytes) else body.read_bytes()
            send = functools.partial(self.put_with_md5, key, data, headers, how)
        try:
            return str(self.attempt("PutObject", key, send, how.retry))
        except Failed as failed:
            if not (how.conditional and failed.failure.not_implemented):
                raise self.explain(failed.failure) from None
        self._learn(**{"conditional_create" if how.create else "conditional_replace": "refused"})
        return self._put_checked(key, body, headers, how)

    def _put_checked(self, key: str, body: bytes | Path, headers: Headers, how: Write) -> str:
        """For a store that does not enforce the condition: check it, write, and read the ETag back.

        Catches a publisher that wrote before the check or after the write; one
        that wrote in between goes unseen, which the summary says once.
        """
        current = self.head(key)
        if (current is not None) if how.create else (current is None or current.etag != how.if_match):
            raise WriteConflict(key)
        etag = self.put(key, body, headers, Write(retry=how.retry))
        after = self.head(key)
        if after is None or after.etag != etag:
            raise WriteConflict(key)
        return etag

    def _put_with_obstore(self, key: str, body: bytes | Path, headers: Headers, how: Write) -> str:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: Any = "create" if how.create else {"e_tag": f'"{how.if_match}"'} if how.if_match else "overwrite"
        try:
            answer = obstore.put(
                self._store, key, body, attributes=_attributes(headers), mode=mode, use_multipart=False
            )
        except (AlreadyExistsError, PreconditionError) as error:
            if failure_of(error, "PutObject", key).code in ALSO_RETRIED:  # obstore takes AWS's 409 for a 412
                raise
            raise WriteConflict(key) from None
        return normalise(answer["e_tag"] or "")

    def put_with_checksum(self, key: str, data: bytes, headers: Headers) -> str:
        """obstore's PUT, the body's SHA-256 in `x-amz-checksum-sha256` for the store to check."""
        return self._put_with_obstore(key, data, headers, PLAIN)

    def put_with_md5(self, key: str, data: bytes, headers: Headers, how: Write = PLAIN) -> str:
        """A PUT with Content-MD5, for a store that takes no additional checksums; the ETag checked against it.

        A body changed on the way is refused by the store (BadDigest), or shows in an ETag that is not its MD5.
        """
        wanted = {**dict(headers), "content-md5": content_md5(data)}
        if how.create:
            wanted["if-none-match"] = "*"
        elif how.if_match is not None:
            wanted["if-match"] = f'"{how.if_match}"'
        etag = normalise(self._signed("PUT", key, wanted, data).headers.get("ETag", ""))
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if self._capabilities.etag_is_md5 and MD5_ETAG.fullmatch(etag) and etag != md5:
            raise Refused(400, b"<Error><Code>BadDigest</Code></Error>")
        return etag

    def _put_with_boto3(self, key: str, data: bytes, headers: Headers) -> str:
        """Canned ACLs, Expires and website redirects, which obstore cannot send.

        With the body's MD5, which every S3 store checks: a body changed on the way is refused (BadDigest).
        """
        params = to_boto(headers)
        answer = self._client.put_object(Bucket=self.name, Key=key, Body=data, ContentMD5=content_md5(data), **params)
        return normalise(answer["ETag"])

    def _upload_in_parts(self, key: str, path: Path, headers: Headers, how: Write) -> str:
        """s3transfer: parts go up at once, and an abort that fails never hides why the upload failed."""
        from boto3.s3.transfer import S3Transfer, TransferConfig

        transfer = TransferConfig(
            multipart_threshold=self._settings.part_size,
            multipart_chunksize=self._settings.part_size,
            max_concurrency=min(self._settings.workers, 8),
        )
        # boto3 takes its TransferConfig here; its stubs name s3transfer's older Config.
        with S3Transfer(self._client, transfer) as uploads:  # type: ignore[arg-type]
            uploads.upload_file(str(path), self.name, key, extra_args=to_boto(headers), callback=how.progress)
        return normalise(self._client.head_object(Bucket=self.name, Key=key)["ETag"])

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        if self.address.service != "s3":  # a directory bucket signs with session keys: boto3 knows how
            return str(self._boto3_call("CopyObject", key, lambda: self._copy_with_boto3(key, headers, version)))
        return str(self.call("CopyObject", key, lambda: self._copy_signed(key, headers, version)))

    def _copy_with_boto3(self, key: str, headers: Headers, version: str | None) -> str:
        source = {"Bucket": self.name, "Key": key} | ({"VersionId": version} if version else {})
        answer = self._client.copy_object(
            Bucket=self.name, Key=key, CopySource=source, MetadataDirective="REPLACE", **to_boto(headers)
        )
        return normalise(answer["CopyObjectResult"]["ETag"])

    def _copy_signed(self, key: str, headers: Headers, version: str | None) -> str:
        """CopyObject signed here: obstore's copy cannot replace headers, and boto3's client spends about
        1.7 ms of CPU per call building the request from its model; a header update of a whole site is
        thousands of them. Our headers are already the request's headers, so this costs a third of that."""
        source = quote(f"/{self.name}/{key}", safe="/~") + (f"?versionId={quote(version, safe='')}" if version else "")
        copy_headers = {**dict(headers), "x-amz-copy-source": source, "x-amz-metadata-directive": "REPLACE"}
        body = bytes(self._signed("PUT", key, copy_headers).content)
        etag = re.search(rb"<ETag>([^<]*)</ETag>", body)
        if etag is None:  # an answer cut short: the copy's ETag is unknown, so it cannot be recorded; retried
            raise Refused(500, body)
        return normalise(html.unescape(etag[1].decode()))

    # --- Deleting ---

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        refused: dict[str, str] = {}
        for start in range(0, len(keys), DELETE_BATCH):
            refused |= self._delete_some(list(keys[start : start + DELETE_BATCH]))
        return refused

    def _delete_some(self, keys: list[str]) -> dict[str, str]:
        """As the store allows: DeleteObjects, with Content-MD5 if it asks for it, else one key at a time."""
        while self._capabilities.deletes != "single":
            try:
                found: dict[str, str] = self.attempt(
                    "DeleteObjects", keys[0], functools.partial(self._delete_batch, keys), retry=False
                )
                return found
            except Failed as failed:
                learnt = _delete_lesson(failed.failure, self._capabilities)
                if learnt is None:
                    raise self.explain(failed.failure) from None
                self._learn(deletes=learnt)
        return self._delete_each(keys)

    def _delete_batch(self, keys: list[str]) -> dict[str, str]:
        """boto3: its answer names each key S3 refused, and the keys it names are all that stay."""
        answer = self._client.delete_objects(
            Bucket=self.name, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        return {
            error["Key"]: f"{error.get('Code', '')} {error.get('Message', '')}".strip()
            for error in answer.get("Errors", [])
        }

    def _delete_with_md5(self, params: dict[str, Any], **_: Any) -> None:
        """botocore's event before it sends DeleteObjects: Content-MD5 in place of its CRC32, where needed.

        botocore ≥ 1.36 always sends a CRC32 here (the operation requires a checksum): a store
        that requires Content-MD5 refuses it, and so does one that takes no additional checksums.
        Runs after botocore escapes the XML body.
        """
        if self._capabilities.deletes == "batch-md5" or not self._capabilities.checksums:
            params["headers"]["Content-MD5"] = content_md5(params["body"])
            params["context"]["checksum"] = {}

    def _delete_each(self, keys: Iterable[str]) -> dict[str, str]:
        def delete_one(key: str) -> tuple[str, str]:
            try:
                self._boto3_call("DeleteObject", key, lambda: self._client.delete_object(Bucket=self.name, Key=key))
            except PublishError as error:
                return key, str(error)
            return key, ""

        with ThreadPoolExecutor(max_workers=self._settings.workers) as pool:
            return {key: reason for key, reason in pool.map(delete_one, keys) if reason}


def _delete_lesson(failure: Failure, known: Capabilities) -> str | None:
    """What a refused DeleteObjects teaches: Content-MD5 is wanted, or DeleteObjects is not there at all."""
    if known.deletes == "batch" and (failure.code == "MissingContentMD5" or "content-md5" in failure.message.lower()):
        return "batch-md5"
    if failure.not_implemented:
        return "single"
    return None


def _obstore_can_send(headers: Headers) -> bool:
    return all(
        name in OBSTORE_ATTRIBUTES or name in STORE_HEADERS or name.startswith(META_PREFIX) for name, _ in headers
    )


def _attributes(headers: Headers) -> dict[str, str]:
    attributes = {}
    for name, value in headers:
        if name in OBSTORE_ATTRIBUTES:
            attributes[OBSTORE_ATTRIBUTES[name]] = value
        elif name.startswith(META_PREFIX):
            attributes[name[len(META_PREFIX) :]] = value
    return attributes


def to_boto(headers: Headers) -> dict[str, Any]:
    """PutObject/CopyObject parameters for these headers."""
    params: dict[str, Any] = {}
    metadata = {}
    for name, value in headers:
        if name.startswith(META_PREFIX):
            metadata[name[len(META_PREFIX) :]] = value
        else:
            params[BOTO_PARAMS[name]] = value
    if metadata:
        params["Metadata"] = metadata
    return params


def from_head(response: Mapping[str, Any]) -> Headers:
    """The headers a HeadObject answer shows (an ACL is never shown)."""
    found = {
        name: response[param]
        for name, param in BOTO_PARAMS.items()
        if param != "Expires" and isinstance(response.get(param), str)
    }
    if response.get("ExpiresString"):
        found["expires"] = response["ExpiresString"]
    if found.get("x-amz-storage-class") == "STANDARD":
        del found["x-amz-storage-class"]
    for key, value in (response.get("Metadata") or {}).items():
        found[META_PREFIX + key.lower()] = value
    return tuple(sorted(found.items()))
