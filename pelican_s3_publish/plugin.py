"""The Pelican glue: check settings and start reading the bucket when a build
begins (`initialized`), publish when it is `finalized`.

Kept light: boto3 is imported only when publishing is asked for, so a build
with publishing off pays nothing for the plugin.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import log
from .errors import PublishError
from .settings import Settings, from_pelican, is_requested

if TYPE_CHECKING:
    from .remote_read import ChildRead

_autoreload_skip_said = False
# Remote reads started when a build began, by id() of its Pelican object.
_early_reads: dict[int, tuple[Settings, ChildRead]] = {}


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


def builds_running() -> int:
    """How many `Pelican.run` calls are on the stack.

    A nested build (i18n_subsites) runs inside its parent's: only the
    outermost build publishes, since its output holds the sub-sites too.
    """
    return sum(1 for frame in _frames() if _is_build_frame(frame))


def under_autoreload() -> bool:
    """`pelican -r`/`-lr` run builds from `pelican.autoreload`; `invoke livereload`
    from a task named livereload. Pelican has no flag that says so, the stack does."""
    import pelican

    for frame in _frames():
        if frame.f_code is pelican.autoreload.__code__:
            return True
        if frame.f_code.co_name == "livereload" or frame.f_globals.get("__name__", "").startswith("livereload"):
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


def _fail(error: PublishError, autoreload: bool) -> None:
    log.error(str(error))
    if not autoreload:  # under autoreload the loop goes on; the next rebuild tries again
        raise SystemExit(error.exit_code) from None


def on_initialized(pelican_obj: Any) -> None:
    """Check the settings before a long build, and start reading the bucket meanwhile."""
    settings_dict = pelican_obj.settings
    if not is_requested(settings_dict) or builds_running() > 0 or under_autoreload():
        return
    try:
        settings = from_pelican(settings_dict)
        from .remote_read import ChildRead

        _early_reads[id(pelican_obj)] = settings, ChildRead(settings)
    except PublishError as error:
        _fail(error, autoreload=False)


def on_finalized(pelican_obj: Any) -> None:
    log.show_summary_by_default()
    settings_dict = pelican_obj.settings
    if not is_requested(settings_dict):
        return
    if builds_running() > 1:
        log.debug("nested build of %s: the outermost build publishes", pelican_obj.output_path)
        return
    autoreload = under_autoreload()
    if autoreload and settings_dict.get("S3_PUBLISH_ON_AUTORELOAD") is not True:
        _skip_for_autoreload()
        return
    early_settings, early_read = _early_reads.pop(id(pelican_obj), (None, None))
    try:
        settings = from_pelican(settings_dict)
        from .publish import publish

        remote = early_read if settings == early_settings else None
        if early_read is not None and remote is None:
            early_read.cancel()
        report = publish(settings, os.path.abspath(pelican_obj.output_path), remote)
    except PublishError as error:
        _fail(error, autoreload)
        return
    for line in report.plan:
        log.info("%s", line)
    log.info("%s", report.summary())


def register() -> None:
    from pelican import signals

    signals.initialized.connect(on_initialized)
    signals.finalized.connect(on_finalized)
