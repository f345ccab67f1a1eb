"""The Pelican glue: publish when a build is finalized.

Kept light: boto3 is imported only when a publish really runs, so a build
with publishing off pays nothing for the plugin.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from . import log
from .errors import PublishError
from .settings import from_pelican, is_requested

_autoreload_skip_said = False


def _frames() -> list[FrameType]:
    frame = sys._getframe(1)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return frames


def _is_build_frame(frame: FrameType) -> bool:
    from pelican import Pelican

    return frame.f_code.co_name == "run" and isinstance(frame.f_locals.get("self"), Pelican)


def inside_outer_build() -> bool:
    """A nested build (i18n_subsites) runs inside its parent's `Pelican.run`.

    Only the outermost build publishes: its output holds the sub-sites too.
    """
    return sum(1 for frame in _frames() if _is_build_frame(frame)) > 1


def under_autoreload() -> bool:
    """`pelican -r`/`-lr` run builds from `pelican.autoreload`; `invoke livereload`
    from a task named livereload. Pelican has no flag that says so, the stack does."""
    import pelican

    for frame in _frames():
        if frame.f_code is pelican.autoreload.__code__:
            return True
        if frame.f_code.co_name == "livereload" or frame.f_globals.get("__name__", "").startswith(
            "livereload"
        ):
            return True
    return False


def _skip_for_autoreload() -> None:
    global _autoreload_skip_said
    if not _autoreload_skip_said:
        log.info(
            "not publishing: this build runs under autoreload; "
            "set S3_PUBLISH_ON_AUTORELOAD = True to publish every rebuild"
        )
        _autoreload_skip_said = True


def on_finalized(pelican_obj: Any) -> None:
    log.show_summary_by_default()
    settings_dict = pelican_obj.settings
    if not is_requested(settings_dict):
        return
    if inside_outer_build():
        log.debug("nested build of %s: the outermost build publishes", pelican_obj.output_path)
        return
    autoreload = under_autoreload()
    if autoreload and settings_dict.get("S3_PUBLISH_ON_AUTORELOAD") is not True:
        _skip_for_autoreload()
        return
    try:
        settings = from_pelican(settings_dict)
        from .publish import publish

        report = publish(settings, os.path.abspath(pelican_obj.output_path))
    except PublishError as error:
        log.error(str(error))
        if autoreload:
            return  # keep the autoreload loop alive; the next rebuild tries again
        raise SystemExit(error.exit_code) from None
    for line in report.plan:
        log.info("%s", line)
    log.info("%s", report.summary())


def register() -> None:
    from pelican import signals

    signals.finalized.connect(on_finalized)
