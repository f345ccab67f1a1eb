"""The bucket: the one boundary to S3, and the only module that knows which library speaks to it.

`Bucket` is the small interface the rest of the package works against. Its
real implementation, `S3Bucket`, splits the work by what each library does best:

- botocore decides, once per publish, where requests go (region, endpoint:
  FIPS, dual-stack, `AWS_ENDPOINT_URL_S3`, S3 Express, the AWS config file),
  with which credentials (boto3's whole chain), through which proxy and with
  which CA bundle; nothing here encodes those rules;
- obstore (the Rust `object_store`) sends the hot requests, PUT, GET and
  LIST, at a tenth of botocore's CPU per request and with the interpreter
  lock released while it waits;
- boto3 does what obstore cannot express: a copy that replaces headers, a
  PUT with a canned ACL, `Expires` or a website redirect, a HEAD that shows
  an object's headers, a DeleteObjects whose answer names each key refused,
  and large files in parts through s3transfer.

Retries are botocore's standard mode, applied to every obstore request (its
own retries are off), so each retry is botocore's decision and is counted.
Failures leave this module as `BucketError`, already worded for the user.
`MemoryBucket` keeps the same promises in memory for fast tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from .errors import PublishError, SettingsError
from .etags import normalise
from .headers import META_PREFIX, Headers
from .manifest import Listed
from .settings import Settings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config, S3Store

MAX_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 10
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

NO_BUCKET = {"NoSuchBucket"}
DENIED = {"AccessDenied", "AllAccessDisabled", "Forbidden"}
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
CORRUPTED = {"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"}

Progress = Callable[[int], None]  # told the bytes of each part or object as it lands


class BucketError(PublishError):
    """A request the store refused or could not answer, worded for the user (what, where, what to do)."""


class WriteConflict(Exception):
    """A conditional write found another version of the object than the one it was conditioned on."""


@dataclass(frozen=True)
class Write:
    """How to write: on what condition (WriteConflict when the object is not that
    version, or exists at all), whether to retry, and whom to tell of the bytes sent."""

    if_match: str | None = None
    create: bool = False
    retry: bool = True
    progress: Progress | None = None


PLAIN = Write()


@dataclass(frozen=True)
class Version:
    id: str
    etag: str


@dataclass(frozen=True)
class Head:
    etag: str
    headers: Headers
    size: int


class Bucket(Protocol):
    """One bucket, as a publish needs it. Keys are whole keys (the prefix included)."""

    name: str

    @property
    def aws_session(self) -> Any:
        """The boto3 session behind it, for the CDN's credentials; None in memory."""
        ...

    def list_objects(self, prefix: str, exact: bool = False) -> dict[str, Listed]:
        """Every object under the prefix; `exact` also lists keys that end in '/' as they are (slower)."""
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when there is none."""
        ...

    def head(self, key: str) -> Head | None: ...

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        """Write one object (in parts when it is large); its ETag."""
        ...

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        """Give an object new headers in place, by a server-side copy (of `version` if given); its new ETag."""
        ...

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        """Every version of each key under the prefix, newest first; None when the bucket keeps no versions."""
        ...

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        """Delete; the keys the store refused, each with its reason."""
        ...

    @property
    def retries(self) -> int: ...


# --- What a failure means to the user -------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request: an answer (status, S3's code) or none (a network fault)."""

    operation: str
    key: str | None
    status: int | None = None
    code: str = ""
    message: str = ""
    network: str = ""  # why no answer came: refused, timed out, TLS, ...

    @property
    def is_certificate(self) -> bool:
        return bool(re.search(r"certificate|SSL|TLS", self.network))


