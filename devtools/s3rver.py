"""Run a throwaway s3rver (npm, Node) on a free loopback port: a third S3 implementation, independent of
SeaweedFS (Go) and moto (Python).

`scripts/test.sh` installs it from devtools/s3rver/package-lock.json. It
knows one key pair, S3RVER/S3RVER, and is reached path-style.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.seaweed import answers, free_ports

HERE = Path(__file__).resolve().parent / "s3rver"
KEY_ID = SECRET = "S3RVER"
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3rver:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start(data_dir: Path | None = None) -> S3rver:
    program = HERE / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    node = shutil.which("node")
    if node is None or not program.exists():
        raise RuntimeError(f"s3rver is not installed: npm ci --prefix {HERE}")
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="s3rver-"))
    port = free_ports(1)[0]
    command = [node, str(program), "-d", str(data_dir), "-a", "127.0.0.1", "-p", str(port), "--no-vhost-buckets", "-s"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    server = S3rver(f"http://127.0.0.1:{port}", process, data_dir)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not answers(server.endpoint_url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"s3rver did not start on {server.endpoint_url}")
        time.sleep(0.1)
    return server
