"""AWS Signature Version 4 for S3 requests, as the S3 API reference specifies it.

The payload is never hashed: requests say UNSIGNED-PAYLOAD, and a PUT's
Content-MD5, which is a signed header, guards its bytes instead.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

UNSIGNED = "UNSIGNED-PAYLOAD"
NOT_SIGNED = frozenset({"user-agent"})


class FrozenCredentials(Protocol):
    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


class CredentialSource(Protocol):
    def get_frozen_credentials(self) -> FrozenCredentials: ...


@dataclass(frozen=True)
class StaticCredentials:
    """Keys read from the environment, in the shape botocore's credentials have."""

    access_key: str
    secret_key: str
    token: str | None = None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))


@dataclass
class Signer:
    credentials: CredentialSource
    region: str
    service: str = "s3"
    _keys: dict[str, bytes] = field(default_factory=dict)

    def _signing_key(self, secret: str, date: str) -> bytes:
        """Derived once a day, not once a request."""
        cached = f"{secret}/{date}"
        if cached not in self._keys:
            key = _hmac(("AWS4" + secret).encode(), date)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._keys = {cached: key}
        return self._keys[cached]

    def sign(
        self, method: str, netloc: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> dict[str, str]:
        """The headers to send: the given ones, lowercased, plus the date and the authorization."""
        credentials = self.credentials.get_frozen_credentials()
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        sent = {name.lower(): value for name, value in headers.items()}
        sent |= {"host": netloc, "x-amz-date": stamp, "x-amz-content-sha256": UNSIGNED}
        if credentials.token:
            sent["x-amz-security-token"] = credentials.token
        names = sorted(n for n in sent if n not in NOT_SIGNED)
        lines = [f"{n}:{' '.join(sent[n].split())}" for n in names]
        request = "\n".join([method, path, canonical_query(query), *lines, "", ";".join(names), UNSIGNED])
        scope = f"{stamp[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(request.encode()).hexdigest()}"
        key = self._signing_key(credentials.secret_key, stamp[:8])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        sent["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return sent