def explain(failure: Failure, bucket: str, endpoint: str) -> BucketError:
    """One actionable line for a failed request."""
    where = f"s3://{bucket}/{failure.key}" if failure.key else f"bucket {bucket}"
    code, operation = failure.code, failure.operation
    message = failure.message.rstrip(".")
    if failure.status is None:
        if failure.is_certificate:
            return BucketError(
                f"the TLS certificate of {endpoint} is not trusted ({_first_line(failure.network)}): "
                "set AWS_CA_BUNDLE to the CA that signed it, or check S3_PUBLISH_ENDPOINT_URL"
            )
        return BucketError(
            f"cannot reach {endpoint} for {where} ({_first_line(failure.network)}): "
            "check S3_PUBLISH_ENDPOINT_URL and the network"
        )
    if code in NO_BUCKET or (failure.status == 404 and not failure.key):
        return BucketError(f"bucket {bucket} does not exist: create it or fix S3_PUBLISH_BUCKET")
    if code in BAD_CREDENTIALS:
        return BucketError(f"the AWS credentials were rejected for {where} ({code}): check the access key and secret")
    if code in DENIED or (failure.status == 403 and not code):
        return BucketError(
            f"access denied: {operation} on {where}: give these credentials s3:{operation} on the bucket"
        )
    if code in WRONG_REGION or failure.status == 301:
        return BucketError(f"{where} is in another region ({message}): set S3_PUBLISH_REGION to the bucket's region")
    if code == "AccessControlListNotSupported":
        return BucketError(
            f"{bucket} has ACLs disabled, so S3_PUBLISH_ACL cannot be sent: "
            "remove S3_PUBLISH_ACL and make the site public with a bucket policy"
        )
    if code in CORRUPTED:
        return BucketError(f"{where}: {code}: the bytes were changed on the way and the store refused them")
    return BucketError(f"S3 refused {operation} on {where}: {code or failure.status} {message}".rstrip())


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no answer"


# --- Retries: botocore's standard mode --------------------------------------------------


@dataclass(frozen=True)
class _Response:
    """The part of an HTTP answer botocore's retry policy reads."""

    status_code: int
    headers: Mapping[str, str]


class Retrier:
    """botocore's standard retry mode (which failures, how long to wait, a shared quota), counted."""

    def __init__(self, operation_models: Callable[[str], Any]) -> None:
        from botocore.exceptions import ConnectionError as BotocoreConnectionError
        from botocore.retries import quota, standard

        throttling = standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        self._conditions = standard.StandardRetryConditions(max_attempts=MAX_ATTEMPTS)
        self._backoff = standard.ExponentialBackoff(throttling_detector=throttling)
        self._quota = standard.RetryQuotaChecker(quota.RetryQuota(), throttling_detector=throttling)
        self._models = operation_models
        self._no_answer = BotocoreConnectionError
        self._lock = threading.Lock()
        self.count = 0

    def call(
        self, operation: str, request: Callable[[], Any], failure_of: Callable[[Exception], Failure], retry: bool = True
    ) -> Any:
        """Run `request` until it succeeds or botocore's policy says stop; then raise its Failure."""
        from botocore.retries.standard import RetryContext

        attempt, request_context = 1, dict[str, Any]()
        while True:
            try:
                answer = request()
            except WriteConflict:
                raise
            except Exception as error:
                failure = failure_of(error)
                context = RetryContext(
                    attempt,
                    operation_model=self._models(operation),
                    parsed_response={"Error": {"Code": failure.code}} if failure.code else None,
                    http_response=_Response(failure.status, {}) if failure.status else None,
                    caught_exception=self._no_answer(error=error) if failure.status is None else None,
                    request_context=request_context,
                )
                if not (retry and self._conditions.is_retryable(context) and self._quota.acquire_retry_quota(context)):
                    raise _Failed(failure) from None
                self.add(1)
                time.sleep(self._backoff.delay_amount(context))
                attempt += 1
                continue
            # botocore hands this its request context, as here; its stubs name another type.
            self._quota.release_retry_quota(request_context, _Response(200, {}))  # type: ignore[arg-type]
            return answer

    def add(self, count: int) -> None:
        with self._lock:
            self.count += count


