"""A seeded chaos run: many publishes of a randomly changing site, with faults, and the promises checked.

Each round changes the site at random (edit, add, remove or rename a page or
an asset, change a header rule, turn gzip on or off, add or drop a redirect), then publishes it from the command line
through the fault proxy, which answers a share of requests with a fault (500,
503, a reset, a stall past the timeout, an answer cut mid-body, a body
corrupted on the way (refused by its checksum), a lost answer
to the manifest write) or SIGKILLs the publisher at a random write. Then,
with no faults, it publishes again. After every publish it checks:

- the manifest is true: each record names an object that is there with the recorded ETag;
- no object the plugin did not publish is ever deleted (a few foreign ones sit in the bucket);
- no page in the bucket links to an asset that is not there;
- after the clean publish, the bucket equals the output, byte for byte and header for header.

The same seed gives the same site changes and the same faults, request for
request. `python -m devtools.chaos --rounds 250` is the long run the
benchmark reports; the test suite runs a short one.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from devtools import proxy as proxy_module
from devtools import seaweed

MANIFEST = ".s3-publish-manifest.json.gz"
FOREIGN = {"foreign/readme.txt": b"not the plugin's", "foreign/data.json": b"{}"}
CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
FAULTS: list[proxy_module.Fault] = [500, 503, (503, "SlowDown"), "reset", "stall", "cut", "corrupt"]
WRITES = ("PUT", "POST", "DELETE")
LINK = re.compile(r'(?:src|href)="([^"#?:]+)"')


@dataclass
class Stats:
    publishes: int = 0
    failed: int = 0  # publishes that exited non-zero (faults past every retry), besides kills
    faults: int = 0
    kills: int = 0
    violations: list[str] = field(default_factory=list)


class Site:
    """An output directory of pages linking to assets, changed at random."""

    def __init__(self, root: Path, chance: random.Random) -> None:
        self.root, self.chance = root, chance
        self.cache = "max-age=60"
        self.gzip = False
        self.redirects: dict[str, str] = {}  # old key -> a page of the site
        self.serial = 0
        root.mkdir(parents=True)
        for _ in range(6):
            self._add_asset()
        for _ in range(12):
            self._add_page()

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes() for p in self.root.rglob("*") if p.is_file()}

    def _names(self, suffix: str) -> list[str]:
        return sorted(name for name in self.files() if name.endswith(suffix))

    def _new_name(self, folder: str, suffix: str) -> str:
        self.serial += 1
        return f"{folder}/n{self.serial}{suffix}"

    def _write(self, name: str, data: bytes) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)

    def _add_asset(self) -> None:
        suffix = self.chance.choice([".css", ".js", ".png"])
        self._write(self._new_name("assets", suffix), self.chance.randbytes(self.chance.randint(20, 3000)))

    def _add_page(self) -> None:
        assets = self.chance.sample(self._names(".css") + self._names(".js") + self._names(".png"), 2)
        links = "".join(f'<img src="/{asset}">' for asset in assets)
        body = f"<html><body>{links}<p>{self.chance.random()}</p></body></html>".encode()
        self._write(self._new_name("posts", ".html"), body)

    def _linked(self) -> set[str]:
        return {link.lstrip("/") for page in self._names(".html") for link in LINK.findall(self._read(page))}

    def _read(self, name: str) -> str:
        return (self.root / name).read_text(errors="replace")

    def change(self) -> str:
        """One random change; what it was."""
        pages, unlinked = self._names(".html"), sorted(set(self.files()) - self._linked() - set(self._names(".html")))
        kind = self.chance.choice(["edit", "edit", "add", "add", "remove", "rename", "headers", "gzip", "redirect"])
        if kind == "edit":
            name = self.chance.choice(sorted(self.files()))
            self._write(name, (self.root / name).read_bytes() + b" ")
        elif kind == "add":
            self._add_asset() if self.chance.random() < 0.5 else self._add_page()
        elif kind == "remove" and len(pages) > 4:
            gone = self.chance.choice(unlinked or pages)
            (self.root / gone).unlink()
            self._follow(gone, None)
        elif kind == "rename":
            old, new = self.chance.choice(pages), self._new_name("posts", ".html")
            (self.root / old).rename(self.root / new)
            self._follow(old, new)
        elif kind == "headers":
            self.cache = self.chance.choice(["max-age=60", "max-age=300", "no-cache"])
        elif kind == "gzip":
            self.gzip = not self.gzip
        elif kind == "redirect" and self.redirects and self.chance.random() < 0.4:
            del self.redirects[self.chance.choice(sorted(self.redirects))]
        elif kind == "redirect":
            self.redirects[self._new_name("moved", ".html")] = "/" + self.chance.choice(pages)
        return kind

    def _follow(self, page: str, to: str | None) -> None:
        """Redirects to a page that moved follow it; to one that is gone, they go."""
        for old, target in list(self.redirects.items()):
            if target == "/" + page:
                if to is None:
                    del self.redirects[old]
                else:
                    self.redirects[old] = "/" + to

    def gzipped(self, name: str, data: bytes) -> bool:
        """Whether the object should be stored compressed: textual, 150 bytes or more, and smaller for it."""
        textual = Path(name).suffix in (".html", ".css", ".js")
        return self.gzip and textual and len(data) >= 150 and len(gzip.compress(data, 9, mtime=0)) < len(data)


@dataclass
class Faults:
    """The proxy's fault hook: a seeded share of requests get a fault, or the publisher a SIGKILL."""

    chance: random.Random
    rate: float = 0.0
    kill_at: int = 0  # the n-th write of this publish kills the publisher (0: none)
    pid: int = 0
    writes: int = 0
    injected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, pid: int) -> None:
        self.pid = pid

    def __call__(self, method: str, key: str) -> proxy_module.Fault | None:
        with self.lock:
            if method in WRITES:
                self.writes += 1
                if self.writes == self.kill_at:
                    os.kill(self.pid, signal.SIGKILL)
                    return "reset" if self.chance.random() < 0.5 else None
            if self.rate and self.chance.random() < self.rate:
                self.injected += 1
                if method == "PUT" and key.endswith(MANIFEST) and self.chance.random() < 0.5:
                    return "lost-answer"
                return self.chance.choice(FAULTS)
        return None


