"""Measurements beyond the side-by-side table: the seed's sequential-vs-concurrent
comparison, the plugin's cost inside `pelican content`, and a 100,000-file no-op."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import sites
from bench.run import fresh, median, run_timed, s3, warm_up
from devtools import proxy as proxy_module
from devtools import seaweed

TIMED_BUILD = """
import sys, time
import pelican_s3_publish.plugin as plugin
original = plugin.on_finalized
def timed(sender):
    started = time.perf_counter()
    try:
        original(sender)
    finally:
        print("PLUGIN_SECONDS", time.perf_counter() - started, file=sys.stderr)
plugin.on_finalized = timed
from pelican import main
main(sys.argv[1:])
"""

IMPORT_COST = (
    "import time, pelican, pelican.plugins.signals; t = time.perf_counter(); import pelican_s3_publish; "
    "pelican_s3_publish.register(); print(time.perf_counter() - t)"
)


def _publish_cli(source: Path, site_root: Path, endpoint: str, bucket: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pelican_s3_publish", "-q", "-s", str(site_root / "pelicanconf.py"), "-o",
        str(source), "-e", f'S3_PUBLISH_BUCKET="{bucket}"', f'S3_PUBLISH_ENDPOINT_URL="{endpoint}"', *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    from bench.tools import Tool

    return Tool().env(None)  # type: ignore[arg-type]


def hashing(builds: sites.Builds, runs: int) -> dict[str, float]:
    from pelican_s3_publish.local import identify, scan

    timings: dict[str, float] = {}
    for workers in (1, 8):
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            identify(scan(builds.first, (), workers=workers), lambda found: None, workers)  # nothing on record
            samples.append(time.perf_counter() - started)
        timings[f"workers={workers}"] = median(samples)
    return timings


def uploads(builds: sites.Builds, server: seaweed.SeaweedServer, rtt_ms: int, work: Path) -> dict[str, float]:
    recorder = proxy_module.Proxy(server.endpoint_url, latency_s=rtt_ms / 1000).start()
    timings = {}
    try:
        for workers in (1, 32):
            bucket = f"seed-upload-{workers}"
            s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            argv = _publish_cli(builds.first, builds.root, recorder.url, bucket, f"S3_PUBLISH_WORKERS={workers}")
            wall, _, _, code = run_timed(argv, _env(), work / "seed.log")
            timings[f"workers={workers}"] = wall if code == 0 else float("nan")
    finally:
        recorder.stop()
    return timings


def in_pelican(builds: sites.Builds, server: seaweed.SeaweedServer, runs: int, work: Path) -> dict[str, float]:
    """What the plugin adds to a whole `pelican content` of the site: wall time against a build
    without the plugin, for a no-op publish and with publishing off; and the finalized handler alone."""
    bucket = "in-pelican"
    s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    command = ["content", "-s", "pelicanconf.py", "-o", str(work / "in-pelican-out"), "-q", "-e"]
    common = [
        f'S3_PUBLISH_BUCKET="{bucket}"', f'S3_PUBLISH_ENDPOINT_URL="{server.endpoint_url}"',
        "DELETE_OUTPUT_DIRECTORY=true",
    ]  # fmt: skip
    with_plugin = 'PLUGINS=["pelican_s3_publish"]'
    variants = {
        "without the plugin": [*common, "PLUGINS=[]"],
        "publishing off": [*common, with_plugin, "S3_PUBLISH_ENABLED=false"],
        "no-op publish": [*common, with_plugin],
    }
    walls: dict[str, list[float]] = {label: [] for label in variants}
    handler: list[float] = []
    rounds = 2 * runs - 1  # 16 s builds on a shared machine: more rounds than the tools get
    labels = list(variants)
    for run in range(rounds + 1):  # the first round fills the bucket and warms the caches
        for label in labels[run % len(labels) :] + labels[: run % len(labels)]:  # each variant first in turn
            os.sync()  # the previous build's 83 MiB of writeback is not this build's time
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", TIMED_BUILD, *command, *variants[label]],
                cwd=builds.root, env=_env(), capture_output=True, text=True, check=True,
            )  # fmt: skip
            if run == 0:
                continue
            walls[label].append(time.perf_counter() - started)
            if label == "no-op publish":
                handler += [float(line.split()[1]) for line in done.stderr.splitlines() if "PLUGIN_SECONDS" in line]

    def added(label: str) -> float:
        """Median of each round's difference: slow drifts of the machine cancel within a round."""
        return median([a - b for a, b in zip(walls[label], walls["without the plugin"], strict=True)])

    return {
        "build without the plugin (wall)": median(walls["without the plugin"]),
        "added: no-op publish": added("no-op publish"),
        "added: publishing off": added("publishing off"),
        "finalized handler alone, no-op publish": median(handler),
        "import and register, publishing off": median(
            [float(subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True, text=True).stdout)
             for _ in range(runs)]
        ),
    }  # fmt: skip


def scale(server: seaweed.SeaweedServer, counts: list[int], work: Path) -> list[dict[str, float]]:
    rows = []
    for count in counts:
        tree = work / f"flat-{count}"
        if not sites.tree_exists(tree):
            sites.flat_tree(tree, count)
        bucket = f"scale-{count}"
        s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        argv = _publish_cli(tree, work / "site", server.endpoint_url, bucket)
        first = run_timed(argv, _env(), work / "scale.log")
        noop = run_timed(argv, _env(), work / "scale.log")
        rows.append(
            {"files": count, "first_s": first[0], "noop_s": noop[0], "noop_cpu_s": noop[1], "noop_rss_mb": noop[2]}
        )
        print(f"  scale {count} files: first {first[0]:.1f} s, no-op {noop[0]:.2f} s, {noop[2]:.0f} MB", flush=True)
    return rows


def measure(args: argparse.Namespace, builds: sites.Builds, work: Path) -> dict[str, object]:
    with seaweed.running(fresh(work / "seaweedfs-extra")) as server:
        warm_up(server)
        found: dict[str, object] = {
            "hashing": hashing(builds, args.runs),
            "uploads": uploads(builds, server, args.rtt_ms, work),
            "in_pelican": in_pelican(builds, server, args.runs, work),
            "scale": scale(server, args.scale_files, work),
        }
    (work / "extra.json").write_text(json.dumps(found, indent=2))
    return found