class _Refused(Exception):
    """A request sent outside obstore and boto3 got this error answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Failed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.operation)
        self.failure = failure


# --- The real bucket ----------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """Where botocore sends one bucket's requests, and how they are signed."""

    endpoint: str  # scheme://host[:port][/path], the bucket in the host for virtual-hosted style
    virtual_hosted: bool
    region: str
    service: str  # "s3", or "s3express" for a directory bucket


class _Prepared(Exception):
    def __init__(self, request: Any, signing: Mapping[str, Any]) -> None:
        super().__init__()
        self.request = request
        self.signing = signing


def _stop_before_signing(request: Any, signing_name: str, region_name: str, **_: Any) -> None:
    signing = {"signing_name": signing_name, "region": region_name, **request.context.get("signing", {})}
    raise _Prepared(request, signing)


def resolve_address(client: Any, bucket: str) -> Address:
    """Let botocore prepare one PutObject and stop it before signing: no credentials, no network."""
    events = client.meta.events
    events.register_first("before-sign.s3.PutObject", _stop_before_signing, unique_id="s3-publish-address")
    try:
        client.put_object(Bucket=bucket, Key="k", Body=b"")
        raise RuntimeError("botocore sent a request it was asked only to prepare")
    except _Prepared as prepared:
        url, signing = urlsplit(prepared.request.url), prepared.signing
    finally:
        events.unregister("before-sign.s3.PutObject", unique_id="s3-publish-address")
    path = url.path[: -len("/k")]
    virtual_hosted = not path.endswith("/" + bucket)
    base = path if virtual_hosted else path[: -len("/" + bucket)]
    return Address(
        f"{url.scheme}://{url.netloc}{base}",
        virtual_hosted,
        str(signing.get("region") or client.meta.region_name),
        str(signing.get("signing_name") or "s3"),
    )


def _boto3_session(settings: Settings) -> Any:
    import boto3
    import botocore.exceptions

    for name in ("botocore", "boto3", "urllib3", "s3transfer"):  # their debug logs print request headers
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return boto3.session.Session(profile_name=settings.profile)
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            f"S3_PUBLISH_PROFILE names the AWS profile {settings.profile!r}, which is not "
            "in ~/.aws/config or ~/.aws/credentials: add it or fix the setting"
        ) from None


def _region(session: Any, settings: Settings) -> str | None:
    return settings.region or session.region_name or ("us-east-1" if settings.endpoint_url else None)


def _client(session: Any, settings: Settings, connect_timeout: float) -> Any:
    from botocore.config import Config

    config = Config(
        max_pool_connections=settings.workers + 2,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=connect_timeout,
        read_timeout=settings.timeout,
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra=f"pelican-s3-publish/{_version()}",
        # Every parameter is built here, not taken from users: checking each
        # request against the model again is CPU per request for nothing.
        parameter_validation=False,
    )
    return session.client(
        "s3", region_name=_region(session, settings), endpoint_url=settings.endpoint_url, config=config
    )


def _connect_timeout(session: Any, settings: Settings) -> float:
    """botocore's connect timeout for this setup (AWS_DEFAULTS_MODE's included), at most CONNECT_TIMEOUT_S.

    A client made with any Config takes Config's 60 s instead of what the
    defaults mode says, so a client made without one is asked (6 ms).
    """
    plain = session.client("s3", region_name=_region(session, settings), endpoint_url=settings.endpoint_url)
    return float(min(CONNECT_TIMEOUT_S, settings.timeout, plain.meta.config.connect_timeout))


def _pem(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"cannot read the CA bundle {path}: {error}: fix AWS_CA_BUNDLE or ca_bundle") from None