def client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="chaos",
        aws_secret_access_key="chaos",
        config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required"),
    )


def _settings(path: Path, bucket: str, endpoint_url: str, site: Site) -> None:
    values = {
        "S3_PUBLISH_BUCKET": bucket,
        "S3_PUBLISH_ENDPOINT_URL": endpoint_url,
        "S3_PUBLISH_WORKERS": 8,
        "S3_PUBLISH_TIMEOUT": 2,
        "S3_PUBLISH_MAX_DELETES": None,
        "S3_PUBLISH_HEADERS": [("*.css", {"Cache-Control": site.cache})],
        "S3_PUBLISH_GZIP": site.gzip,
        "S3_PUBLISH_REDIRECTS": site.redirects,
    }
    path.write_text("".join(f"{name} = {value!r}\n" for name, value in values.items()))


def _command(work: Path, site: Site, *extra: str) -> list[str]:
    return ["-m", "pelican_s3_publish", "-q", "-s", str(work / "conf.py"), "-o", str(site.root), *extra]


ENV = {"AWS_ACCESS_KEY_ID": "chaos", "AWS_SECRET_ACCESS_KEY": "chaos", "AWS_EC2_METADATA_DISABLED": "true"}

# How a publish is run: its `python` arguments, its environment, and who to tell its pid (to kill it).
Launch = Callable[[list[str], dict[str, str], Callable[[int], None]], subprocess.CompletedProcess[str]]


def new_interpreter(
    arguments: list[str], env: dict[str, str], started: Callable[[int], None]
) -> subprocess.CompletedProcess[str]:
    """`python` with these arguments, as a user's shell starts it."""
    process = subprocess.Popen(
        [sys.executable, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    started(process.pid)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _planned_writes(work: Path, site: Site, launch: Launch) -> int:
    """The writes a publish will make (its files, its deletes, the manifest twice): where a kill can fall."""
    done = launch(_command(work, site, "--dry-run", "--json"), os.environ | ENV, lambda pid: None)
    done.check_returncode()
    report = json.loads(done.stdout)
    return len(report["uploaded"]) + len(report["deleted"]) + 2


def _publish(work: Path, site: Site, faults: Faults, launch: Launch) -> int:
    done = launch(_command(work, site), os.environ | ENV, faults.started)
    if done.returncode not in (0, 1, -signal.SIGKILL) or "Traceback" in done.stderr:
        raise RuntimeError(f"publish exited {done.returncode}:\n{done.stderr}")
    return done.returncode


def _listing(s3: Any, bucket: str) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["ETag"].strip('"') for page in pages for item in page.get("Contents", [])}


def _check(s3: Any, bucket: str, where: str, stats: Stats) -> dict[str, str]:
    """The promises that hold after every publish, clean or not; the listing."""
    listed = _listing(s3, bucket)
    if MANIFEST in listed:
        lines = [
            json.loads(line)
            for line in gzip.decompress(s3.get_object(Bucket=bucket, Key=MANIFEST)["Body"].read()).splitlines()
        ]
        for relpath, _md5, _size, etag, *_ in (row for row in lines[1:] if isinstance(row, list)):
            if listed.get(relpath) != etag:
                stats.violations.append(
                    f"{where}: the manifest records {relpath} as {etag}, the bucket has {listed.get(relpath)}"
                )
    for key in FOREIGN:
        if key not in listed:
            stats.violations.append(f"{where}: {key}, not the plugin's, was deleted")
    for key in (k for k in listed if k.endswith(".html")):
        page = _decoded(s3, bucket, key, where, stats).decode(errors="replace")
        for link in LINK.findall(page):
            if link.lstrip("/") not in listed:
                stats.violations.append(f"{where}: {key} links to {link}, which is not in the bucket")
    return listed


def _decoded(s3: Any, bucket: str, key: str, where: str, stats: Stats) -> bytes:
    """The object's bytes as a browser gets them; one stored as gzip that is not is a violation."""
    answer = s3.get_object(Bucket=bucket, Key=key)
    body: bytes = answer["Body"].read()
    if answer.get("ContentEncoding") != "gzip":
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError):
        stats.violations.append(f"{where}: {key} is stored as gzip but its bytes are not")
        return b""


