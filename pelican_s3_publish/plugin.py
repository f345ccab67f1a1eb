"""The Pelican glue: check settings and start reading the bucket when a build
begins (`initialized`), have each page and feed hashed as it is written
(`content_written`, `feed_written`), publish when the build is `finalized`.

Nested builds (i18n_subsites runs each sub-site as a Pelican build inside
its parent's) are told from the signals themselves: a build is pushed when
it starts running (`get_generators`, sent at the start of `Pelican.run`) and
popped when it is `finalized`, and a build that starts or ends while another
is running is nested; the outermost publishes, since its output holds the
sub-sites. Weak references, so a build that failed and was dropped never
counts as running; a Pelican object made but never run (as `pelican -r`
leaves one) is never pushed.

Kept light: boto3 is imported only when publishing is asked for, so a build
with publishing off pays nothing for the plugin.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import weakref
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import collector, log
from .errors import PublishError, SettingsError
from .settings import Settings, dropped_overrides, from_pelican, is_requested

if TYPE_CHECKING:
    from .early_read import ChildRead
    from .progress import ProgressBar

_autoreload_skip_said = False
_running: list[weakref.ref[Any]] = []  # builds between the start of `run` and `finalized`
# Bucket reads started when a build began, by its Pelican object.
_early_reads: weakref.WeakKeyDictionary[Any, tuple[Settings, ChildRead]] = weakref.WeakKeyDictionary()
# Each content source's saved page, by the build that wrote it: for redirects when a page moves.
_sources: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
CONTENT_LISTS = ("articles", "translations", "drafts", "drafts_translations", "pages", "hidden_pages", "draft_pages",
                 "hidden_translations", "draft_translations")  # fmt: skip


def _frames() -> list[FrameType]:
    frame = sys._getframe(1)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return frames


def _still_running(excluding: Any = None) -> bool:
    """Forget dropped builds (and `excluding`); True when some other build is still running."""
    _running[:] = [ref for ref in _running if ref() is not None and ref() is not excluding]
    return bool(_running)


def on_build_started(pelican_obj: Any) -> None:
    _still_running(excluding=pelican_obj)
    _running.append(weakref.ref(pelican_obj))


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


def _progress_bar() -> contextlib.AbstractContextManager[ProgressBar | None]:
    """On Pelican's own console, when it is a terminal and the summary would be shown (not `-q`)."""
    from pelican.log import console

    if not console.is_terminal or not log.logger.isEnabledFor(logging.INFO):
        return contextlib.nullcontext()
    from .progress import ProgressBar

    return ProgressBar(console)


def _check_pelican_overrides() -> None:
    """`pelican -e A=1 -e B=2` keeps only B: an S3_PUBLISH_ setting lost that way is an error, not a surprise."""
    script = Path(sys.argv[0])
    if script.name != "pelican" and (script.name, script.parent.name) != ("__main__.py", "pelican"):
        return  # not Pelican's command line: nobody dropped anything
    dropped = dropped_overrides(sys.argv)
    if dropped:
        raise SettingsError(
            f"-e {' '.join(dropped)} was dropped: pelican keeps only the last -e; "
            "give every setting after a single -e: -e KEY=VALUE KEY=VALUE"
        )


def on_initialized(pelican_obj: Any) -> None:
    """Check the settings before a long build, and start reading the bucket meanwhile."""
    settings_dict = pelican_obj.settings
    try:
        _check_pelican_overrides()
    except PublishError as error:
        _fail(error, autoreload=False)
    if not is_requested(settings_dict) or _still_running() or under_autoreload():
        return
    try:
        settings = from_pelican(settings_dict)
        from .early_read import ChildRead

        # Forked while the build runs no other thread (its console's spinner starts later): nothing to import
        # again. With threads, a new interpreter: a fork would copy locks other threads may hold.
        alone = threading.active_count() == 1
        _early_reads[pelican_obj] = settings, ChildRead(settings, fork=alone, waits_at_close=False)
    except PublishError as error:
        _fail(error, autoreload=False)


def on_written(path: str, **_: Any) -> None:
    """A page or feed the build has written: the bucket's reader hashes it while the build goes on, so the
    publish at the end only checks that it is still as it was hashed."""
    build = _running[0]() if _running else None  # the outermost build publishes; its output holds the rest
    early = _early_reads.get(build) if build is not None else None
    if early is not None:
        early[1].hash_ahead(path)  # the child makes it a real path: same working directory


def on_finalized(pelican_obj: Any) -> None:
    """Publish, with the build's own objects set aside from the garbage collector (`collector`)."""
    with collector.others_set_aside():
        _publish_build(pelican_obj)


def _publish_build(pelican_obj: Any) -> None:
    log.show_summary_by_default()
    nested = _still_running(excluding=pelican_obj)
    settings_dict = pelican_obj.settings
    if not is_requested(settings_dict):
        return
    if nested:
        log.debug("nested build of %s: the outermost build publishes", pelican_obj.output_path)
        return
    autoreload = under_autoreload()
    if autoreload and settings_dict.get("S3_PUBLISH_ON_AUTORELOAD") is not True:
        _skip_for_autoreload()
        return
    early_settings, early_read = _early_reads.pop(pelican_obj, (None, None))
    try:
        settings = from_pelican(settings_dict)
        from .publish import publish

        remote = early_read if settings == early_settings else None
        if early_read is not None and remote is None:  # the settings changed meanwhile: read anew
            early_read.close()
        with _progress_bar() as bar:
            sources = _sources.pop(pelican_obj, None)
            report = publish(settings, os.path.abspath(pelican_obj.output_path), remote, bar, sources)
    except PublishError as error:
        _fail(error, autoreload)
        return
    for line in report.plan:
        log.info("%s", line)
    log.info("%s", report.summary())


def on_generators_finalized(generators: list[Any]) -> None:
    """Where each article and page was saved, for the build that is running (the innermost)."""
    build = _running[-1]() if _running else None
    if build is None:
        return
    saved = _sources.setdefault(build, {})
    for generator in generators:
        for name in CONTENT_LISTS:
            for content in getattr(generator, name, None) or ():
                source, save_as = getattr(content, "relative_source_path", None), getattr(content, "save_as", None)
                if source and save_as:
                    saved[source.replace(os.sep, "/")] = save_as.replace(os.sep, "/").lstrip("/")


def register() -> None:
    from pelican import signals

    signals.initialized.connect(on_initialized)
    signals.get_generators.connect(on_build_started)
    signals.all_generators_finalized.connect(on_generators_finalized)
    signals.content_written.connect(on_written)
    signals.feed_written.connect(on_written)
    signals.finalized.connect(on_finalized)