def _proxy_options(client: Any, endpoint: str, ca_bundle: str | None) -> ClientConfig:
    """The proxy botocore would use for this endpoint (HTTP(S)_PROXY and NO_PROXY, ports included).

    obstore's HTTP client reads the proxy variables too, with rules of its
    own; naming the proxy here, or excluding the endpoint's host when botocore
    would go direct, makes botocore's reading the one that counts. Credentials
    in the proxy's URL go only where botocore would send them (a user and a
    password, not a user alone).
    """
    from botocore.httpsession import ProxyConfiguration
    from botocore.utils import get_environ_proxies

    config = client.meta.config
    proxies = ProxyConfiguration(config.proxies or get_environ_proxies(endpoint))
    chosen = proxies.proxy_url_for(endpoint)
    if not chosen:
        anyway = ProxyConfiguration(config.proxies or get_environ_proxies("")).proxy_url_for(endpoint)
        return {"proxy_url": anyway, "proxy_excludes": urlsplit(endpoint).hostname or ""} if anyway else {}
    url = urlsplit(chosen)
    if url.username and not proxies.proxy_headers_for(chosen):
        chosen = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()
    options: ClientConfig = {"proxy_url": chosen}
    proxy_ca = (config.proxies_config or {}).get("proxy_ca_bundle") or ca_bundle
    if url.scheme == "https" and (pem := _pem(proxy_ca)):
        options["proxy_ca_certificate"] = pem
    return options


def _store(settings: Settings, session: Any, client: Any, where: Address) -> S3Store:
    from obstore.auth.boto3 import Boto3CredentialProvider
    from obstore.store import S3Store

    ca_bundle = session._session.get_config_variable("ca_bundle")  # boto3 keeps its botocore session here
    client_options: ClientConfig = {
        "allow_http": where.endpoint.startswith("http:"),
        "connect_timeout": timedelta(seconds=client.meta.config.connect_timeout),
        "read_timeout": timedelta(seconds=settings.timeout),
        "timeout": timedelta(hours=24),  # a stalled answer is caught by the read timeout; big files take long
        "pool_max_idle_per_host": str(settings.workers + 2),
        "user_agent": f"pelican-s3-publish/{_version()}",
        **_proxy_options(client, where.endpoint, ca_bundle),
    }
    if pem := _pem(ca_bundle):
        client_options["root_certificate"] = pem
    config: S3Config = {
        "endpoint": where.endpoint,
        "region": where.region,
        "virtual_hosted_style_request": where.virtual_hosted,
        "s3_express": where.service == "s3express",
        "skip_signature": False,
        "conditional_put": "etag",
        # The store checks each body against this (BadDigest): a byte changed on the way is refused.
        "checksum_algorithm": "sha256",
    }
    if settings.sse:
        config["server_side_encryption"] = settings.sse
    if settings.sse_kms_key_id:
        config["sse_kms_key_id"] = settings.sse_kms_key_id
    return S3Store(
        settings.bucket,
        config=config,
        client_options=client_options,
        retry_config={"max_retries": 0},
        credential_provider=Boto3CredentialProvider(session),
    )


def _version() -> str:
    from . import __version__

    return __version__


def _no_credentials() -> BucketError:
    return BucketError(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or S3_PUBLISH_PROFILE"
    )


