"""Cloudflare: the changed URLs of a zone purged from its cache, within the plan's limits, through the
official `cloudflare` library.

Cloudflare's "Purge cache" documentation: every plan purges by URL, prefix or
everything; at most 100 URLs or prefixes a request; the Free plan allows 5
purge requests a minute (a bucket of 25), and answers 429 past it (purges by
URL were held at 30 a request on all but Enterprise: cloudflare/cloudflare-docs#21338). URLs are
the site's public ones (Pelican's SITEURL, or S3_PUBLISH_CLOUDFLARE_URLS for a
site under several host names), percent-encoded as a browser asks for them.
Above the budget, paths fold into prefixes, deepest folders first, and
everything in the zone is purged only as a last resort. The token comes from
CLOUDFLARE_API_TOKEN and the API's address from CLOUDFLARE_BASE_URL, both read
by the library itself: neither is ever a setting or printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..errors import SettingsError
from .paths import EVERYTHING, fold_paths, url_paths
from .target import CdnError

# Items a request. The "Purge cache" page says 100 on every plan; purges by URL were held at 30 on all but
# Enterprise (cloudflare/cloudflare-docs#21338): 30 URLs a request holds under either reading.
BATCH = {"files": 30, "prefixes": 100}
EVERYTHING_IN_ZONE = "*"  # how a purge of everything is shown and kept
RETRIES = 4  # the library waits as each 429's Retry-After says (at most a minute each): bounded
TOKEN = "CLOUDFLARE_API_TOKEN"
PERMISSION = "the Cache Purge permission (Zone > Cache Purge > Purge) on the zone"


def client() -> Any:
    """The library's client, its token from CLOUDFLARE_API_TOKEN and its address from CLOUDFLARE_BASE_URL."""
    if not os.environ.get(TOKEN):
        raise SettingsError(
            f"S3_PUBLISH_CLOUDFLARE_ZONE_ID is set but {TOKEN} is not: set it to an API token with {PERMISSION}"
        )
    try:
        from cloudflare import Cloudflare
    except ImportError:
        raise SettingsError(
            "S3_PUBLISH_CLOUDFLARE_ZONE_ID needs the cloudflare library: pip install 'pelican-s3-publish[cloudflare]'"
        ) from None
    return Cloudflare(max_retries=RETRIES, timeout=30)


class Zone:
    """One zone as a CDN target: its paths kept pending under `cloudflare:<zone id>`."""

    label = "Cloudflare"

    def __init__(self, api: Any, zone: str, sites: Sequence[str], budget: int, prefix: str) -> None:
        self._api = api
        self.zone = self.name = zone
        self.key = f"cloudflare:{zone}"
        self._sites = [site.rstrip("/") for site in sites]
        self._budget = budget
        self._prefix = prefix
        self._checked = False

    def check(self) -> str:
        self._check()
        return (
            f"zone {self.zone}: the token is active and the zone is there; purging needs {PERMISSION} "
            "(not tried: it would purge)"
        )

    def wanted(self, keys: Sequence[str]) -> list[str]:
        if not keys:
            return []
        self._check()
        return url_paths(keys, self._prefix)

    def _check(self) -> None:
        """The token is one Cloudflare takes and the zone is there: before anything is written."""
        if self._checked:
            return
        self._call("verify the token", lambda: self._api.user.tokens.verify())
        self._call("read the zone", lambda: self._api.zones.get(zone_id=self.zone), reading_zone=True)
        self._checked = True

    def folded(self, paths: Sequence[str]) -> list[str]:
        """Full URLs, one per path and site; over the budget, prefixes (no scheme, as Cloudflare takes them)."""
        per_site = max(1, self._budget // len(self._sites))
        kept = fold_paths(paths, per_site, per_site)
        if kept == [EVERYTHING]:
            return [EVERYTHING_IN_ZONE]
        return sorted(
            _prefix(site, path[:-1]) if path.endswith("*") else site + path for site in self._sites for path in kept
        )

    def tell(self, items: Sequence[str], publish_id: str) -> None:
        if EVERYTHING_IN_ZONE in items:
            self._purge(purge_everything=True)
            return
        files = [item for item in items if "://" in item]
        prefixes = [item for item in items if "://" not in item]
        for kind, batch in [("files", files), ("prefixes", prefixes)]:
            for start in range(0, len(batch), BATCH[kind]):
                self._purge(**{kind: batch[start : start + BATCH[kind]]})

    def wait(self, request: str | None, timeout_s: float, told: Callable[[str], None]) -> None:
        """A purge takes effect within seconds everywhere, with nothing to ask about it."""

    def _purge(self, **what: Any) -> None:
        self._call("purge the cache", lambda: self._api.cache.purge(zone_id=self.zone, **what))

    def _call(self, action: str, request: Any, reading_zone: bool = False) -> Any:
        import cloudflare

        try:
            return request()
        except (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError) as error:
            if reading_zone and isinstance(error, cloudflare.PermissionDeniedError):
                return None  # a token with only Cache Purge may not read the zone: the purge will tell
            raise SettingsError(
                f"Cloudflare refused the token in {TOKEN} to {action} of zone {self.zone} "
                f"({_said(error)}): give it {PERMISSION}"
            ) from None
        except (cloudflare.NotFoundError, cloudflare.BadRequestError) as error:
            if not reading_zone:
                raise CdnError(f"Cloudflare refused to {action} of zone {self.zone}: {_said(error)}") from None
            raise SettingsError(
                f"Cloudflare has no zone {self.zone} for this token ({_said(error)}): fix S3_PUBLISH_CLOUDFLARE_ZONE_ID"
            ) from None
        except cloudflare.RateLimitError:
            raise CdnError(
                f"Cloudflare kept answering 429 (too many purges) for zone {self.zone} after {RETRIES} waits"
            ) from None
        except cloudflare.APIStatusError as error:
            raise CdnError(f"Cloudflare refused to {action} of zone {self.zone}: {_said(error)}") from None
        except cloudflare.APIConnectionError as error:
            raise CdnError(f"cannot reach Cloudflare to {action} of zone {self.zone} ({error})") from None


def _prefix(site: str, path: str) -> str:
    """Cloudflare's form of a prefix: host and path, without the scheme."""
    parts = urlsplit(site)
    return f"{parts.netloc}{parts.path}{path}"


def _said(error: Any) -> str:
    """Cloudflare's own words: the first error in its answer, else the status."""
    body = getattr(error, "body", None)
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors and isinstance(errors[0], dict):
        return f"{errors[0].get('code', '')} {errors[0].get('message', '')}".strip()
    return str(getattr(error, "status_code", "no answer"))
