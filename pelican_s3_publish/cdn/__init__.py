"""The CDNs in front of the bucket, told exactly what a publish changed. Nothing outside this package
knows CloudFront or Cloudflare.

- `paths`: URL paths from changed keys, folding them within a budget;
- `target`: what a CDN is to a publish (`Cdn`), and what was sent (`Invalidation`);
- `cloudfront` and `cloudflare`: one module each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cloudfront import MAX_PATHS, CloudFront, Distribution
from .target import Cdn, CdnError, Invalidation

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["MAX_PATHS", "Cdn", "CdnError", "CloudFront", "Invalidation", "targets"]


def targets(settings: Settings) -> list[Cdn]:
    """Every distribution and zone the settings name; their clients made here, once per publish."""
    found: list[Cdn] = []
    if settings.cloudfront_distributions:
        cloudfront = CloudFront(settings.profile, settings.bucket)
        found += [Distribution(cloudfront, d, settings.cloudfront_max_paths) for d in settings.cloudfront_distributions]
    if settings.cloudflare_zones:
        from .cloudflare import Zone, client

        api = client()
        sites, budget, prefix = settings.cloudflare_urls, settings.cloudflare_max_urls, settings.prefix
        found += [Zone(api, zone, sites, budget, prefix) for zone in settings.cloudflare_zones]
    return found