class S3Bucket:
    """A real bucket. Made once per publish: the resolution happens here, the requests later."""

    def __init__(self, settings: Settings) -> None:
        import botocore.exceptions

        self.name = settings.bucket
        self._settings = settings
        self.aws_session = session = _boto3_session(settings)
        try:
            self.connect_timeout_s = _connect_timeout(session, settings)
            self._client = _client(session, settings, self.connect_timeout_s)
            self.address = resolve_address(self._client, settings.bucket)
            self._credentials = session.get_credentials()
            if self._credentials is None:
                raise _no_credentials()
        except botocore.exceptions.NoRegionError:
            raise SettingsError(
                "no AWS region is set: set S3_PUBLISH_REGION, AWS_REGION, or region in ~/.aws/config"
            ) from None
        except (botocore.exceptions.BotoCoreError, ValueError) as error:
            raise SettingsError(f"cannot address bucket {settings.bucket}: {error}") from None
        self._store = _store(settings, session, self._client, self.address)
        self._retrier = Retrier(self._client.meta.service_model.operation_model)
        self._client.meta.events.register("after-call.s3", self._count_retries)
        self._endpoint = urlsplit(self.address.endpoint)._replace(path="").geturl()

    def __repr__(self) -> str:
        return f"S3Bucket({self.name!r} at {self._endpoint})"

    @property
    def retries(self) -> int:
        return self._retrier.count

    def _boto3_call(self, operation: str, key: str | None, request: Callable[[], Any]) -> Any:
        """boto3's requests are retried by botocore itself (standard mode), and counted by `_count_retries`."""
        return self._call(operation, key, request, retry=False)

    def _count_retries(self, parsed: Mapping[str, Any], **_: Any) -> None:
        self._retrier.add(int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)))

    def _call(self, operation: str, key: str | None, request: Callable[[], Any], retry: bool = True) -> Any:
        try:
            return self._retrier.call(operation, request, lambda error: self._failure(error, operation, key), retry)
        except _Failed as failed:
            raise explain(failed.failure, self.name, self._endpoint) from None

    def _failure(self, error: Exception, operation: str, key: str | None) -> Failure:
        """What an obstore or boto3 failure says: the status and S3's code, or why no answer came."""
        import boto3.exceptions
        import botocore.exceptions

        if isinstance(error, boto3.exceptions.S3UploadFailedError) and isinstance(error.__context__, Exception):
            error = error.__context__  # the part's own refusal, which boto3 wraps in words
        if isinstance(error, botocore.exceptions.ClientError):
            answer = error.response
            status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = answer.get("Error", {})
            return Failure(operation, key, status, str(detail.get("Code", "")), str(detail.get("Message", "")))
        if isinstance(error, botocore.exceptions.NoCredentialsError):
            raise _no_credentials() from None
        if isinstance(error, botocore.exceptions.BotoCoreError):
            return Failure(operation, key, network=str(error))
        if isinstance(error, _Refused):
            return _answered(operation, key, error.status, error.body.decode("utf-8", "replace"))
        return _obstore_failure(error, operation, key)

    def list_objects(self, prefix: str, exact: bool = False) -> dict[str, Listed]:
        import obstore

        if exact or self._settings.strip_index_html:  # obstore's paths cannot end in '/': boto3 lists them
            return dict(self._boto3_call("ListObjectsV2", None, functools.partial(self._list_with_boto3, prefix)))

        def listing() -> dict[str, Listed]:
            listed: dict[str, Listed] = {}
            for batch in obstore.list(self._store, prefix=prefix or None, chunk_size=1000):
                for item in batch:
                    listed[item["path"]] = Listed(item["size"], normalise(item["e_tag"] or ""))
            return listed

        return dict(self._call("ListObjectsV2", None, listing))

    def _list_with_boto3(self, prefix: str) -> dict[str, Listed]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return {
            item["Key"]: Listed(item["Size"], normalise(item["ETag"]))
            for page in pages
            for item in page.get("Contents", [])
        }

    def get(self, key: str) -> tuple[bytes, str] | None:
        import obstore

        def read() -> tuple[bytes, str] | None:
            try:
                answer = obstore.get(self._store, key)
            except FileNotFoundError:
                return None
            return bytes(answer.bytes()), normalise(answer.meta["e_tag"] or "")

        found: tuple[bytes, str] | None = self._call("GetObject", key, read)
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

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        size = len(body) if isinstance(body, bytes) else body.stat().st_size
        conditional = how.if_match is not None or how.create
        if isinstance(body, Path) and size > self._settings.part_size and not conditional:
            return str(self._boto3_call("PutObject", key, lambda: self._upload_in_parts(key, body, headers, how)))
        if _obstore_can_send(headers) and not key.endswith("/"):  # obstore would drop the key's final '/'
            put = functools.partial(self._put_with_obstore, key, body, headers, how)
            etag = self._call("PutObject", key, put, how.retry)
        else:
            data = body if isinstance(body, bytes) else body.read_bytes()
            etag = self._boto3_call("PutObject", key, lambda: self._put_with_boto3(key, data, headers))
        if how.progress is not None:
            how.progress(size)
        return str(etag)

    def _put_with_obstore(self, key: str, body: bytes | Path, headers: Headers, how: Write) -> str:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: Any = "create" if how.create else {"e_tag": f'"{how.if_match}"'} if how.if_match else "overwrite"
        try:
            answer = obstore.put(
                self._store, key, body, attributes=_attributes(headers), mode=mode, use_multipart=False
            )
        except (AlreadyExistsError, PreconditionError):
            raise WriteConflict(key) from None
        return normalise(answer["e_tag"] or "")

    def _put_with_boto3(self, key: str, data: bytes, headers: Headers) -> str:
        """Canned ACLs, Expires and website redirects, which obstore cannot send.

        With the body's MD5, which every S3 store checks: a body changed on the way is refused (BadDigest).
        """
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        answer = self._client.put_object(Bucket=self.name, Key=key, Body=data, ContentMD5=digest, **to_boto(headers))
        return normalise(answer["ETag"])

    def _upload_in_parts(self, key: str, path: Path, headers: Headers, how: Write) -> str:
        """s3transfer: parts go up at once, and an abort that fails never hides why the upload failed."""
        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=self._settings.part_size,
            multipart_chunksize=self._settings.part_size,
            max_concurrency=min(self._settings.workers, 8),
        )
        self._client.upload_file(
            str(path), self.name, key, ExtraArgs=to_boto(headers), Config=transfer, Callback=how.progress
        )
        return normalise(self._client.head_object(Bucket=self.name, Key=key)["ETag"])

    def copy(self, key: str, headers: Headers, version: str | None = None) -> str:
        if self.address.service != "s3":  # a directory bucket signs with session keys: boto3 knows how
            return str(self._boto3_call("CopyObject", key, lambda: self._copy_with_boto3(key, headers, version)))
        return str(self._call("CopyObject", key, lambda: self._copy_signed(key, headers, version)))

    def _copy_with_boto3(self, key: str, headers: Headers, version: str | None) -> str:
        source = {"Bucket": self.name, "Key": key} | ({"VersionId": version} if version else {})
        answer = self._client.copy_object(
            Bucket=self.name, Key=key, CopySource=source, MetadataDirective="REPLACE", **to_boto(headers)
        )
        return normalise(answer["CopyObjectResult"]["ETag"])

    def _copy_signed(self, key: str, headers: Headers, version: str | None) -> str:
        """CopyObject signed by botocore's SigV4 signer and sent on the client's own HTTP session.

        obstore's copy cannot replace headers, and boto3's client spends about
        1.7 ms of CPU per call building the request from its model; a header
        update of a whole site is thousands of them. Our headers are already
        the request's headers, so this costs a third of that.
        """
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        source = quote(f"/{self.name}/{key}", safe="/~") + (f"?versionId={quote(version, safe='')}" if version else "")
        copy_headers = {**dict(headers), "x-amz-copy-source": source, "x-amz-metadata-directive": "REPLACE"}
        request = AWSRequest("PUT", self._object_url(key), headers=copy_headers, data=b"")
        S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self.address.region).add_auth(request)
        # The client's own session: botocore's proxies, CA bundle, timeouts and pool.
        answer = self._client._endpoint.http_session.send(request.prepare())
        body = bytes(answer.content)
        if answer.status_code != 200 or b"<Error>" in body:  # S3 may answer 200 and fail in the body
            raise _Refused(answer.status_code if answer.status_code != 200 else 500, body)
        etag = re.search(rb"<ETag>([^<]*)</ETag>", body)
        if etag is None:  # an answer cut short: the copy's ETag is unknown, so it cannot be recorded; retried
            raise _Refused(500, body)
        return normalise(html.unescape(etag[1].decode()))

    def _object_url(self, key: str) -> str:
        base = self.address.endpoint + ("/" if self.address.virtual_hosted else f"/{self.name}/")
        return base + quote(key, safe="/~")

    def versions(self, prefix: str) -> dict[str, list[Version]] | None:
        """boto3: obstore lists only the latest versions."""

        def listing() -> dict[str, list[Version]] | None:
            if self._client.get_bucket_versioning(Bucket=self.name).get("Status") != "Enabled":
                return None
            found: dict[str, list[Version]] = {}
            for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Versions", []):
                    found.setdefault(item["Key"], []).append(Version(item["VersionId"], normalise(item["ETag"])))
            return found

        versions: dict[str, list[Version]] | None = self._boto3_call("ListObjectVersions", None, listing)
        return versions

    def delete(self, keys: Sequence[str]) -> dict[str, str]:
        refused: dict[str, str] = {}
        for start in range(0, len(keys), DELETE_BATCH):
            batch = list(keys[start : start + DELETE_BATCH])
            refused |= self._boto3_call("DeleteObjects", batch[0], functools.partial(self._delete_batch, batch))
        return refused

    def _delete_batch(self, keys: list[str]) -> dict[str, str]:
        """boto3: its answer names each key S3 refused, and the keys it names are all that stay."""
        answer = self._client.delete_objects(
            Bucket=self.name, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        return {
            error["Key"]: f"{error.get('Code', '')} {error.get('Message', '')}".strip()
            for error in answer.get("Errors", [])
        }


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


_STATUS = re.compile(r"status code: (\d{3})")
_XML_FIELD = re.compile(r"<(Code|Message)>(.*?)</\1>", re.S)


def _obstore_failure(error: Exception, operation: str, key: str | None) -> Failure:
    """obstore says what happened in its message: the status and S3's XML answer, or the network fault."""
    text = str(error)
    status = _STATUS.search(text)
    if status is None:
        return Failure(operation, key, network=_network_cause(text))
    return _answered(operation, key, int(status[1]), text)


def _answered(operation: str, key: str | None, status: int, answer: str) -> Failure:
    """A failure with an answer: its status, and S3's code and message from the XML in it."""
    fields = {name: html.unescape(value) for name, value in _XML_FIELD.findall(answer)}
    return Failure(operation, key, status, fields.get("Code", ""), fields.get("Message", ""))


def _network_cause(text: str) -> str:
    """Why no answer came, from the cause chain obstore's message ends with (Rust's debug form)."""
    if certificate := re.search(r"InvalidCertificate\(\s*(\w+)", text):
        return f"invalid certificate: {certificate[1]}"
    if reason := re.search(r'message: "([^"]+)"', text):
        return reason[1]
    if re.search(r"timed? ?out|Timeout", text, re.I):
        return "timed out"
    return _first_line(text.split(" - ", 1)[-1])


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


# --- In memory, for tests ---------------------------------------------------------------


@dataclass
class _Stored:
    body: bytes
    etag: str
    headers: Headers


class MemoryBucket:
    """The interface's promises without a server: conditional writes, ETags as MD5s, refusals on cue."""

    def __init__(self, name: str = "memory", refuse_deletes: Iterable[str] = ()) -> None:
        self.name = name
        self.aws_session = None
        self.objects: dict[str, _Stored] = {}
        self.writes: list[tuple[str, str]] = []  # (operation, key), in order
        self._refuse_deletes = set(refuse_deletes)
        self._lock = threading.Lock()

    @property
    def retries(self) -> int:
        return 0

    def list_objects(self, prefix: str, exact: bool = False) -> dict[str, Listed]:
        with self._lock:
            return {k: Listed(len(v.body), v.etag) for k, v in sorted(self.objects.items()) if k.startswith(prefix)}

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            stored = self.objects.get(key)
        return (stored.body, stored.etag) if stored else None

    def head(self, key: str) -> Head | None:
        with self._lock:
            stored = self.objects.get(key)
        return Head(stored.etag, stored.headers, len(stored.body)) if stored else None

    def put(self, key: str, body: bytes | Path, headers: Headers, how: Write = PLAIN) -> str:
        import hashlib

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
