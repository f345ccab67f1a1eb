"""`python -m pelican` and `python -m pelican_s3_publish` runs forked from a process
that has imported their libraries once.

A build of a test's small site is 0.45 s of CPU as a new interpreter, 0.3 s of it
importing Pelican, docutils and Jinja, and each publish imports botocore again
(0.16 s) in its bucket-reading child; the suite starts about 550 such processes
on two cores. Here each run is still a process of its own, running the module as
`-m` does (runpy) with its own arguments, folder, environment and standard
streams, forked from a server that has imported Pelican and the S3 libraries but
nothing of this package: a run loads this package and makes its sessions,
clients and stores afresh, as a new process would. What a new interpreter alone
would show (which libraries a no-op imports) is tested with one
(tests/test_bucket.py). The exit code is the process's own, a signal's negative
as subprocess gives it.

Started as a script by `ForkedRuns`, one server per test process. The server
forks a handler per request, which forks the run and relays its output and exit
status, so runs may overlap (a test's concurrent publishers).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

READY = b"ready\n"


def _serve(path: str) -> dict[str, object]:
    """The server's loop; returns only in a forked run, with the request it is to run."""
    # What every run would import: once, before any fork. None of them starts a thread on import.
    import boto3.s3.transfer  # noqa: F401
    import botocore.session  # noqa: F401
    import obstore  # noqa: F401

    import pelican  # noqa: F401

    gc.freeze()  # the collector leaves what was imported alone: its pages stay shared with every fork
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    while True:
        connection, _ = listener.accept()
        _reap()
        if os.fork() == 0:
            listener.close()
            return _handle(connection)
        connection.close()


def _reap() -> None:
    """Handlers that have ended: the server waits for none of them."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _handle(connection: socket.socket) -> dict[str, object]:
    """A handler: fork the run, tell its pid, relay its output and exit status; returns only in the run."""
    request = json.loads(connection.makefile("rb").readline())
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe() if not request["merged"] else (None, out_write)
    run = os.fork()
    if run == 0:
        connection.close()
        for reading in (out_read, err_read):
            if reading is not None:
                os.close(reading)
        _become_run(request, out_write, err_write)
        return request
    for writing in {out_write, err_write}:
        os.close(writing)
    connection.sendall(f"{run}\n".encode())
    output = _read_to_the_end([out_read] if err_read is None else [out_read, err_read])
    code = os.waitstatus_to_exitcode(os.waitpid(run, 0)[1])
    stderr = output[err_read] if err_read is not None else ""  # merged: all of it is in stdout
    answer = {"returncode": code, "stdout": output[out_read], "stderr": stderr}
    connection.sendall(json.dumps(answer).encode())
    connection.close()
    os._exit(0)


def _read_to_the_end(pipes: list[int]) -> dict[int, str]:
    """Each pipe until the run and whatever it started have let go of it, as subprocess.run reads them."""
    read: dict[int, bytearray] = {pipe: bytearray() for pipe in pipes}
    with selectors.DefaultSelector() as waiting:
        for pipe in pipes:
            waiting.register(pipe, selectors.EVENT_READ)
        while waiting.get_map():
            for key, _ in waiting.select():
                chunk = os.read(key.fd, 65536)
                if chunk:
                    read[key.fd] += chunk
                else:
                    waiting.unregister(key.fd)
                    os.close(key.fd)
    return {pipe: bytes(data).decode(errors="replace") for pipe, data in read.items()}


def _become_run(request: dict[str, object], stdout: int, stderr: int) -> None:
    """What a new process would start with: its folder, environment and standard streams."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for descriptor in {null, stdout, stderr}:
        os.close(descriptor)
    os.chdir(str(request["cwd"]))
    environment = request["env"]
    assert isinstance(environment, dict)
    os.environ.clear()
    os.environ.update(environment)
    sys.path[0] = os.getcwd()  # as `-m` puts it: pelicanconf.py may import a module beside it
    from pelican.log import console

    console.__init__()  # type: ignore[misc]  # rich reads COLUMNS, TERM and the stream at creation


def _text(output: str) -> str:
    """Newlines as text mode gives them."""
    return output.replace("\r\n", "\n").replace("\r", "\n")


class ForkedRuns:
    """The client: a server started on first use; `run` answers as `subprocess.run` of `python -m module`."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="forked-runs-"))
        self._path = str(self._folder / "socket")

    def _started(self) -> str:
        if self._server is None:
            self._server = subprocess.Popen(
                [sys.executable, __file__, self._path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
            )
            assert self._server.stdout is not None
            if self._server.stdout.readline() != READY:
                raise RuntimeError(f"the forking server did not start: exit code {self._server.wait()}")
        return self._path

    def run(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float,
        merged: bool = False,
        started: Callable[[int], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`command` is `-m`, a module and its arguments; `merged` puts standard error into standard output;
        `started` is told the run's pid."""
        if command[0] != "-m":
            raise ValueError(f"only `-m module` runs are forked, not {command}")
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(self._started())
            request = {"module": command[1], "argv": command[2:], "cwd": str(cwd), "env": env, "merged": merged}
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = connection.makefile("rb")
            connection.settimeout(timeout)
            pid = int(answer.readline())
            if started is not None:
                started(pid)
            try:
                connection.settimeout(max(0.1, deadline - time.monotonic()))
                result = json.loads(answer.read())
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["python", *command], timeout) from None
        stdout, stderr = _text(result["stdout"]), _text(result["stderr"])
        return subprocess.CompletedProcess(["python", *command], result["returncode"], stdout, stderr)

    def stop(self) -> None:
        if self._server is not None:
            self._server.kill()
            self._server.wait()
        for leftover in self._folder.iterdir():
            leftover.unlink()
        self._folder.rmdir()


def _run_module(module: str) -> NoReturn:
    """The module as `-m` runs it, then the interpreter's exit up to where it would tear down every
    module: in a fork that touches, and so copies, every page it shares with the server (45 ms a run)."""
    code: int | str | None = 0
    interrupted = False
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter does first: wait for threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if interrupted:  # as Python exits on an uncaught KeyboardInterrupt: killed by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code or 0)


if __name__ == "__main__":
    _run = _serve(sys.argv[1])
    sys.argv = [str(_run["module"]), *_run["argv"]]  # type: ignore[misc]
    _run_module(str(_run["module"]))
