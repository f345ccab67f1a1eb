"""The connections requests travel on, configured from what botocore resolved.

obstore's store for the hot requests, and botocore's own HTTP session for
the requests this package signs itself; both take botocore's proxy, CA bundle
and timeouts, so a setup that works for the AWS CLI works here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import SettingsError
from ..settings import Settings
from .resolution import Resolved

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config, S3Credential, S3Store


def _pem(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"cannot read the CA bundle {path}: {error}: fix AWS_CA_BUNDLE or ca_bundle") from None


def _proxy_map(client: Any, endpoint: str) -> dict[str, str]:
    """The proxies configured for the client, else those the environment names for this endpoint."""
    from botocore.utils import get_environ_proxies

    return dict(client.meta.config.proxies or get_environ_proxies(endpoint))


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
    proxies = ProxyConfiguration(_proxy_map(client, endpoint))
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


def obstore_store(settings: Settings, resolved: Resolved, checksums: bool = True) -> S3Store:
    """obstore's store for this bucket; with `checksums`, every body carries its SHA-256 for the store to check."""
    from obstore.store import S3Store

    from .. import __version__

    where, client = resolved.address, resolved.client
    client_options: ClientConfig = {
        "allow_http": where.endpoint.startswith("http:"),
        "connect_timeout": timedelta(seconds=client.meta.config.connect_timeout),
        "read_timeout": timedelta(seconds=settings.timeout),
        "timeout": timedelta(hours=24),  # a stalled answer is caught by the read timeout; big files take long
        "pool_max_idle_per_host": str(settings.workers + 2),
        "user_agent": f"pelican-s3-publish/{__version__}",
        **_proxy_options(client, where.endpoint, resolved.ca_bundle),
    }
    if pem := _pem(resolved.ca_bundle):
        client_options["root_certificate"] = pem
    config: S3Config = {
        "endpoint": where.endpoint,
        "region": where.region,
        "virtual_hosted_style_request": where.virtual_hosted,
        "s3_express": where.service == "s3express",
        "skip_signature": False,
        "conditional_put": "etag",
    }
    if checksums:  # the store checks each body against it (BadDigest): a byte changed on the way is refused
        config["checksum_algorithm"] = "sha256"
    if settings.sse:
        config["server_side_encryption"] = settings.sse
    if settings.sse_kms_key_id:
        config["sse_kms_key_id"] = settings.sse_kms_key_id
    return S3Store(
        settings.bucket,
        config=config,
        client_options=client_options,
        retry_config={"max_retries": 0},
        credential_provider=CredentialsForObstore(resolved.credentials),
    )


class CredentialsForObstore:
    """obstore asks this for credentials: botocore's, refreshed as botocore refreshes them.

    obstore's own provider imports boto3 (a tenth of a second) and keeps an
    answer 30 minutes, longer than a short-lived role's token may live;
    botocore renews a token 15 minutes before it expires, so asking it
    every `KEPT` never hands obstore an expired one.
    """

    KEPT = timedelta(minutes=5)

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def __call__(self) -> S3Credential:
        frozen = self._credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + self.KEPT,
        }


def http_session(settings: Settings, resolved: Resolved) -> Any:
    """botocore's HTTP session, set up as the client's own is: proxies, CA bundle, timeouts, pool."""
    from botocore.httpsession import URLLib3Session

    config = resolved.client.meta.config
    # botocore passes a CA bundle's path and a (connect, read) pair here itself; its stubs say less.
    return URLLib3Session(
        verify=resolved.ca_bundle or True,  # type: ignore[arg-type]
        proxies=_proxy_map(resolved.client, resolved.address.endpoint),
        timeout=(config.connect_timeout, settings.timeout),  # type: ignore[arg-type]
        max_pool_connections=settings.workers + 2,
        proxies_config=config.proxies_config,
    )