def _check_clean(s3: Any, bucket: str, site: Site, where: str, stats: Stats) -> None:
    """After a publish without faults: the bucket is the output, bytes and headers."""
    files = site.files()
    listed = {key: etag for key, etag in _listing(s3, bucket).items() if key != MANIFEST and key not in FOREIGN}
    if set(listed) != set(files) | set(site.redirects):
        differ = sorted(set(listed) ^ (set(files) | set(site.redirects)))
        stats.violations.append(f"{where}: keys differ from the output and its redirects: {differ[:5]}")
        return
    for old, target in site.redirects.items():
        page = _decoded(s3, bucket, old, where, stats)
        content_type = s3.head_object(Bucket=bucket, Key=old)["ContentType"]
        if f'url={target}"'.encode() not in page or not content_type.startswith("text/html"):
            stats.violations.append(f"{where}: {old} does not redirect to {target}")
    for name, data in files.items():
        head = s3.head_object(Bucket=bucket, Key=name)
        wanted_cache = site.cache if name.endswith(".css") else None
        encoding = "gzip" if site.gzipped(name, data) else None
        stored = _decoded(s3, bucket, name, where, stats) if encoding else None
        if stored != data and listed[name] != hashlib.md5(data).hexdigest():
            stats.violations.append(f"{where}: {name} holds other bytes than the output")
        if head.get("ContentEncoding") != encoding:
            stats.violations.append(
                f"{where}: {name} has Content-Encoding {head.get('ContentEncoding')}, not {encoding}"
            )
        if not head["ContentType"].startswith(CONTENT_TYPES[Path(name).suffix]):
            stats.violations.append(f"{where}: {name} has Content-Type {head['ContentType']}")
        if head.get("CacheControl") != wanted_cache:
            stats.violations.append(f"{where}: {name} has Cache-Control {head.get('CacheControl')}, not {wanted_cache}")


def run(
    endpoint_url: str,
    seed: int,
    rounds: int,
    kill_share: float = 0.2,
    log: Any = print,
    launch: Launch = new_interpreter,
) -> Stats:
    chance = random.Random(seed)
    stats = Stats()
    faults = Faults(random.Random(seed + 1))
    recorder = proxy_module.Proxy(endpoint_url, fault=faults, stall_s=3).start()
    s3 = client(endpoint_url)
    bucket = f"chaos-{seed}-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    for key, body in FOREIGN.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    try:
        with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
            work = Path(scratch)
            site = Site(work / "output", chance)
            for number in range(rounds):
                what = site.change()
                _settings(work / "conf.py", bucket, recorder.url, site)
                killing = chance.random() < kill_share
                faults.rate, faults.writes = (0.0 if killing else chance.choice([0.05, 0.1, 0.2])), 0
                faults.kill_at = chance.randint(1, _planned_writes(work, site, launch)) if killing else 0
                code = _publish(work, site, faults, launch)
                stats.publishes += 1
                stats.kills += code == -signal.SIGKILL
                stats.failed += code == 1
                time.sleep(0.2 if code == -signal.SIGKILL else 0)  # writes on the wire reach the server
                where = f"round {number} ({what}, {'killed' if code < 0 else f'exit {code}'})"
                _check(s3, bucket, where, stats)
                faults.rate, faults.kill_at = 0.0, 0
                if _publish(work, site, faults, launch) != 0:
                    stats.violations.append(f"round {number}: the clean publish failed")
                stats.publishes += 1
                _check(s3, bucket, f"round {number} clean", stats)
                _check_clean(s3, bucket, site, f"round {number} clean", stats)
                recorder.clear()
                log(f"{where}: {len(stats.violations)} violations so far")
        stats.faults = faults.injected
        return stats
    finally:
        recorder.stop()


@contextlib.contextmanager
def _server() -> Iterator[seaweed.SeaweedServer]:
    server = seaweed.start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--rounds", type=int, default=250, help="each round is two publishes")
    parser.add_argument("--kill-share", type=float, default=0.2, help="of the publishes, those SIGKILLed")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with _server() as server:
        stats = run(server.endpoint_url, args.seed, args.rounds, args.kill_share)
    figures = {
        "seed": args.seed,
        "publishes": stats.publishes,
        "failed": stats.failed,
        "faults_injected": stats.faults,
        "kills": stats.kills,
        "violations": len(stats.violations),
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    for violation in stats.violations:
        print("VIOLATION", violation)
    print(json.dumps(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if stats.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
