"""The floor under a no-op publish: the work no publish of a tree can skip, each part timed alone.

- The bucket read, exactly as a publish reads it (`read`): the helper process
  forked, botocore's resolution, the manifest, the listing, the parent's
  decoding of them; no walk, no plan. The server's CPU answering it is taken
  from /proc.
- Every file walked, read and hashed with SHA-256 in one thread, the plainest
  loop there is (`hash`); its CPU counted after the interpreter has started,
  which the read has already paid for.

On this machine the server shares the two cores with the publish, so no no-op
can take less than the largest of: the read's wall, the hashing's, and all of
their CPU (ours and the server's) spread over the cores. That bound, set
beside a target, says whether any change to the plugin's own code could meet
it (bench/NOTES.md, nineteenth pass).

    python -m bench.floor read SETTINGS OUTPUT BUCKET ENDPOINT
    python -m bench.floor hash OUTPUT RESULT_FILE
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the timed programs import only what a publish would
    from devtools import seaweed

READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Floor:
    """Medians over runs, seconds (peak RSS: the highest); `server_cpu_s` is the server's while ours or the
    read ran."""

    runs: int
    noop_s: float
    noop_cpu_s: float
    noop_rss_mb: float
    noop_server_cpu_s: float
    read_s: float
    read_cpu_s: float
    read_server_cpu_s: float
    hash_s: float
    hash_cpu_s: float
    cores: int

    @property
    def bound_s(self) -> float:
        spread = (self.read_cpu_s + self.read_server_cpu_s + self.hash_cpu_s) / self.cores
        return max(self.read_s, self.hash_s, spread)

    def to_json(self) -> dict[str, float]:
        return asdict(self) | {"bound_s": self.bound_s}


def _read(settings_path: str, output: str, bucket: str, endpoint: str) -> None:
    from pelican_s3_publish.cli import read_settings
    from pelican_s3_publish.early_read import ChildRead
    from pelican_s3_publish.settings import from_pelican

    overrides = {"OUTPUT_PATH": output, "S3_PUBLISH_BUCKET": bucket, "S3_PUBLISH_ENDPOINT_URL": endpoint}
    remote = ChildRead(from_pelican(read_settings(settings_path, overrides)), fork=True)
    remote.manifest()
    _, state = remote.result()
    remote.close()
    if not state.listing:
        raise SystemExit(f"{bucket} lists nothing: publish {output} to it first")


def _hash(output: str, result: str) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    buffer = bytearray(READ_BLOCK)
    view = memoryview(buffer)
    folders, files = [output], 0
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    folders.append(entry.path)
                    continue
                handle = os.open(entry.path, os.O_RDONLY)
                got = os.readv(handle, [buffer])
                digest = hashlib.sha256(view[:got])
                while got == READ_BLOCK:
                    got = os.readv(handle, [buffer])
                    digest.update(view[:got])
                os.close(handle)
                digest.hexdigest()
                files += 1
    Path(result).write_text(f"{time.perf_counter() - started} {time.process_time() - cpu} {files}\n")


def _server_cpu(server: seaweed.SeaweedServer) -> float:
    """The server's CPU seconds so far (user and system), from /proc."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """(wall, CPU, peak RSS) of one run; a failed run fails the measure."""
    from bench.run import run_timed

    wall, cpu, rss, code = run_timed(argv, env, log)
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {code}: see {log}")
    return wall, cpu, rss


def _with_server(server: seaweed.SeaweedServer, argv: list[str], env: dict[str, str], log: Path) -> tuple[float, ...]:
    """(wall, CPU, peak RSS, the server's CPU meanwhile) of one run."""
    before = _server_cpu(server)
    return (*_run(argv, env, log), _server_cpu(server) - before)


def measure(
    noop: list[str],
    read: list[str],
    tree: Path,
    server: seaweed.SeaweedServer,
    env: dict[str, str],
    work: Path,
    runs: int,
    rewritten_from: Path | None = None,
) -> Floor:
    """Our no-op, the read alone and the hashing alone, in turn, `runs` times; with `rewritten_from`,
    `tree` is rewritten with the same bytes before each no-op, as the side-by-side runs do."""
    from bench import sites
    from bench.run import median

    log = work / "floor.log"
    hashed = work / "floor.hash"
    noops, reads, hashes = [], [], []
    for _ in range(runs):
        if rewritten_from is not None:
            sites.rewrite(rewritten_from, tree)
        noops.append(_with_server(server, noop, env, log))
        reads.append(_with_server(server, read, env, log))
        _run([sys.executable, "-m", "bench.floor", "hash", str(tree), str(hashed)], env, log)
        wall, cpu, _ = hashed.read_text().split()
        hashes.append((float(wall), float(cpu)))
    return Floor(
        runs=runs,
        noop_s=median([run[0] for run in noops]),
        noop_cpu_s=median([run[1] for run in noops]),
        noop_rss_mb=max(run[2] for run in noops),
        noop_server_cpu_s=median([run[3] for run in noops]),
        read_s=median([run[0] for run in reads]),
        read_cpu_s=median([run[1] for run in reads]),
        read_server_cpu_s=median([run[3] for run in reads]),
        hash_s=median([run[0] for run in hashes]),
        hash_cpu_s=median([run[1] for run in hashes]),
        cores=os.cpu_count() or 1,
    )


def read_command(settings: Path, tree: Path, bucket: str, endpoint: str) -> list[str]:
    return [sys.executable, "-m", "bench.floor", "read", str(settings), str(tree), bucket, endpoint]


if __name__ == "__main__":
    if sys.argv[1] == "read":
        _read(*sys.argv[2:6])
    else:
        _hash(*sys.argv[2:4])
