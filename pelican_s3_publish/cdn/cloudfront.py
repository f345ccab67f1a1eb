"""CloudFront: the changed URL paths of a distribution invalidated, within its limits.

A key becomes the path CloudFront serves it under once the origin's
OriginPath is taken off (read once per publish with GetDistributionConfig,
which also stops a wrong distribution id before anything is written).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import PublishError, SettingsError
from .paths import fold_paths, url_paths
from .target import CdnError

MAX_WILDCARDS = 15  # in progress per distribution, CloudFront's limit
MAX_PATHS = 3000  # in progress per distribution, CloudFront's limit
BUSY_ATTEMPTS = 6  # TooManyInvalidationsInProgress: about a minute of botocore's throttling backoff
S3_DOMAIN = r"\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?"


def caller_reference(distribution: str, publish_id: str, paths: Sequence[str]) -> str:
    """The same for a retried request of one publish, so CloudFront makes one invalidation of it."""
    digest = hashlib.sha256("\n".join([distribution, publish_id, *paths]).encode()).hexdigest()
    return f"pelican-s3-publish-{digest[:40]}"


def _origin_names_bucket(domain: str, bucket: str) -> bool:
    return re.fullmatch(re.escape(bucket) + S3_DOMAIN, domain) is not None


class CloudFront:
    """CloudFront, with the credentials of the bucket's AWS profile (S3_PUBLISH_PROFILE, or boto3's default)."""

    def __init__(self, profile: str | None, bucket: str) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(profile_name=profile)
        self._client = session.client(
            "cloudfront",
            # A global service: botocore still wants a region to sign for, us-east-1 unless one is configured.
            region_name=session.region_name or "us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        self._bucket = bucket

    def origin_path(self, distribution: str) -> str:
        """The OriginPath of the distribution's origin for this bucket: what to take off keys."""
        config = self._call(
            distribution, "GetDistributionConfig", lambda: self._client.get_distribution_config(Id=distribution)
        )
        origins = config["DistributionConfig"]["Origins"].get("Items", [])
        for origin in origins:
            if _origin_names_bucket(origin["DomainName"], self._bucket):
                return str(origin.get("OriginPath") or "")
        domains = ", ".join(origin["DomainName"] for origin in origins) or "none"
        raise SettingsError(
            f"CloudFront distribution {distribution} has no origin for bucket {self._bucket} (its origins: {domains}): "
            "fix S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID"
        )

    def invalidate(self, distribution: str, paths: Sequence[str], reference: str) -> str:
        """One CreateInvalidation; waits out TooManyInvalidationsInProgress with botocore's backoff, within a bound."""
        from botocore.retries import standard

        batch = {"Paths": {"Quantity": len(paths), "Items": list(paths)}, "CallerReference": reference}
        backoff = standard.ExponentialBackoff(
            throttling_detector=standard.ThrottlingErrorDetector(standard.RetryEventAdapter())
        )
        attempt = 1
        while True:
            try:
                answer = self._client.create_invalidation(DistributionId=distribution, InvalidationBatch=batch)
                return str(answer["Invalidation"]["Id"])
            except self._client.exceptions.TooManyInvalidationsInProgress as busy:
                if attempt == BUSY_ATTEMPTS:
                    raise _explain(busy, distribution, "CreateInvalidation") from None
            except Exception as error:
                raise _explain(error, distribution, "CreateInvalidation") from None
            # botocore's backoff for throttling: a second at first, doubling.
            context = standard.RetryContext(attempt, parsed_response={"Error": {"Code": "Throttling"}})
            time.sleep(backoff.delay_amount(context))
            attempt += 1

    def wait(self, distribution: str, invalidation: str, timeout_s: float, told: Callable[[str], None]) -> None:
        """Until the invalidation completes, saying its status as it changes; CdnError past `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        said = ""
        while True:
            answer = self._call(
                distribution,
                "GetInvalidation",
                lambda: self._client.get_invalidation(DistributionId=distribution, Id=invalidation),
            )
            status = str(answer["Invalidation"]["Status"])
            if status != said:
                told(f"CloudFront invalidation {invalidation} of {distribution}: {status}")
                said = status
            if status.casefold() == "completed":  # "Completed" from CloudFront, "COMPLETED" from moto
                return
            if time.monotonic() > deadline:
                raise CdnError(
                    f"CloudFront invalidation {invalidation} of {distribution} is still {status} after "
                    f"{timeout_s:.0f} s: it goes on; raise S3_PUBLISH_CLOUDFRONT_WAIT_TIMEOUT to wait longer"
                )
            time.sleep(5)

    def _call(self, distribution: str, operation: str, request: Callable[[], Any]) -> Any:
        try:
            return request()
        except Exception as error:
            raise _explain(error, distribution, operation) from None


def _explain(error: Exception, distribution: str, operation: str) -> PublishError:
    """One line: the permission missing, the distribution not found (a setting), or what CloudFront said."""
    import botocore.exceptions

    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = str(error.response.get("Error", {}).get("Message", "")).rstrip(".")
        if code in ("AccessDenied", "AccessDeniedException"):
            return CdnError(
                f"access denied: give these credentials cloudfront:{operation} on distribution {distribution}"
            )
        if code == "NoSuchDistribution":
            return SettingsError(
                f"CloudFront has no distribution {distribution}: fix S3_PUBLISH_CLOUDFRONT_DISTRIBUTION_ID"
            )
        return CdnError(f"CloudFront refused {operation} on {distribution}: {code} {message}".rstrip())
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return CdnError("no AWS credentials found for CloudFront: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return CdnError(f"cannot reach CloudFront for {distribution} ({error}): check the network")
    raise error


class Distribution:
    """One distribution as a CDN target: its paths kept pending under its id, as they always were."""

    label = "CloudFront"

    def __init__(self, cloudfront: CloudFront, distribution: str, budget: int) -> None:
        self._cloudfront = cloudfront
        self.key = self.name = distribution
        self._budget = budget

    def check(self) -> str:
        origin = self._cloudfront.origin_path(self.key) or "/"
        return (
            f"distribution {self.key} serves this bucket from origin path {origin}; invalidating needs "
            "cloudfront:CreateInvalidation (not tried: it would invalidate)"
        )

    def wanted(self, keys: Sequence[str]) -> list[str]:
        return url_paths(keys, self._cloudfront.origin_path(self.key)) if keys else []

    def folded(self, paths: Sequence[str]) -> list[str]:
        return fold_paths(paths, self._budget, MAX_WILDCARDS)

    def tell(self, paths: Sequence[str], publish_id: str) -> str:
        return self._cloudfront.invalidate(self.key, paths, caller_reference(self.key, publish_id, paths))

    def wait(self, request: str | None, timeout_s: float, told: Callable[[str], None]) -> None:
        if request is not None:
            self._cloudfront.wait(self.key, request, timeout_s, told)
