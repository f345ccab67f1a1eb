"""Store profiles: the recording proxy answering as each store's own documentation, source or tracker says
it answers, in front of a real server (an open SeaweedFS, which checks no signatures, so a header a store
ignores can be dropped on the way).

Each behaviour is a `Rule` with its source beside it. A rule either refuses
the request with the store's documented answer, or drops headers the store
is documented to ignore. What the publish must find out by asking
(`expected`) is the capability record a probe should arrive at through the
profile; the tests check `--check` against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seen:
    """A request as the proxy saw it: method, key, query and headers (lowercase names)."""

    method: str
    key: str
    query: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Rule:
    what: str  # a short name, counted in the tests
    source: str  # where the store says so
    matches: Callable[[Seen], bool]
    refusal: Refusal | None = None
    ignores: tuple[str, ...] = ()  # header names the store ignores: dropped before the server sees them


@dataclass(frozen=True)
class StoreProfile:
    name: str
    rules: tuple[Rule, ...]
    expected: dict[str, Any] = field(default_factory=dict)  # the capabilities a probe finds, beyond the defaults

    def rule_for(self, seen: Seen) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(seen)), None)


def _object_put(seen: Seen) -> bool:
    return seen.method == "PUT" and bool(seen.key) and "x-amz-copy-source" not in seen.headers


def _conditional_put(seen: Seen) -> bool:
    return _object_put(seen) and ("if-match" in seen.headers or "if-none-match" in seen.headers)


def _if_none_match_put(seen: Seen) -> bool:
    return _object_put(seen) and "if-none-match" in seen.headers


def _if_match_put(seen: Seen) -> bool:
    return _object_put(seen) and "if-match" in seen.headers


def _checksum(seen: Seen) -> bool:
    """An additional checksum: x-amz-checksum-*, the SDK's algorithm header, or aws-chunked trailers."""
    return any(
        name.startswith("x-amz-checksum-") or name == "x-amz-sdk-checksum-algorithm" for name in seen.headers
    ) or "aws-chunked" in seen.headers.get("content-encoding", "")


def _acl(seen: Seen) -> bool:
    return seen.method == "PUT" and "x-amz-acl" in seen.headers


def _delete_objects_without_md5(seen: Seen) -> bool:
    return seen.method == "POST" and "delete" in seen.query.split("&") and "content-md5" not in seen.headers


def _versioning(seen: Seen) -> bool:
    return not seen.key and "versioning" in seen.query.split("&")


def _website_redirect(seen: Seen) -> bool:
    return "x-amz-website-redirect-location" in seen.headers


NOT_IMPLEMENTED = Refusal(501, "NotImplemented", "A header you provided implies functionality that is not implemented")

B2 = StoreProfile(
    "b2",
    (
        Rule(
            "if-none-match-put",
            "Backblaze, S3-Compatible API, 'Unsupported Features' "
            "(https://www.backblaze.com/docs/cloud-storage-s3-compatible-api): conditional writes answer 501",
            _if_none_match_put,
            NOT_IMPLEMENTED,
        ),
        Rule("if-match-put", "the same page", _if_match_put, NOT_IMPLEMENTED),
        Rule(
            "checksum",
            "the same page; io7m-com/exfilac#35, stonith404/pingvin-share#798, boto/s3transfer#327: "
            "400 InvalidArgument \"Unsupported header 'x-amz-checksum-sha256' received for this API call.\"",
            _checksum,
            Refusal(400, "InvalidArgument", "Unsupported header 'x-amz-checksum-sha256' received for this API call."),
        ),
    ),
    {"conditional_create": "refused", "conditional_replace": "refused", "checksums": False},
)

GARAGE = StoreProfile(
    "garage",
    (
        Rule(
            "conditions-ignored",
            "Garage source, src/api/s3/put.rs (v1.x): PutObject reads no If-Match or If-None-Match; "
            "the write happens whatever they say",
            _conditional_put,
            ignores=("if-match", "if-none-match"),
        ),
    ),
    {"conditional_create": "ignored", "conditional_replace": "ignored"},
)

AWS_BEFORE_NOV_2024 = StoreProfile(
    "aws-2024",
    (
        Rule(
            "if-match-put",
            "AWS, 'Conditional writes' "
            "(https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html): "
            "If-None-Match on PUT since August 2024, If-Match since November 2024; before, 501 NotImplemented",
            _if_match_put,
            NOT_IMPLEMENTED,
        ),
    ),
    {"conditional_replace": "refused"},
)

OWNER_ENFORCED = StoreProfile(
    "aws-owner-enforced",
    (
        Rule(
            "acl",
            "AWS, 'Controlling ownership of objects and disabling ACLs' "
            "(https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html): with "
            "'bucket owner enforced', the default since April 2023, a request with an ACL fails with "
            "400 AccessControlListNotSupported",
            _acl,
            Refusal(400, "AccessControlListNotSupported", "The bucket does not allow ACLs"),
        ),
    ),
)

DELETE_NEEDS_MD5 = StoreProfile(
    "delete-needs-md5",
    (
        Rule(
            "delete-without-md5",
            "older MinIO releases (cmd/api-errors.go, ErrMissingContentMD5), OVHcloud (ovh/public-cloud-roadmap"
            "#781), Oracle: DeleteObjects without Content-MD5 is refused; botocore >= 1.36 sends a CRC32 instead",
            _delete_objects_without_md5,
            Refusal(400, "MissingContentMD5", "Missing required header for this request: Content-Md5."),
        ),
    ),
    {"deletes": "batch-md5"},
)

R2 = StoreProfile(
    "r2",
    (
        Rule(
            "acl",
            "Cloudflare, R2 'S3 API compatibility' (https://developers.cloudflare.com/r2/api/s3/api/): "
            "PutObject's x-amz-acl is not implemented (501)",
            _acl,
            NOT_IMPLEMENTED,
        ),
        Rule(
            "versioning",
            "the same page: GetBucketVersioning is among the operations not implemented",
            _versioning,
            Refusal(501, "NotImplemented", "GetBucketVersioning not implemented"),
        ),
        Rule(
            "website-redirect-dropped",
            "the same page: x-amz-website-redirect-location is not implemented for PutObject (dropped)",
            _website_redirect,
            ignores=("x-amz-website-redirect-location",),
        ),
    ),
)

GCS_XML = StoreProfile(
    "gcs-xml",
    (
        Rule(
            "checksum",
            "Google, Cloud Storage XML API with HMAC keys (https://cloud.google.com/storage/docs/interoperability); "
            "boto/boto3#4435: boto3 >= 1.36's checksum headers fail the signature check",
            _checksum,
            Refusal(403, "SignatureDoesNotMatch", "Access denied."),
        ),
        Rule(
            "conditions-ignored",
            "the XML API documents x-goog-if-generation-match for writes, not S3's If-Match/If-None-Match on PUT "
            "(https://cloud.google.com/storage/docs/xml-api/put-object-upload): taken as ignored, the weaker case",
            _conditional_put,
            ignores=("if-match", "if-none-match"),
        ),
    ),
    {"checksums": False, "conditional_create": "ignored", "conditional_replace": "ignored"},
)

PROFILES = (B2, GARAGE, AWS_BEFORE_NOV_2024, OWNER_ENFORCED, DELETE_NEEDS_MD5, R2, GCS_XML)
