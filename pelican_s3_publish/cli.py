"""`pelican-s3-publish`: publish an already built output directory.

Exit codes: 0 done, 1 failed, 2 bad settings or usage, 3 refused for safety, 130 and 143 stopped by
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, log
from .early_read import ChildRead
from .errors import PublishError, SettingsError
from .settings import from_pelican

if TYPE_CHECKING:
    from .progress import ProgressBar

DEFAULT_SETTINGS = ("publishconf.py", "pelicanconf.py")

# Pelican's defaults for the settings a publish reads (pelican.settings.DEFAULT_CONFIG;
# a test keeps the two the same).
PELICAN_DEFAULTS: dict[str, Any] = {
    "OUTPUT_PATH": "output",
    "FEED_ALL_ATOM": "feeds/all.atom.xml",
    "CATEGORY_FEED_ATOM": "feeds/{slug}.atom.xml",
    "AUTHOR_FEED_ATOM": "feeds/{slug}.atom.xml",
    "AUTHOR_FEED_RSS": "feeds/{slug}.rss.xml",
    "TRANSLATION_FEED_ATOM": "feeds/all-{lang}.atom.xml",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pelican-s3-publish",
        description=(
            "Publish an already built Pelican site to S3, sending only new and changed files. "
            "It does not build the site: run `pelican content` first, or let the plugin publish as it builds."
        ),
        epilog=(
            "exit codes: 0 done, 1 failed, 2 bad settings or usage, 3 refused for safety (nothing was changed), "
            "130 stopped by Ctrl-C (143 by SIGTERM): what landed is recorded, publish again to finish"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-s", "--settings", help="Pelican settings file (default: publishconf.py, else pelicanconf.py)")
    parser.add_argument("-o", "--output", help="output directory to publish (default: the settings' OUTPUT_PATH)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan: each key, what would happen, why")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON report (with --history: the history) on standard output"
    )
    undo = parser.add_mutually_exclusive_group()
    undo.add_argument(
        "--check",
        action="store_true",
        help="check the credentials, the bucket and what the store does, without changing the site "
        "(a probe object is written and removed); exit 0 when a publish can work",
    )
    undo.add_argument("--history", action="store_true", help="list the last publishes, newest first, with their ids")
    undo.add_argument(
        "--rollback",
        nargs="?",
        const="",
        metavar="ID",
        help="put the site back as publish ID left it, from the bucket's old versions (no bytes are sent); "
        "without ID, a step back: the publish before the last, or, right after a rollback, the one before "
        "the publish it went back to",
    )
    parser.add_argument(
        "-e",
        "--extra-settings",
        nargs="*",
        action="extend",
        default=[],
        metavar="KEY=JSON",
        help="override settings, as with pelican -e; every -e counts",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="show each file sent")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="show errors only")
    return parser


def _settings_path(given: str | None) -> str:
    if given:
        if not Path(given).is_file():
            raise SettingsError(f"settings file {given} does not exist: pass the right path with -s")
        return given
    found = next((name for name in DEFAULT_SETTINGS if Path(name).is_file()), None)
    if found is None:
        raise SettingsError("no publishconf.py or pelicanconf.py here: run from the site's folder or pass -s")
    return found


def _overrides(pairs: list[str]) -> dict[str, object]:
    overrides = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise SettingsError(f"-e {pair}: write KEY=VALUE, with VALUE as JSON")
        overrides[name] = _value(value)
    return overrides


def _value(text: str) -> object:
    """JSON, as Pelican reads it; else a Python literal (`True`, `None`), as in a settings file; else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def read_settings(path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings file read the way Pelican reads it, without importing Pelican.

    Importing Pelican costs a quarter of a second, most of a no-op publish's
    budget. As Pelican does: run the file as a module, take its upper-case
    names, apply the overrides, make a given OUTPUT_PATH absolute from the
    file's folder, fill in Pelican's defaults.
    """
    name = Path(path).stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the settings file is Python: anything can go wrong in it
        raise SettingsError(f"cannot read the settings file {path}: {error}: fix it") from None
    settings = {key: value for key, value in vars(module).items() if key.isupper()} | overrides
    if settings.get("OUTPUT_PATH") is not None:
        settings["OUTPUT_PATH"] = os.path.abspath(os.path.join(os.path.dirname(path), settings["OUTPUT_PATH"]))
    return PELICAN_DEFAULTS | settings


def _progress_bar(quiet: bool) -> contextlib.AbstractContextManager[ProgressBar | None]:
    """On standard error, when it is a terminal: standard output stays clean for --json."""
    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    from .progress import ProgressBar

    return ProgressBar(Console(stderr=True))


def _run(args: argparse.Namespace) -> int:
    path = _settings_path(args.settings)
    overrides = _overrides(args.extra_settings)
    if args.output:
        overrides["OUTPUT_PATH"] = str(Path(args.output).absolute())
    pelican_settings = read_settings(path, overrides)
    settings = from_pelican(pelican_settings)
    if args.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    publishing = not (args.check or args.history or args.rollback is not None)
    # Forked before the rest is imported (no thread has started yet): the child's path is what a no-op waits for.
    remote = ChildRead(settings, fork=True) if publishing else None
    from .publish import past_publishes, publish, rollback

    if args.check:
        from .check import check

        return check(settings, print)
    if args.history:
        entries = past_publishes(settings)[::-1]
        if args.json:
            print(json.dumps([entry.to_json() for entry in entries], indent=2, ensure_ascii=False))
        else:
            for entry in entries:
                print(entry.describe())
        if not entries:
            log.info("no publishes on record in %s yet", settings.destination)
        return 0
    if remote is None:
        with _progress_bar(args.quiet) as bar:
            report = rollback(settings, args.rollback or None, bar)
    else:
        with _progress_bar(args.quiet) as bar:
            report = publish(settings, pelican_settings["OUTPUT_PATH"], remote, bar)
    if args.dry_run and not args.json:
        for line in report.plan:
            print(line)
    log.info("%s", report.summary())
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    log.logger.setLevel(level)
    try:
        return _run(args)
    except PublishError as error:
        log.error(str(error))
        return error.exit_code
    except KeyboardInterrupt:  # before the publish took over the signals: nothing was written
        log.error("interrupted before anything was sent: the bucket is as it was")
        return 128 + signal.SIGINT
    except BrokenPipeError:  # `| head` has what it wanted: end quietly, as a tool killed by SIGPIPE does
        return _pipe_closed()


def _pipe_closed() -> int:
    """Standard output went away: anything still buffered for it is dropped, not reported."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def console_main() -> None:
    """The `pelican-s3-publish` command: `main`, then out without the interpreter's teardown.

    Freeing botocore's loaded models one object at a time costs a no-op
    publish 0.1 s after its work is done; everything is written and flushed
    by then, and the operating system takes the memory back at once.
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _pipe_closed()
    sys.stderr.flush()
    os._exit(code)
