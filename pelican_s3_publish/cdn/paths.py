"""URL paths from changed keys, and folding them within a budget: what every CDN here is told.

A key becomes the URL path it is served under, the origin's own folder taken
off: `dir/index.html` as both `/dir/` and `/dir/index.html`, and a folder key
`dir/` (strip-index) as `/dir/`; percent-encoded as a browser asks for it.
Above a budget, paths fold into `/dir/*` wildcards, deepest shared folders
first; `/*`, everything, only as a last resort.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from urllib.parse import quote

INDEX = "index.html"
# What CloudFront and Cloudflare take unencoded in a path; "*" is kept for the wildcards folding adds,
# never from a key.
SAFE = "/-_.~!$&'()+,;=:@"
EVERYTHING = "/*"


def url_paths(keys: Iterable[str], origin_path: str) -> list[str]:
    """The URL paths under which these keys are served, for an origin at this folder of the bucket."""
    base = origin_path.strip("/")
    base = base + "/" if base else ""
    paths: set[str] = set()
    for key in keys:
        if not key.startswith(base):
            continue  # not served by this origin
        served = key[len(base) :]
        paths.add("/" + quote(served, safe=SAFE))
        if served == INDEX or served.endswith("/" + INDEX):
            paths.add("/" + quote(served[: -len(INDEX)], safe=SAFE))
    return sorted(paths)


def _folders(path: str) -> list[str]:
    """The folders a path lies in, deepest first (a wildcard: those above its own): what may replace it."""
    inner = path[:-2] if path.endswith("/*") else path
    return [inner[: end + 1] for end in range(len(inner) - 1, -1, -1) if inner[end] == "/"]


def fold_paths(paths: Sequence[str], budget: int, max_wildcards: int) -> list[str]:
    """At most `budget` paths, of them at most `max_wildcards` wildcards: the deepest shared folders
    become `folder*`; `/*` when nothing else fits."""
    current = sorted(set(paths))
    while len(current) > budget or sum(p.endswith("*") for p in current) > max_wildcards:
        shared = Counter(folder for path in current for folder in _folders(path))
        candidates = [folder for folder, count in shared.items() if count > 1 and folder != "/"]
        if not candidates:
            return [EVERYTHING]
        chosen = max(candidates, key=lambda folder: (folder.count("/"), shared[folder]))
        current = sorted({p for p in current if not p.startswith(chosen)} | {chosen + "*"})
    return current
