"""What a failed request means to the user: classified by HTTP status and S3's error code, worded in one line.

A `Failure` is made from what the store answered (its status and the `Code`
of its XML error), or from why no answer came; `explain` turns it into the
line a user acts on. The wording of a library's own messages decides nothing.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .interface import BucketError

NO_BUCKET = {"NoSuchBucket"}
DENIED = {"AccessDenied", "AllAccessDisabled", "Forbidden"}
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
CORRUPTED = {"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"}
# A store that does not implement what was asked (B2, R2 and older S3 clones answer 501 NotImplemented).
NOT_IMPLEMENTED = {"NotImplemented", "MethodNotAllowed"}
# An ACL the bucket will not take: AWS with Object Ownership "bucket owner enforced", R2 (501).
ACL_REFUSED = {"AccessControlListNotSupported", *NOT_IMPLEMENTED}
NOT_TLS = "the answer was not TLS"
README_POLICY = "the README's 'The S3 website endpoint' steps"

_XML_FIELD = re.compile(r"<(Code|Message)>(.*?)</\1>", re.S)


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request: an answer (status, S3's code) or none (a network fault)."""

    operation: str
    key: str | None
    status: int | None = None
    code: str = ""
    message: str = ""
    network: str = ""  # why no answer came: refused, timed out, TLS, ...
    acl: str | None = None  # the canned ACL the request carried

    @property
    def is_certificate(self) -> bool:
        return bool(re.search(r"certificate|SSL|TLS", self.network))

    @property
    def not_implemented(self) -> bool:
        return self.status == 501 or self.code in NOT_IMPLEMENTED


def answered(operation: str, key: str | None, status: int, answer: str) -> Failure:
    """A failure with an answer: its status, and S3's code and message from the XML error in its body."""
    fields = {name: html.unescape(value) for name, value in _XML_FIELD.findall(answer)}
    return Failure(operation, key, status, fields.get("Code", ""), fields.get("Message", ""))


def acl_refused(bucket: str, acl: str | None) -> BucketError:
    setting = f"S3_PUBLISH_ACL = {acl!r}" if acl else "S3_PUBLISH_ACL"
    return BucketError(
        f"bucket {bucket} has ACLs disabled (it does not allow them), so {setting} cannot be sent: "
        f"remove S3_PUBLISH_ACL and make the site public with a bucket policy ({README_POLICY})"
    )


def explain(failure: Failure, bucket: str, endpoint: str) -> BucketError:
    """One actionable line for a failed request."""
    where = f"s3://{bucket}/{failure.key}" if failure.key else f"bucket {bucket}"
    code, operation = failure.code, failure.operation
    message = failure.message.rstrip(".")
    if failure.status is None:
        if failure.network == NOT_TLS:
            return BucketError(
                f"{endpoint} does not answer in TLS, as an https:// address needs: if the server speaks plain "
                "HTTP, use http:// in S3_PUBLISH_ENDPOINT_URL"
            )
        if failure.is_certificate:
            return BucketError(
                f"the TLS certificate of {endpoint} is not trusted ({first_line(failure.network)}): "
                "set AWS_CA_BUNDLE to the CA that signed it, or check S3_PUBLISH_ENDPOINT_URL"
            )
        return BucketError(
            f"cannot reach {endpoint} for {where} ({first_line(failure.network)}): "
            "check S3_PUBLISH_ENDPOINT_URL and the network"
        )
    if failure.acl and (code in ACL_REFUSED or failure.status == 501):
        return acl_refused(bucket, failure.acl)
    if code in NO_BUCKET or (failure.status == 404 and not failure.key):
        path = urlsplit(endpoint).path.rstrip("/")
        if path:  # requests went to <path>/<bucket>: most likely the path is the mistake
            return BucketError(
                f"bucket {bucket} was not found under {endpoint}: the endpoint URL has a path ({path}); "
                "give S3_PUBLISH_ENDPOINT_URL the server's address only, or create the bucket"
            )
        return BucketError(f"bucket {bucket} does not exist: create it or fix S3_PUBLISH_BUCKET")
    if code in BAD_CREDENTIALS:
        # Whichever request found out, the credentials are the whole bucket's problem: name the bucket.
        return BucketError(
            f"the AWS credentials were rejected for bucket {bucket} ({code}): check the access key and secret"
        )
    if code in DENIED or (failure.status == 403 and not code):
        return BucketError(
            f"access denied: {operation} on {where}: give these credentials s3:{operation} on the bucket"
        )
    if code in WRONG_REGION or failure.status == 301:
        return BucketError(f"{where} is in another region ({message}): set S3_PUBLISH_REGION to the bucket's region")
    if code == "AccessControlListNotSupported":
        return acl_refused(bucket, None)
    if code in CORRUPTED:
        return BucketError(f"{where}: {code}: the bytes were changed on the way and the store refused them")
    return BucketError(f"S3 refused {operation} on {where}: {code or failure.status} {message}".rstrip())


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no answer"
