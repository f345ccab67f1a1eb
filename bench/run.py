"""Benchmark: pelican-s3-publish against aws s3 sync, s3cmd, rclone and hugo deploy.

    python -m bench.run                  # the full benchmark, writes bench/RESULTS.md
    python -m bench.run --quick          # a tiny site, one run: checks that it all works

Each tool runs as a whole process, several runs, the tools taking turns run by
run; wall time, CPU time and peak RSS are measured by a small launcher
(bench/launch.py, so the harness's own memory is not counted). Timed runs talk
to SeaweedFS directly on loopback, or through devtools/latency.py, a TCP proxy
that only holds bytes for the round trip. Objects written and bytes sent are
counted in a separate, untimed pass through the recording proxy
(devtools/proxy.py): a Python HTTP server on the same two cores would tax
every tool's timings, and not equally.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import sites, tools
from devtools import latency, seaweed
from devtools import proxy as proxy_module

HERE = Path(__file__).resolve().parent
SITE_SCENARIOS = [
    "first upload",
    "no-op",
    "no-op after full rebuild",
    "one article edited",
    "10% removed",
    "header-only",
]
LARGE = "no-op after rewriting every file, generated output"
SCENARIOS = [*SITE_SCENARIOS, LARGE]


COUNTING = "through the recording proxy (counting pass)"


@dataclass(frozen=True)
class Measure:
    wall_s: float
    cpu_s: float
    rss_mb: float
    ok: bool


@dataclass
class Results:
    # (tool, scenario, network) -> one Measure per run, in run order: run i of every tool is one round.
    measures: dict[tuple[str, str, str], list[Measure]] = field(default_factory=lambda: defaultdict(list))
    # (tool, scenario) -> (objects written, bytes sent), from the counting pass.
    counts: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_timed(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit code) of one run, as bench/launch.py measured it."""
    result = log.with_suffix(".measure")
    with log.open("ab") as out:
        launcher = [sys.executable, "-S", str(HERE / "launch.py"), str(result), *argv]
        subprocess.run(launcher, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL, check=False)
    wall, cpu, rss, code = result.read_text().split()
    return float(wall), float(cpu), float(rss), int(code)


def written(recorder: proxy_module.Proxy) -> tuple[int, int]:
    """Site objects written (PUT, copy, completed multipart) and body bytes sent."""
    objects, sent = 0, 0
    for request in recorder.writes():
        sent += request.body_bytes
        if request.key.endswith(".s3-publish-manifest.json.gz") or request.method == "DELETE" or request.is_probe:
            continue  # the manifest, deletes, and the probe asking a new bucket's store what it does
        is_part = "partNumber=" in request.query
        is_complete = request.method == "POST" and "uploadId=" in request.query
        if (request.method == "PUT" and not is_part) or is_complete:
            objects += 1
    return objects, sent


def bucket_matches(client: object, bucket: str, source: Path) -> bool:
    local = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    paginator = client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
    remote = {
        item["Key"]
        for page in paginator.paginate(Bucket=bucket)
        for item in page.get("Contents", [])
        if not item["Key"].endswith(".s3-publish-manifest.json.gz")
    }
    return local == remote


def s3(endpoint: str) -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
        aws_secret_access_key="bench", config=Config(s3={"addressing_style": "path"}, max_pool_connections=64),
    )  # fmt: skip


