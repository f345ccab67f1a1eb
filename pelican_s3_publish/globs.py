"""One glob dialect for every setting that takes patterns.

A pattern without a slash matches a file's name at any depth (`*.map`); one
with a slash matches the whole path relative to the output directory
(`theme/css/*`), where `*` also crosses slashes. A trailing slash matches a
directory anywhere (`.git/`). This is what gitignore users expect, and the
same rule applies to excludes, content types and header rules.

Each pattern is compiled once to a regular expression: a publish matches
every file against every pattern, and fnmatch per call was a third of a
no-op publish.
"""

from __future__ import annotations

import re
from functools import lru_cache

ANY_PARENTS = r"(?:.*/)?"


def _translate(pattern: str, star: str) -> str:
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        close = pattern.find("]", index + 2) if char == "[" else -1
        if char == "*":
            parts.append(star)
        elif char == "?":
            parts.append("[^/]")
        elif close != -1:
            inner = pattern[index + 1 : close].replace("\\", "\\\\")
            parts.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
            index = close
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern.endswith("/"):
        directory = pattern.rstrip("/")
        prefix = "" if "/" in directory else ANY_PARENTS
        return re.compile(prefix + _translate(directory.lstrip("/"), "[^/]*") + "/", re.DOTALL)
    if "/" in pattern:
        return re.compile(_translate(pattern.lstrip("/"), ".*") + r"\Z", re.DOTALL)
    return re.compile(ANY_PARENTS + _translate(pattern, "[^/]*") + r"\Z", re.DOTALL)


def matches(pattern: str, relpath: str) -> bool:
    return _compiled(pattern).match(relpath) is not None


@lru_cache(maxsize=256)
def _alternatives(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """All patterns as one expression: the regex engine tries them in order, in C."""
    return re.compile("|".join(f"(?P<p{i}>{_compiled(p).pattern})" for i, p in enumerate(patterns)), re.DOTALL)


def first_match(patterns: tuple[str, ...], relpath: str) -> str | None:
    if not patterns:
        return None
    found = _alternatives(patterns).match(relpath)
    return patterns[int(found.lastgroup[1:])] if found and found.lastgroup else None
