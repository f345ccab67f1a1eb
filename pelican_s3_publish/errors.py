"""Failures the user can act on, each with the exit code the command line uses.

Expected failures carry a one-line message (what, where, what to do) and are
shown without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PublishError(Exception):
    """The publish failed; nothing more was written than the message says."""

    exit_code = 1


class SettingsError(PublishError):
    """A setting, an argument or the output directory is wrong."""

    exit_code = 2


class RefusedError(PublishError):
    """The publish would be unsafe (too many deletes, an empty site)."""

    exit_code = 3