def one_tool_run(
    tool: tools.Tool, network: str, endpoint: str, run: int, builds: sites.Builds, server: seaweed.SeaweedServer,
    recorder: proxy_module.Proxy | None, work: Path, tools_venv: Path, results: Results,
) -> None:  # fmt: skip
    """Every scenario once for one tool, into a new bucket. With `recorder`, the counting pass."""
    slug = "".join(ch for ch in tool.name.lower() if ch.isalnum())[:12]
    bucket = f"{slug}-{network.replace(' ', '')[:12]}-{run}".lower()
    client = s3(server.endpoint_url)
    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    ctx = tools.Context(recorder.url if recorder else endpoint, bucket, work, tools_venv, builds.root)
    env = tool.env(ctx)
    trees = work / "trees"
    steps = [
        ("first upload", lambda: sites.rewrite(builds.first, trees / "a"), tool.sync),
        ("no-op", lambda: trees / "a", tool.sync),
        ("no-op after full rebuild", lambda: sites.rewrite(builds.first, trees / "b"), tool.sync),
        ("one article edited", lambda: sites.rewrite(builds.edited, trees / "c"), tool.sync),
        ("10% removed", lambda: sites.rewrite(builds.removed, trees / "d"), tool.sync),
        ("header-only", lambda: trees / "d", tool.headers),
    ]
    for scenario, prepare, command in steps:
        source = prepare()
        if recorder is not None:
            recorder.clear()
        wall, cpu, rss, code = run_timed(command(ctx, source), env, work / f"{slug}.log")
        ok = code == 0 and bucket_matches(client, bucket, source)
        measure = Measure(wall, cpu, rss, ok)
        if recorder is not None:
            results.counts[(tool.name, scenario)] = written(recorder)
            results.measures[(tool.name, scenario, COUNTING)].append(measure)
        else:
            results.measures[(tool.name, scenario, network)].append(measure)
        print(f"  {tool.name:22} {network:9} {scenario:26} {wall:7.2f} s  ok={ok}", flush=True)
        if code != 0:
            results.notes.append(f"{tool.name}, {scenario}, {network}: exit code {code} (see {slug}.log)")
            return


def large_run(
    tool: tools.Tool, network: str, endpoint: str, tree: Path, server: seaweed.SeaweedServer, work: Path,
    tools_venv: Path, builds: sites.Builds, results: Results,
) -> None:  # fmt: skip
    """One timed no-op of a large generated output, every file rewritten with the same bytes; the tool's
    bucket was filled by its own first upload (`seed_large`)."""
    slug = "".join(ch for ch in tool.name.lower() if ch.isalnum())[:12]
    ctx = tools.Context(endpoint, _large_bucket(tool, network), work, tools_venv, builds.root)
    source = sites.rewrite(tree, work / "trees" / "large")
    wall, cpu, rss, code = run_timed(tool.sync(ctx, source), tool.env(ctx), work / f"{slug}.log")
    ok = code == 0 and bucket_matches(s3(server.endpoint_url), ctx.bucket, source)
    results.measures[(tool.name, LARGE, network)].append(Measure(wall, cpu, rss, ok))
    print(f"  {tool.name:22} {network:9} {LARGE[:26]:26} {wall:7.2f} s  ok={ok}", flush=True)


def _large_bucket(tool: tools.Tool, network: str) -> str:
    slug = "".join(ch for ch in tool.name.lower() if ch.isalnum())[:12]
    return f"large-{slug}-{network.replace(' ', '')[:12]}".lower()


def seed_large(
    tool: tools.Tool, network: str, tree: Path, server: seaweed.SeaweedServer, work: Path, tools_venv: Path,
    builds: sites.Builds,
) -> None:  # fmt: skip
    """The tool's own first upload of the large output, untimed: the scenario is the no-op after it."""
    bucket = _large_bucket(tool, network)
    s3(server.endpoint_url).create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    ctx = tools.Context(server.endpoint_url, bucket, work, tools_venv, builds.root)
    run_timed(tool.sync(ctx, tree), tool.env(ctx), work / "seed.log")


def warm_up(server: seaweed.SeaweedServer) -> None:
    """A new SeaweedFS grows its first volumes on the first writes: not part of any tool's time."""
    client = s3(server.endpoint_url)
    client.create_bucket(Bucket="warm-up")  # type: ignore[attr-defined]
    for number in range(50):
        client.put_object(Bucket="warm-up", Key=f"k{number}", Body=b"x" * 1000)  # type: ignore[attr-defined]


