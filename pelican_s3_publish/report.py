"""The report of a publish: the JSON tools read, and the one-line summary.

The JSON shape is a promise: fields may be added, never renamed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cdn import Invalidation
from .headers import Headers
from .local import object_key, relpath_of
from .plan import Plan


@dataclass(frozen=True)
class Sent:
    key: str
    reason: str
    bytes: int
    content_type: str


@dataclass(frozen=True)
class Report:
    bucket: str
    prefix: str
    dry_run: bool
    uploaded: list[Sent]
    deleted: list[str]
    unchanged: int
    elapsed_s: float
    bytes_sent: int = 0
    retries: int = 0
    endpoint_url: str | None = None
    invalidations: list[Invalidation] = field(default_factory=list)
    # Promises this store made the publish keep another way, or not at all: each said once.
    fallbacks: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    rolled_back_to: str | None = None  # the id of the publish a rollback restored

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        del document["plan"]
        return document

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def counts(self) -> dict[str, int]:
        reasons = Counter(item.reason for item in self.uploaded)
        return dict(reasons) | {"unchanged": self.unchanged, "deleted": len(self.deleted)}

    def summary(self) -> str:
        counts = counts_text(self.counts())
        where = f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if self.rolled_back_to is not None:
            where = f"{where} to publish {self.rolled_back_to}"
        if self.dry_run:
            told = "".join(f"; {cdn}: {count} {unit}" for cdn, count, unit in self._told())
            rollback = "a rollback of " if self.rolled_back_to is not None else ""
            return f"dry run for {rollback}{where}: would send {counts}{told}; nothing was written"
        told = "".join(f"; {cdn}: {count} {unit} {TOLD[cdn]}" for cdn, count, unit in self._told())
        done = "rolled back" if self.rolled_back_to is not None else "published to"
        sent = f"{size_text(self.bytes_sent)} sent in {self.elapsed_s:.2f} s"
        return "\n".join([f"{done} {where}: {counts}{told}; {sent}", *(f"  note: {f}" for f in self.fallbacks)])

    def _told(self) -> list[tuple[str, int, str]]:
        """Per CDN: how many paths (CloudFront) or URLs (Cloudflare) it was told of."""
        counts: dict[str, int] = {}
        for invalidation in self.invalidations:
            counts[invalidation.cdn] = counts.get(invalidation.cdn, 0) + len(invalidation.paths)
        return [(cdn, count, UNITS[cdn]) for cdn, count in counts.items()]


# How each count reads, in the order told; those not ALWAYS_TOLD only when there are some.
PHRASES = {
    "new": "{} new",
    "changed": "{} changed",
    "missing": "{} re-sent (missing from the bucket)",
    "gzip": "{} re-sent for the gzip setting",
    "headers": "{} header-only",
    "restored": "{} restored",
    "redirect": "{} redirect",
    "unchanged": "{} unchanged",
    "deleted": "{} deleted",
}
ALWAYS_TOLD = ("new", "changed", "headers", "deleted")


def counts_text(counts: Mapping[str, int]) -> str:
    """`3 new, 1 changed, 0 header-only, 2 redirects, 40 unchanged, 0 deleted`: the same words everywhere."""
    told = []
    for name, phrase in PHRASES.items():
        count = counts.get(name, 0)
        if count or name in ALWAYS_TOLD:
            told.append(phrase.format(count) + ("s" if name == "redirect" and count != 1 else ""))
    return ", ".join(told)


UNITS = {"CloudFront": "paths", "Cloudflare": "URLs"}
TOLD = {"CloudFront": "invalidated", "Cloudflare": "purged"}


def size_text(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    size = count / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def sent_items(plan: Plan, prefix: str, written: set[str] | None = None) -> list[Sent]:
    """What the plan sends, or of it what was really written."""

    def sent(relpath: str, reason: str, size: int, headers: Headers) -> Sent:
        return Sent(object_key(prefix, relpath), reason, size, dict(headers)["content-type"])

    uploads = [sent(u.file.relpath, u.reason, u.file.size, u.headers) for u in plan.uploads]
    updates = [sent(h.file.relpath, "headers", 0, h.headers) for h in plan.header_updates]
    restores = [sent(r.relpath, "restored", 0, r.record.headers) for r in plan.restores]
    items = uploads + updates + restores
    if written is None:
        return items
    return [item for item in items if relpath_of(prefix, item.key) in written]
