"""Messages through Pelican's logging, each prefixed so users can tell them apart."""

from __future__ import annotations

import contextlib
import logging

logger = logging.getLogger("pelican_s3_publish")
PREFIX = "s3-publish: "


def show_summary_by_default() -> None:
    """Let INFO through while the root logger sits at its WARNING default.

    Pelican shows warnings by default, and `--fatal warnings` turns every
    warning into an error, so the summary cannot be a warning; `-q` still
    silences it and `-D` still adds the debug lines.
    """
    root_level = logging.getLogger().getEffectiveLevel()
    logger.setLevel(min(root_level, logging.INFO) if root_level <= logging.WARNING else root_level)


def debug(message: str, *args: object) -> None:
    logger.debug(PREFIX + message, *args)


def info(message: str, *args: object) -> None:
    logger.info(PREFIX + message, *args)


def status(message: str) -> None:
    """A line about work still under way (shown like the summary)."""
    info("%s", message)


def warning(message: str) -> None:
    """Something a user should fix, that does not stop the publish."""
    _shown(logging.WARNING, message)


def error(message: str) -> None:
    _shown(logging.ERROR, message)


def _shown(level: int, message: str) -> None:
    # `pelican --fatal warnings|errors` raises after showing the line; the build's own end, or the caller
    # right after, fails it.
    with contextlib.suppress(RuntimeError):
        logger.log(level, "%s", PREFIX + message)
