"""What an obstore, boto3 or botocore failure says, as a `Failure`: the store's status and error code,
or why no answer came.

boto3 hands over the parsed answer. obstore 0.12 has no status attribute on
its errors: its message carries the answer's status and the store's XML body,
read here and only here (the fault tests, which inject each status, fail if
that changes).
"""

from __future__ import annotations

import re

from .failures import NOT_TLS, Failure, answered, first_line
from .resolution import no_credentials

_STATUS = re.compile(r"status code: (\d{3})")


class Refused(Exception):
    """A request this package signed and sent itself got this error answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def failure_of(error: Exception, operation: str, key: str | None, acl: str | None = None) -> Failure:
    """What a failure says: the status and S3's code, or why no answer came."""
    import boto3.exceptions
    import botocore.exceptions

    if isinstance(error, boto3.exceptions.S3UploadFailedError) and isinstance(error.__context__, Exception):
        error = error.__context__  # the part's own refusal, which boto3 wraps in words
    if isinstance(error, botocore.exceptions.ClientError):
        answer = error.response
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = answer.get("Error", {})
        code, message = str(detail.get("Code", "")), str(detail.get("Message", ""))
        return Failure(operation, key, status, code, message, acl=acl)
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        raise no_credentials() from None
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return Failure(operation, key, network=_network_cause(str(error)), acl=acl)
    if isinstance(error, Refused):
        return answered(operation, key, error.status, error.body.decode("utf-8", "replace"))
    return _obstore_failure(error, operation, key)


def _obstore_failure(error: Exception, operation: str, key: str | None) -> Failure:
    text = str(error)
    status = _STATUS.search(text)
    if status is None:
        return Failure(operation, key, network=_network_cause(text))
    return answered(operation, key, int(status[1]), text)


def _network_cause(text: str) -> str:
    """Why no answer came, from the cause chain obstore's message ends with (Rust's debug form), or botocore's."""
    if re.search(r"InvalidContentType|WRONG_VERSION_NUMBER", text):  # rustls, OpenSSL: the answer was not TLS
        return NOT_TLS
    if certificate := re.search(r"InvalidCertificate\(\s*(\w+)", text):
        return f"invalid certificate: {certificate[1]}"
    if reason := re.search(r'message: "([^"]+)"', text):
        return reason[1]
    if re.search(r"\bTime(d ?[Oo]ut|out)\b|timed out", text):  # not obstore's `retry_timeout: 1s`
        return "timed out"
    return first_line(text.split(" - ", 1)[-1])
