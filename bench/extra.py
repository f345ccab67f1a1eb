"""Measurements beyond the side-by-side table: the seed's sequential-vs-concurrent
comparison, the plugin's cost inside `pelican content`, a 100,000-file no-op, and
the floor under the largest no-ops (`bench.floor`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import floor, sites
from bench.run import fresh, median, run_timed, s3, warm_up
from devtools import chaos, seaweed
from devtools import proxy as proxy_module

WITHOUT = "without the plugin"
WITHOUT_AGAIN = "the same build without the plugin"
OFF = "publishing off"
NOOP = "no-op publish"
CHAOS_SEED = 20261126
SCALE_NOOPS = 3

TIMED_BUILD = """
import json, sys, time
from pelican import main
spent = {}
if sys.argv[1] == "with-plugin":
    started = time.perf_counter()
    import pelican_s3_publish, pelican_s3_publish.plugin as plugin  # Pelican finds them imported
    spent["import"] = time.perf_counter() - started
    def timed(name, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
        return run
    pelican_s3_publish.register = timed("register", pelican_s3_publish.register)
    plugin.on_initialized = timed("initialized", plugin.on_initialized)
    plugin.on_written = timed("written", plugin.on_written)  # once per page and feed: the sum
    plugin.on_finalized = timed("finalized", plugin.on_finalized)
try:
    main(sys.argv[2:])
finally:
    print("PLUGIN_SECONDS", json.dumps(spent), sep="\t", file=sys.stderr)
"""


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
            identify(scan(builds.first, ()), lambda found: None, workers)  # nothing on record: every MD5 computed
            samples.append(time.perf_counter() - started)
        timings[f"workers={workers}"] = median(samples)
    return timings


def uploads(builds: sites.Builds, server: seaweed.SeaweedServer, rtt_ms: int, work: Path) -> dict[str, float]:
    recorder = proxy_module.Proxy(server.endpoint_url, latency_s=rtt_ms / 1000).start()
    timings = {}
    try:
        for workers in (1, 64):
            bucket = f"seed-upload-{workers}"
            s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            argv = _publish_cli(builds.first, builds.root, recorder.url, bucket, f"S3_PUBLISH_WORKERS={workers}")
            wall, _, _, code = run_timed(argv, _env(), work / "seed.log")
            timings[f"workers={workers}"] = wall if code == 0 else float("nan")
    finally:
        recorder.stop()
    return timings


def _in_memory(work: Path, name: str) -> Path:
    """A folder on a tmpfs when there is one, else in `work`: what a measure reads or writes there stays
    in memory. Writing a build's 90 MB to disk varied its system time from 0.7 to 1.8 s, which drowned
    what the plugin adds; and on this machine the kernel pages out files left a minute unread (DAMON),
    so a no-op right after a first upload of 77 s read most of its 100,000 files from disk again."""
    shm = Path("/dev/shm")
    return shm / f"pelican-s3-publish-bench-{os.getpid()}-{name}" if shm.is_dir() else work / name


def _spent_in_plugin(stderr: str) -> dict[str, float]:
    """Seconds in each part of the plugin's code."""
    line = next(line for line in stderr.splitlines() if line.startswith("PLUGIN_SECONDS"))
    spent: dict[str, float] = json.loads(line.split("\t")[1])
    return spent


def in_pelican(builds: sites.Builds, server: seaweed.SeaweedServer, rounds: int, work: Path) -> dict[str, list[float]]:
    """What the plugin adds to a whole `pelican content` of the site, two ways.

    Whole builds against a build without the plugin, with a second build
    without it as the control: what two identical builds differ by is the
    resolution. And the time the build spends in the plugin's own code
    (import, register, its handlers: the build, each page written, the end), timed inside the build.
    Samples per measure, one per round.
    """
    bucket = "in-pelican"
    s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    output = _in_memory(work, "in-pelican-out")
    command = ["content", "-s", "pelicanconf.py", "-o", str(output), "-q", "-e"]
    common = [
        f'S3_PUBLISH_BUCKET="{bucket}"', f'S3_PUBLISH_ENDPOINT_URL="{server.endpoint_url}"',
        "DELETE_OUTPUT_DIRECTORY=true",
    ]  # fmt: skip
    with_plugin = ["with-plugin", *command, *common, 'PLUGINS=["pelican_s3_publish"]']
    without = ["without-plugin", *command, *common, "PLUGINS=[]"]
    variants = {
        WITHOUT: without,
        WITHOUT_AGAIN: without,
        OFF: [*with_plugin, "S3_PUBLISH_ENABLED=false"],
        NOOP: with_plugin,
    }
    walls: dict[str, list[float]] = {label: [] for label in variants}
    spent: dict[str, list[dict[str, float]]] = {OFF: [], NOOP: []}
    labels = list(variants)
    try:
        for run in range(rounds + 1):  # the first round warms up
            for label in labels[run % len(labels) :] + labels[: run % len(labels)]:  # each variant first in turn
                os.sync()  # the previous build's writeback is not this build's time
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", TIMED_BUILD, *variants[label]],
                    cwd=builds.root, env=_env(), capture_output=True, text=True, check=True,
                )  # fmt: skip
                if run > 0:
                    walls[label].append(time.perf_counter() - started)
                    if label in spent:
                        spent[label].append(_spent_in_plugin(done.stderr))
    finally:
        shutil.rmtree(output, ignore_errors=True)

    def added(label: str) -> list[float]:
        """Each round's difference: slow drifts of the machine cancel within a round."""
        return [a - b for a, b in zip(walls[label], walls[WITHOUT], strict=True)]

    return {
        "build without the plugin (wall)": walls[WITHOUT],
        f"whole build, added: {NOOP}": added(NOOP),
        f"whole build, added: {OFF}": added(OFF),
        f"whole build, added: {WITHOUT_AGAIN} (the resolution)": added(WITHOUT_AGAIN),
        f"in the plugin's code: {NOOP}": [sum(s.values()) for s in spent[NOOP]],
        f"in the plugin's code: {OFF}": [sum(s.values()) for s in spent[OFF]],
        f"finalized handler alone, {NOOP}": [s["finalized"] for s in spent[NOOP]],
        f"import and register, {OFF}": [s["import"] + s["register"] for s in spent[OFF]],
    }


