"""One glob dialect for every setting that takes patterns.

A pattern without a slash matches a file's name at any depth (`*.map`); one
with a slash matches the whole path relative to the output directory
(`theme/css/*`), where `*` also crosses slashes. A trailing slash matches a
directory anywhere (`.git/`). This is what gitignore users expect, and the
same rule applies to excludes, content types and header rules.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatchcase


def matches(pattern: str, relpath: str) -> bool:
    if pattern.endswith("/"):
        directory = pattern.rstrip("/")
        parents = relpath.split("/")[:-1]
        if "/" in directory:
            return any(fnmatchcase("/".join(parents[: i + 1]), directory) for i in range(len(parents)))
        return any(fnmatchcase(part, directory) for part in parents)
    if "/" in pattern:
        return fnmatchcase(relpath, pattern.lstrip("/"))
    return fnmatchcase(posixpath.basename(relpath), pattern)


def first_match(patterns: tuple[str, ...], relpath: str) -> str | None:
    return next((p for p in patterns if matches(p, relpath)), None)
