"""The boto3 client and the meaning of its failures.

One client serves every thread (botocore clients are thread-safe), with a
connection pool as large as the pool of workers so no thread waits for a
socket. Failures a user can fix become one line without a traceback.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import PublishError, SettingsError
from .settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client as S3Client
else:
    S3Client = Any

CONNECT_TIMEOUT_S = 10
MAX_ATTEMPTS = 5

NO_BUCKET = {"NoSuchBucket"}
DENIED = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}


def _quiet_library_logs() -> None:
    """botocore's debug log prints request headers, the access key among them."""
    for name in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _botocore_session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def make_client(settings: Settings, botocore_session: Any = None) -> S3Client:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    from . import __version__

    _quiet_library_logs()
    try:
        session = boto3.session.Session(
            profile_name=settings.profile,
            botocore_session=botocore_session or _botocore_session(),
        )
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            f"S3_PUBLISH_PROFILE names the AWS profile {settings.profile!r}, which is not "
            "in ~/.aws/config or ~/.aws/credentials: add it or fix the setting"
        ) from None
    region = settings.region or session.region_name or ("us-east-1" if settings.endpoint_url else None)
    config = Config(
        max_pool_connections=settings.workers + 2,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=connect_timeout(settings),
        read_timeout=settings.timeout,
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        # We send Content-MD5 ourselves; botocore's default extra CRC32 costs
        # CPU per request and some S3-compatible stores reject it.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra=f"pelican-s3-publish/{__version__}",
        # Every parameter is built here, not taken from users: checking each
        # request against the model again is CPU per request for nothing.
        parameter_validation=False,
    )
    client = session.client("s3", region_name=region, endpoint_url=settings.endpoint_url, config=config)
    client.meta.events.register("after-call.s3", retry_count(client).after_call)
    return client


def connect_timeout(settings: Settings) -> float:
    return min(CONNECT_TIMEOUT_S, settings.timeout)


class Connection:
    """A client made on first use: a publish with nothing to write never loads boto3."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: S3Client | None = None
        self._botocore_session: Any = None
        self._making = threading.Lock()

    @property
    def client(self) -> S3Client:
        """Made once, by whichever worker thread needs it first."""
        with self._making:
            if self._client is None:
                self._botocore_session = _botocore_session()
                self._client = make_client(self.settings, self._botocore_session)
        return self._client

    @property
    def botocore_session(self) -> Any:
        """The session the client was made from: its credentials and CA bundle."""
        _ = self.client
        return self._botocore_session

    @property
    def retries(self) -> int:
        return 0 if self._client is None else retry_count(self._client).total


def error_code(error: Exception) -> str:
    """S3's error code of a botocore ClientError (the status when the body had none)."""
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _where(bucket: str, key: str | None) -> str:
    return f"s3://{bucket}/{key}" if key else f"bucket {bucket}"


def _endpoint_of(error: Exception) -> str:
    url = str(getattr(error, "kwargs", {}).get("endpoint_url", ""))
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "S3"


def explain(error: Exception, bucket: str, key: str | None = None) -> PublishError:
    """One actionable line for a botocore failure; anything unknown keeps its text."""
    import botocore.exceptions as bx

    where = _where(bucket, key)
    if isinstance(error, PublishError):
        return error
    if isinstance(error, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return PublishError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or S3_PUBLISH_PROFILE"
        )
    if isinstance(
        error,
        (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError, bx.ConnectionClosedError),
    ):
        return PublishError(
            f"cannot reach {_endpoint_of(error)} for {where}: check S3_PUBLISH_ENDPOINT_URL and the network"
        )
    if isinstance(error, bx.ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")).rstrip(".")
        operation = error.operation_name
        if code in NO_BUCKET or (code == "404" and operation == "HeadBucket"):
            return PublishError(f"bucket {bucket} does not exist: create it or fix S3_PUBLISH_BUCKET")
        if code in BAD_CREDENTIALS:
            return PublishError(
                f"the AWS credentials were rejected for {where} ({code}): check the access key and secret"
            )
        if code in DENIED:
            return PublishError(
                f"access denied: {operation} on {where}: give these credentials s3:{operation} on the bucket"
            )
        if code in WRONG_REGION:
            return PublishError(
                f"{where} is in another region ({message}): set S3_PUBLISH_REGION to the bucket's region"
            )
        if code == "AccessControlListNotSupported":
            return PublishError(
                f"{bucket} has ACLs disabled, so S3_PUBLISH_ACL cannot be sent: "
                "remove S3_PUBLISH_ACL and make the site public with a bucket policy"
            )
        return PublishError(f"S3 refused {operation} on {where}: {code} {message}".rstrip())
    if isinstance(error, bx.BotoCoreError):
        return PublishError(f"{error} ({where})")
    if isinstance(error, OSError):
        return PublishError(f"cannot read {error.filename or where}: {error.strerror}")
    raise error


class RetryCount:
    """Retries of every request a client made, read or write, for the report."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self, count: int = 1) -> None:
        with self._lock:
            self.total += count

    def after_call(self, parsed: Mapping[str, Any], **_: Any) -> None:
        self.add(int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0)))


_retry_counts: weakref.WeakKeyDictionary[Any, RetryCount] = weakref.WeakKeyDictionary()


def retry_count(client: S3Client) -> RetryCount:
    return _retry_counts.setdefault(client, RetryCount())
