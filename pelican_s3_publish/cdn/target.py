"""What every CDN in front of the bucket is to a publish: told what changed, by path, within a budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import PublishError


class CdnError(PublishError):
    """A CDN refused or could not be reached; the message names what to do."""


class Cdn(Protocol):
    """One distribution or zone. Paths not yet told are kept in the manifest under `key` until told."""

    key: str
    name: str  # the distribution's or the zone's id, as the report shows it
    label: str  # "CloudFront", "Cloudflare": for the summary and messages

    def check(self) -> str:
        """For --check: what was found of it, asking nothing that changes it."""
        ...

    def wanted(self, keys: Sequence[str]) -> list[str]:
        """The URL paths these changed keys are served under; read before anything is written, so a
        wrong id or a refused credential stops the publish with nothing changed."""
        ...

    def folded(self, paths: Sequence[str]) -> list[str]:
        """Within this CDN's budget and limits."""
        ...

    def tell(self, paths: Sequence[str], publish_id: str) -> str | None:
        """Invalidate or purge these (as `folded` gave them); the request's id where the CDN gives one.
        `publish_id` is the same for a retried publish, so a CDN that can tell makes one request of both."""
        ...

    def wait(self, request: str | None, timeout_s: float, told: Callable[[str], None]) -> None:
        """Until the request has taken effect, saying its status as it changes (where it takes time)."""
        ...


@dataclass(frozen=True)
class Invalidation:
    distribution: str  # the distribution's id, or the Cloudflare zone's
    id: str | None  # None in a dry run, or where the CDN gives none
    paths: tuple[str, ...]
    cdn: str = "CloudFront"

    def describe(self) -> str:
        verb = "invalidate" if self.cdn == "CloudFront" else "purge"
        return f"{verb}  {self.distribution}  {len(self.paths)} paths: {' '.join(self.paths)}"