def scale(server: seaweed.SeaweedServer, counts: list[int], work: Path) -> list[dict[str, float]]:
    """A first upload of each generated output, then `SCALE_NOOPS` no-ops of it, each beside the floor's
    parts (`bench.floor`): the median time and CPU, the highest peak RSS."""
    rows = []
    for count in counts:
        tree = sites.flat_tree(fresh(_in_memory(work, f"flat-{count}")), count)
        try:
            first, measured = _first_then_floor(server, tree, f"scale-{count}", work, SCALE_NOOPS)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
        rows.append({"files": count, "first_s": first, **measured.to_json()})
        print(f"  scale {count} files: first {first:.1f} s, no-op {measured.noop_s:.2f} s, "
              f"{measured.noop_rss_mb:.0f} MB, floor {measured.bound_s:.2f} s", flush=True)  # fmt: skip
    return rows


def generated_floor(server: seaweed.SeaweedServer, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """The side-by-side's generated output, published once, then our no-op after rewriting every file beside
    the floor's parts (`bench.floor`), `args.runs` times."""
    source = sites.generated_tree(fresh(_in_memory(work, "generated")), args.large_files, args.large_mb)
    tree = _in_memory(work, "generated-rewritten")
    try:
        _, measured = _first_then_floor(server, tree, "floor-generated", work, args.runs, source)
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
    print(f"  generated output: no-op {measured.noop_s:.2f} s, floor {measured.bound_s:.2f} s", flush=True)
    return {"files": args.large_files, **measured.to_json()}


def _first_then_floor(
    server: seaweed.SeaweedServer, tree: Path, bucket: str, work: Path, runs: int, source: Path | None = None
) -> tuple[float, floor.Floor]:
    """The first upload's seconds (of `source` rewritten, if given), then `floor.measure`."""
    s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    if source is not None:
        sites.rewrite(source, tree)
    argv = _publish_cli(tree, work / "site", server.endpoint_url, bucket)
    first = run_timed(argv, _env(), work / "scale.log")[0]
    read = floor.read_command(work / "site" / "pelicanconf.py", tree, bucket, server.endpoint_url)
    return first, floor.measure(argv, read, tree, server, _env(), work, runs, source)


def chaos_run(server: seaweed.SeaweedServer, rounds: int) -> dict[str, object]:
    """The long seeded chaos run (devtools/chaos.py): its figures, and any promise it saw broken."""
    started = time.monotonic()
    stats = chaos.run(server.endpoint_url, CHAOS_SEED, rounds, log=lambda line: None)
    print(f"  chaos: {stats.publishes} publishes, {len(stats.violations)} violations", flush=True)
    return {
        "seed": CHAOS_SEED, "publishes": stats.publishes, "failed": stats.failed, "faults": stats.faults,
        "kills": stats.kills, "violations": stats.violations, "minutes": (time.monotonic() - started) / 60,
    }  # fmt: skip


def measure(args: argparse.Namespace, builds: sites.Builds, work: Path) -> dict[str, object]:
    with seaweed.running(fresh(work / "seaweedfs-extra")) as server:
        warm_up(server)
        found: dict[str, object] = {
            "hashing": hashing(builds, args.runs),
            "uploads": uploads(builds, server, args.rtt_ms, work),
            "in_pelican": in_pelican(builds, server, args.pelican_rounds, work),
            "scale": scale(server, args.scale_files, work),
            "generated_floor": generated_floor(server, args, work),
            "chaos": chaos_run(server, args.chaos_rounds),
        }
    (work / "extra.json").write_text(json.dumps(found, indent=2))
    return found