def compare(args: argparse.Namespace, builds: sites.Builds, work: Path, results: Results) -> None:
    tools_venv = work / "tools-venv"
    chosen = [t for t in tools.ALL if t.name in args.tools] if args.tools else tools.ALL
    over_rtt = [t for t in chosen if not args.rtt_tools or t.name in args.rtt_tools]
    tools.install(tools_venv, chosen)
    with seaweed.running(fresh(work / "seaweedfs")) as server:
        warm_up(server)
        recorder = proxy_module.Proxy(server.endpoint_url).start()
        try:
            for tool in chosen:
                one_tool_run(tool, "count", "", 0, builds, server, recorder, work, tools_venv, results)
        finally:
            recorder.stop()
        rtt = f"{args.rtt_ms} ms RTT"
        large = work / f"generated-{args.large_files}-{args.large_mb}"
        if not sites.tree_exists(large):
            sites.generated_tree(large, args.large_files, args.large_mb)
        with latency.running(server.endpoint_url, args.rtt_ms / 1000) as delayed:
            for network, endpoint, group in (("loopback", server.endpoint_url, chosen), (rtt, delayed.url, over_rtt)):
                for tool in group:
                    seed_large(tool, network, large, server, work, tools_venv, builds)
                for run in range(args.runs):
                    for tool in group[run % len(group) :] + group[: run % len(group)]:
                        one_tool_run(tool, network, endpoint, run, builds, server, None, work, tools_venv, results)
                        large_run(tool, network, endpoint, large, server, work, tools_venv, builds, results)
        versions = {t.name: t.version(tools.Context("", "", work, tools_venv, builds.root)) for t in chosen}
    results.notes.append("versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()))
    if len(over_rtt) < len(chosen):
        left = ", ".join(t.name for t in chosen if t not in over_rtt)
        results.notes.append(f"at {rtt} only {', '.join(t.name for t in over_rtt)} ran (--rtt-tools); not {left}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--big-mb", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rtt-ms", type=int, default=30)
    parser.add_argument("--scale-files", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--large-files", type=int, default=30_000, help="files of the generated output compared")
    parser.add_argument("--large-mb", type=int, default=500, help="its size")
    parser.add_argument("--tools", nargs="*", help="tool names to run (default: all)")
    parser.add_argument("--rtt-tools", nargs="*", help="of those, the ones to run at the round trip too (default: all)")
    parser.add_argument("--pelican-rounds", type=int, default=5, help="rounds of whole builds for the in-Pelican rows")
    parser.add_argument("--chaos-rounds", type=int, default=250, help="rounds of the chaos run, two publishes each")
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="tiny site, one run, no scale test")
    args = parser.parse_args(argv)
    if args.quick:
        args.articles, args.big_mb, args.runs, args.scale_files, args.rtt_ms = 20, 9, 1, [], 5
        args.large_files, args.large_mb = 300, 3
        args.chaos_rounds, args.pelican_rounds = 3, 1
    from bench import extra, report

    args.work.mkdir(parents=True, exist_ok=True)
    compile_as_installed()
    print(f"building sites ({args.articles} articles) in {args.work}", flush=True)
    builds = sites.make_builds(args.work / "site", args.articles, args.big_mb)
    results = Results()
    compare(args, builds, args.work, results)
    extras = extra.measure(args, builds, args.work)
    report.write(args, builds, results, extras, machine())
    print(f"wrote {args.out}")
    return _exit_code(results, args.out)


def compile_as_installed() -> None:
    """Our package's bytecode written beside it, as `pip install` writes it for a wheel.

    The editable install of a checkout has none, and where PYTHONDONTWRITEBYTECODE
    is set (this machine) every run compiled our 4,000 lines again: 0.035 s a
    run that no installed copy spends, and that the peers' binaries do not.
    """
    import compileall

    import pelican_s3_publish

    compileall.compile_dir(Path(pelican_s3_publish.__file__).parent, quiet=1)


def _exit_code(results: Results, out: Path) -> int:
    """Another tool that leaves a bucket wrong is a finding, reported; only ours failing fails the run."""
    wrong = sorted({tool for (tool, _, _), ms in results.measures.items() if not all(m.ok for m in ms)})
    if wrong:
        print(f"left a bucket unlike the output (the 'bucket right' column of {out}): {', '.join(wrong)}")
    return 1 if tools.Ours.name in wrong else 0


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    weed = subprocess.run([seaweed.weed_binary(), "version"], capture_output=True, text=True).stdout.split()[2]
    return (
        f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.platform()}, Python {platform.python_version()}, "
        f"SeaweedFS {weed}"
    )


def fresh(directory: Path) -> Path:
    """An empty folder: each benchmark starts from empty buckets."""
    shutil.rmtree(directory, ignore_errors=True)
    return directory


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    sys.exit(main())
