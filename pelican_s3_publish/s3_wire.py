"""S3 requests signed and sent here, without botocore's per-request machinery.

The hot requests of a publish (one PUT per changed file, the listing's pages,
the manifest's GET) go this way. botocore spent about 1.4 ms of CPU per PUT
building, signing and parsing it, under one interpreter lock; this spends
about 0.25 ms, and a no-op publish does not import botocore at all when the
credentials and the endpoint are plain. Where they are not (a profile, SSO,
an instance role, endpoint settings in the AWS config), botocore decides
once where requests go and with which credentials, and this sends them.
Failures are raised as botocore's own exceptions so `client.explain` words
them as before; retries follow botocore's standard mode and are counted.
"""

from __future__ import annotations

import base64
import configparser
import http.client
import importlib.util
import os
import random
import re
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import SplitResult, quote, unquote, urlsplit

from .client import MAX_ATTEMPTS, Connection, RetryCount, S3Client, connect_timeout
from .settings import Settings
from .sigv4 import CredentialSource, Signer, StaticCredentials, canonical_query

RETRIED_STATUSES = {500, 502, 503, 504}
RETRIED_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"}
MAX_BACKOFF_S = 20.0
_CREDENTIAL = re.compile(rb"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_AWS_REGION = re.compile(r"[a-z]{2}-[a-z]+-\d+")
_DNS_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
# Settings in the environment or the AWS config that change where requests go
# or how they are signed: with any of them, botocore works it out.
_ENDPOINT_ENV = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT")
_PLAIN_CONFIG_KEYS = {"region", "output"}


@dataclass(frozen=True)
class Address:
    """Where requests for one bucket go, and the region and service they are signed for."""

    scheme: str
    netloc: str
    path: str  # of the bucket, up to its keys: "/bucket/" or "/"
    region: str
    service: str = "s3"

    @property
    def endpoint_url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _Seen(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__()
        self.request = request


def _stop_before_sending(request: Any, **_: Any) -> None:
    raise _Seen(request)


def botocore_address(client: S3Client, bucket: str) -> Address:
    """Let botocore prepare (not send) one PutObject, and read where it goes."""
    events = client.meta.events
    events.register_first("before-send.s3.PutObject", _stop_before_sending, unique_id="s3-wire-address")
    try:
        client.put_object(Bucket=bucket, Key="k", Body=b"")
    except _Seen as seen:
        request = seen.request
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="s3-wire-address")
    url = urlsplit(request.url)
    scope = _CREDENTIAL.search(request.headers["Authorization"])
    if scope is None:
        raise ValueError(f"botocore signed a PutObject in an unexpected way: {request.headers['Authorization']!r}")
    return Address(url.scheme, url.netloc, url.path[: -len("k")], scope[1].decode(), scope[2].decode())


def _plain_config_region() -> tuple[bool, str | None]:
    """(whether the AWS config's default profile holds only a region and an output format, its region)."""
    path = Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True, None
    except (OSError, UnicodeDecodeError, configparser.Error):
        return False, None
    if not parser.has_section("default"):
        return True, None
    section = dict(parser.items("default", raw=True))
    return set(section) <= _PLAIN_CONFIG_KEYS, section.get("region")


def plain_address(settings: Settings) -> Address | None:
    """Where botocore would send requests, when that can be told without it (None otherwise)."""
    env = os.environ
    if any(name.startswith("AWS_ENDPOINT_URL") or name in _ENDPOINT_ENV for name in env):
        return None
    plain, config_region = _plain_config_region()
    if not plain:
        return None
    region = settings.region or env.get("AWS_DEFAULT_REGION") or config_region
    bucket = settings.bucket
    if settings.endpoint_url:
        url = urlsplit(settings.endpoint_url)
        return Address(url.scheme, url.netloc, f"{url.path.rstrip('/')}/{bucket}/", region or "us-east-1")
    if region is None or region.startswith("cn-") or not _AWS_REGION.fullmatch(region):
        return None
    host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    if _DNS_BUCKET.fullmatch(bucket) and "--" not in bucket:
        return Address("https", f"{bucket}.{host}", "/", region)
    return Address("https", host, f"/{bucket}/", region)


def _environment_credentials(settings: Settings) -> StaticCredentials | None:
    """The keys botocore would take first: from the environment, unless a profile is named."""
    env = os.environ
    if settings.profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"):
        return None
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return StaticCredentials(key, secret, env.get("AWS_SESSION_TOKEN") or None)


def _default_ca_bundle() -> str | None:
    """botocore's default: certifi's bundle when it is installed, else the one botocore ships."""
    for package in ("certifi", "botocore"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if (bundle := Path(folder) / "cacert.pem").is_file():
                return str(bundle)
    return None


def _proxy_for(url: str) -> SplitResult | None:
    """The HTTP proxy the environment names for this endpoint, as botocore would use it."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}")


def _proxy_authorization(proxy: SplitResult) -> dict[str, str]:
    if proxy.username is None:
        return {}
    user_pass = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(user_pass.encode()).decode()}


class _Retryable(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class S3Wire:
    """Signed requests to one bucket; safe to share between threads."""

    where: Address
    credentials: CredentialSource
    settings: Settings
    cafile: str | None
    retries: RetryCount = field(default_factory=RetryCount)
    attempts: int = MAX_ATTEMPTS

    def __post_init__(self) -> None:
        self._signer = Signer(self.credentials, self.where.region, self.where.service)
        self._tls = ssl.create_default_context(cafile=self.cafile) if self.where.scheme == "https" else None
        self._proxy = _proxy_for(self.where.endpoint_url)
        self._proxy_headers = _proxy_authorization(self._proxy) if self._proxy else {}
        self._local = threading.local()

    @classmethod
    def without_botocore(cls, settings: Settings) -> S3Wire | None:
        """For plain credentials and endpoints; None when botocore has to work them out."""
        where = plain_address(settings)
        credentials = _environment_credentials(settings)
        if where is None or credentials is None:
            return None
        return cls(where, credentials, settings, os.environ.get("AWS_CA_BUNDLE") or _default_ca_bundle())

    @classmethod
    def from_connection(cls, connection: Connection) -> S3Wire:
        """The address and credentials botocore resolved."""
        where = botocore_address(connection.client, connection.settings.bucket)
        session = connection.botocore_session
        cafile = session.get_config_variable("ca_bundle") or _default_ca_bundle()
        return cls(where, session.get_credentials(), connection.settings, cafile)

    def put_object(self, key: str, body: bytes | BinaryIO, length: int, headers: Mapping[str, str]) -> str:
        """Send one object; its ETag as the server gave it."""
        answer = self.request("PUT", key, "PutObject", headers={**headers, "content-length": str(length)}, body=body)
        return answer.headers.get("etag", "")

    def request(
        self,
        method: str,
        key: str,
        operation: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO = b"",
        accept: frozenset[int] = frozenset(),
    ) -> Answer:
        """One request, retried as botocore would; a status in `accept` is an answer, not an error."""
        path = self.where.path + quote(key, safe="/~") if key else self.where.path.rstrip("/") or "/"
        attempt = 1
        while True:
            try:
                return self._send_once(method, path, operation, query or {}, headers or {}, body, accept)
            except _Retryable as failure:
                if attempt >= self.attempts:
                    raise failure.error from None
            self.retries.add()
            time.sleep(random.random() * min(MAX_BACKOFF_S, 2.0**attempt))
            attempt += 1

    def _send_once(
        self,
        method: str,
        path: str,
        operation: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | BinaryIO,
        accept: frozenset[int],
    ) -> Answer:
        if not isinstance(body, bytes):
            body.seek(0)
        signed = self._signer.sign(method, self.where.netloc, path, query, headers)
        target = f"{path}?{canonical_query(query)}" if query else path  # the query string exactly as signed
        if self._proxy is not None and self._tls is None:
            target = self.where.endpoint_url + target  # a plain-HTTP proxy takes the whole URL
            signed |= self._proxy_headers
        try:
            connection = self._connection()
            connection.request(method, target, body=body, headers=signed)
            response = connection.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        except (OSError, http.client.HTTPException) as failure:
            self._close_connection()
            raise _Retryable(self._network_error(failure)) from failure
        if 200 <= answer.status < 300 or answer.status in accept:
            return answer
        refusal = self._refusal(answer, operation)
        if answer.status in RETRIED_STATUSES or refusal.response["Error"]["Code"] in RETRIED_CODES:
            raise _Retryable(refusal)
        raise refusal

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's connection, kept open between requests."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None or connection.sock is None:
            timeout = connect_timeout(self.settings)
            host = f"{self._proxy.hostname}:{self._proxy.port or 80}" if self._proxy else self.where.netloc
            if self._tls is None:
                connection = http.client.HTTPConnection(host, timeout=timeout)
            else:
                connection = http.client.HTTPSConnection(host, timeout=timeout, context=self._tls)
                if self._proxy:
                    connection.set_tunnel(self.where.netloc, headers=self._proxy_headers)
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self.settings.timeout)
            self._local.connection = connection
        return connection

    def _close_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def _network_error(self, error: Exception) -> Exception:
        """The exception botocore raises for the same failure, which `explain` knows."""
        import botocore.exceptions as bx

        kind: Callable[..., Exception] = bx.ConnectionClosedError
        if isinstance(error, TimeoutError):
            kind = bx.ReadTimeoutError
        elif isinstance(error, ConnectionRefusedError):
            kind = bx.EndpointConnectionError
        return kind(endpoint_url=self.where.endpoint_url, error=error)

    def _refusal(self, answer: Answer, operation: str) -> Any:
        """botocore's ClientError for an S3 error answer (the status as the code when it has no body)."""
        from xml.etree import ElementTree

        import botocore.exceptions as bx

        code, message = str(answer.status), ""
        try:
            root = ElementTree.fromstring(answer.body)
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
        except ElementTree.ParseError:
            pass
        if answer.headers.get("x-amz-bucket-region") and code in ("301", "PermanentRedirect"):
            code, message = "PermanentRedirect", f"the bucket is in {answer.headers['x-amz-bucket-region']}"
        return bx.ClientError({"Error": {"Code": code, "Message": message}}, operation)
