"""Reading the bucket beside other work, so that its round trips cost no wall time.

The command line reads in a thread while its main thread hashes the site:
the read is mostly waiting on the server, and a thread starts at once and
hands its answer over without copying it. During a Pelican build the read
runs in a child process instead, because the build holds the interpreter
lock for seconds and would take turns with the read's parsing.
"""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from .client import Connection, explain
from .errors import PublishError, SettingsError
from .remote import RemoteState, fetch
from .settings import Settings

if TYPE_CHECKING:
    from .s3_wire import S3Wire


class BucketRead(Protocol):
    def result(self) -> tuple[RemoteState, int]:
        """The bucket's state, and how many requests were retried to read it."""
        ...


def read_bucket(settings: Settings) -> tuple[RemoteState, int]:
    from .s3_wire import S3Wire  # imported here, beside the work of whoever started the read

    wire = S3Wire.without_botocore(settings) or _wire_through_botocore(settings)
    return fetch(wire, settings.bucket, settings.prefix), wire.retries.total


def _wire_through_botocore(settings: Settings) -> S3Wire:
    from .s3_wire import S3Wire

    try:
        return S3Wire.from_connection(Connection(settings))
    except Exception as error:
        raise explain(error, settings.bucket) from None


class ThreadRead:
    """A daemon thread: a publish that fails before it needs the answer does not wait for it."""

    def __init__(self, settings: Settings) -> None:
        self._answer: Future[tuple[RemoteState, int]] = Future()
        threading.Thread(target=self._read, args=(settings,), name="s3-publish-read", daemon=True).start()

    def _read(self, settings: Settings) -> None:
        try:
            self._answer.set_result(read_bucket(settings))
        except Exception as error:
            self._answer.set_exception(error)

    def result(self) -> tuple[RemoteState, int]:
        return self._answer.result()


class ChildRead:
    """A child process, started when a build begins; if the build fails, nobody waits for it."""

    def __init__(self, settings: Settings) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        encoded = base64.b64encode(pickle.dumps(settings)).decode()
        self._child = subprocess.Popen(
            [sys.executable, "-c", f"from {__name__} import answer_parent; answer_parent()", encoded],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
        )

    def result(self) -> tuple[RemoteState, int]:
        answer, problem = self._child.communicate()
        if self._child.returncode != 0:
            raise RuntimeError(f"reading the bucket failed in the child process:\n{problem.decode()}")
        kind, value, retries = pickle.loads(answer)
        if kind == "error":
            exit_code, message = value
            raise SettingsError(message) if exit_code == SettingsError.exit_code else PublishError(message)
        return value, retries

    def cancel(self) -> None:
        """For a read whose settings changed before the publish: stop it and reap it."""
        self._child.kill()
        self._child.communicate()


def answer_parent() -> None:
    """The child's side of ChildRead: settings in as an argument, the state (or the error) out on stdout."""
    settings = pickle.loads(base64.b64decode(sys.argv[1]))
    answer: tuple[str, object, int]
    try:
        state, retries = read_bucket(settings)
        answer = ("state", state, retries)
    except PublishError as error:
        answer = ("error", (error.exit_code, str(error)), 0)
    sys.stdout.buffer.write(pickle.dumps(answer))
