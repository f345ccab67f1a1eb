"""Where a bucket's requests go and with which credentials: botocore decides, once per publish.

Region, endpoint (FIPS, dual-stack, `AWS_ENDPOINT_URL_S3`, S3 Express, the
AWS config file), the credential chain, proxies and the CA bundle are all
botocore's rules; this module only asks it, and encodes none of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ..errors import SettingsError
from ..settings import Settings
from .interface import BucketError
from .retries import MAX_ATTEMPTS

CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Address:
    """Where botocore sends one bucket's requests, and how they are signed."""

    endpoint: str  # scheme://host[:port][/path], the bucket in the host for virtual-hosted style
    virtual_hosted: bool
    region: str
    service: str  # "s3", or "s3express" for a directory bucket

    def bucket_url(self, bucket: str) -> str:
        """The bucket's own address: where what a probe found holds."""
        return self.endpoint if self.virtual_hosted else f"{self.endpoint}/{bucket}"


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


@dataclass(frozen=True)
class Resolved:
    """botocore's answers for one bucket: the session, a client, the address, credentials, the CA bundle."""

    session: Any  # botocore's
    client: Any
    address: Address
    credentials: Any
    ca_bundle: str | None


def resolve(settings: Settings) -> Resolved:
    """Everything botocore decides for this bucket; one line for each way it can fail."""
    import botocore.exceptions

    session = _session(settings)
    try:
        client = _client(session, settings, _connect_timeout(session, settings), _users_checksum_choice(session))
        address = resolve_address(client, settings.bucket)
        credentials = session.get_credentials()
    except botocore.exceptions.NoRegionError:
        raise SettingsError(
            "no AWS region is set: set S3_PUBLISH_REGION, AWS_REGION, or region in ~/.aws/config"
        ) from None
    except (botocore.exceptions.BotoCoreError, ValueError) as error:
        raise SettingsError(f"cannot address bucket {settings.bucket}: {error}") from None
    if credentials is None:
        raise no_credentials()
    return Resolved(session, client, address, credentials, session.get_config_variable("ca_bundle"))


def _session(settings: Settings) -> Any:
    """botocore's session for the profile; boto3's is not needed to read, and costs a tenth of a second."""
    import botocore.exceptions
    import botocore.session

    for name in ("botocore", "boto3", "urllib3", "s3transfer"):  # their debug logs print request headers
        logging.getLogger(name).setLevel(logging.WARNING)
    session = botocore.session.Session(profile=settings.profile)
    try:
        session.get_scoped_config()  # where a profile that is not there is found out
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            f"S3_PUBLISH_PROFILE names the AWS profile {settings.profile!r}, which is not "
            "in ~/.aws/config or ~/.aws/credentials: add it or fix the setting"
        ) from None
    return session


def _region(session: Any, settings: Settings) -> str | None:
    return settings.region or session.get_config_variable("region") or ("us-east-1" if settings.endpoint_url else None)


def _users_checksum_choice(session: Any) -> bool:
    """Whether the user's environment or AWS config file chooses when botocore adds checksums."""
    names = ("request_checksum_calculation", "response_checksum_validation")
    scoped = session.get_scoped_config()
    return any(os.environ.get(f"AWS_{name.upper()}") or scoped.get(name) for name in names)


def _client(session: Any, settings: Settings, connect_timeout: float, users_choice: bool) -> Any:
    from botocore.config import Config

    from .. import __version__

    # AWS's advice for stores other than its own, and harmless on it: checksums only where S3 requires one,
    # unless the user's own configuration says otherwise.
    checksums: Literal["when_required"] | None = None if users_choice else "when_required"
    config = Config(
        max_pool_connections=settings.workers + 2,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=connect_timeout,
        read_timeout=settings.timeout,
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
        user_agent_extra=f"pelican-s3-publish/{__version__}",
        # Every parameter is built here, not taken from users: checking each
        # request against the model again is CPU per request for nothing.
        parameter_validation=False,
    )
    return session.create_client(
        "s3", region_name=_region(session, settings), endpoint_url=settings.endpoint_url, config=config
    )


def _connect_timeout(session: Any, settings: Settings) -> float:
    """botocore's connect timeout for this setup (AWS_DEFAULTS_MODE's included), at most CONNECT_TIMEOUT_S.

    A client made with any Config takes Config's 60 s instead of what the
    defaults mode says, so a client made without one is asked (6 ms).
    """
    plain = session.create_client("s3", region_name=_region(session, settings), endpoint_url=settings.endpoint_url)
    return float(min(CONNECT_TIMEOUT_S, settings.timeout, plain.meta.config.connect_timeout))


def no_credentials() -> BucketError:
    return BucketError(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or S3_PUBLISH_PROFILE"
    )
