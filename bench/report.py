"""Write bench/RESULTS.md from one run's measurements."""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import sites, tools
from bench.run import COUNTING, LARGE, SCENARIOS, Measure, Results, median

OURS = tools.Ours.name
IN_PELICAN_METHOD = [
    "Whole builds with DELETE_OUTPUT_DIRECTORY, written to a tmpfs (writing to disk varied a build's "
    "system time by a second), the four variants in turn in each round. 'Whole build, added' is the "
    "median over rounds of each round's difference to the build without the plugin; the same build "
    "without the plugin, run again, shows what two identical builds differ by.",
    "",
    "'In the plugin's code' is the time the build spends importing the plugin, registering it and in "
    "its handlers (the one called for each page and feed written, summed), timed inside the build. "
    "With publishing off that is everything the plugin adds (it starts nothing else), measured to the "
    "millisecond, so the target with publishing off is judged on it. A no-op publish also reads the "
    "bucket, and hashes each page, in a child process during the build, so its cost is judged on the "
    "whole build.",
]
PREVIOUS_ROW = "| pelican-s3-publish | "
LARGE_LOOPBACK_RATIO = 0.25  # issue 21's targets: of the fastest other tool's time
BIGGEST_NOOP_S = 2.33  # and for the no-op of the largest output
IN_PLUGIN_NOOP = "in the plugin's code: no-op publish"  # bench.extra's label


def _cell(results: Results, tool: str, scenario: str, measures: list[Measure]) -> list[str]:
    walls = [m.wall_s for m in measures]
    counted = results.counts.get((tool, scenario))  # none for the generated output: no counting pass
    return [
        f"{median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
        f"{median([m.cpu_s for m in measures]):.2f}",
        f"{max(m.rss_mb for m in measures):.0f}",
        f"{counted[0]}" if counted else "—",
        f"{counted[1] / 2**20:.1f}" if counted else "—",
        "yes" if all(m.ok for m in measures) else "**NO**",
    ]


def _walls(results: Results, tool: str, scenario: str, network: str) -> list[float]:
    return [m.wall_s for m in results.measures.get((tool, scenario, network), [])]


def _fastest_other(results: Results, scenario: str, network: str) -> str | None:
    others = [
        (tool, median([m.wall_s for m in ms]))
        for (tool, s, n), ms in results.measures.items()
        if s == scenario and n == network and tool != OURS and all(m.ok for m in ms)
    ]
    return min(others, key=lambda pair: pair[1])[0] if others else None


def paired_ratio(results: Results, scenario: str, network: str, other: str | None = None) -> tuple[float, str] | None:
    """The median of ours / theirs, run by run: both ran in the same round, minutes apart at most."""
    other = other or _fastest_other(results, scenario, network)
    ours, theirs = _walls(results, OURS, scenario, network), _walls(results, other or "", scenario, network)
    if other is None or not ours or len(ours) != len(theirs):
        return None
    return median([a / b for a, b in zip(ours, theirs, strict=True)]), other


def _tables(results: Results) -> list[str]:
    lines = []
    networks = sorted({n for _, _, n in results.measures}, key=lambda n: (n == COUNTING, n != "loopback", n))
    for network in networks:
        lines += [f"### {network}", ""]
        for scenario in SCENARIOS:
            rows = [(t, ms) for (t, s, n), ms in results.measures.items() if s == scenario and n == network]
            if not rows:
                continue
            found = paired_ratio(results, scenario, network) if network != COUNTING else None
            versus = (
                f" — ours / fastest other ({found[1]}), median of paired ratios: **{found[0]:.2f}x**" if found else ""
            )
            lines += [
                f"**{scenario}**{versus}",
                "",
                "| tool | wall s, median (min-max) | CPU s | peak RSS MB | objects written | MiB sent | bucket right |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [f"| {tool} | " + " | ".join(_cell(results, tool, scenario, ms)) + " |" for tool, ms in rows]
            lines.append("")
    return lines


def previous_medians(path: Path) -> dict[tuple[str, str], float]:
    """Our medians in the RESULTS.md about to be replaced, by (network, scenario): the "no slower" target."""
    found: dict[tuple[str, str], float] = {}
    network = scenario = ""
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith("### "):
            network = line[4:].strip()
        elif line.startswith("**") and "**" in line[2:]:
            scenario = line[2 : line.index("**", 2)]
        elif line.startswith(PREVIOUS_ROW) and network and scenario:
            found[(network, scenario)] = float(line[len(PREVIOUS_ROW) :].split()[0])
    return found


SCALE_METHOD = (
    "Each output generated on a tmpfs (on disk, this machine's kernel paged out what was left a minute "
    "unread, and a no-op read it back from disk), published once, then {noops} no-ops: the median time and "
    "CPU, the highest peak RSS."
)
FLOOR_METHOD = (
    "bench/floor.py times, in turn with our no-op, the two parts of it no publish can skip, each alone "
    "against the same bucket: the bucket read just as a publish reads it (the helper process, botocore's "
    "resolution, the manifest and the listing, decoded), and every file walked, read and hashed with SHA-256 "
    "in the plainest loop. The server shares this machine's {cores} cores, so no no-op can take less than the "
    "read, the hashing, or all of their CPU (ours and the server's) spread over the cores: that is the floor. "
    "A target under its floor cannot be met here by any change to our code. Medians over the runs."
)
CHAOS_METHOD = [
    "`devtools/chaos.py`, seeded: each round changes a generated site at random (edit, add, remove, rename, a "
    "header rule, gzip on or off, a redirect added or dropped), publishes it through the fault proxy (a share of "
    "requests answered 500, 503, SlowDown, reset, stalled past the timeout, cut mid-answer or corrupted on the "
    "way, a lost answer to the manifest write; a fifth of the publishes SIGKILLed at a random write), then "
    "publishes it again without faults. After every publish: the manifest's "
    "records match the listing, no foreign object was deleted, no page links to a missing asset; after each clean "
    "one, the bucket equals the output, bytes and headers. `python -m devtools.chaos --rounds 250` reproduces it.",
]


def _targets(results: Results, extras: dict[str, Any], rtt: str, previous: dict[tuple[str, str], float]) -> list[str]:
    def line(label: str, value: float | None, limit: float, unit: str = "x", strictly: bool = False) -> str:
        if value is None:
            return f"| {label} | not measured | {limit}{unit} | — |"
        met = value < limit if strictly else value <= limit
        bound = f"{'<' if strictly else '≤'} {limit}{unit}"
        return f"| {label} | {value:.2f}{unit} | {bound} | {'met' if met else '**not met**'} |"

    def r(scenario: str, network: str, other: str | None = None) -> float | None:
        found = paired_ratio(results, scenario, network, other)
        return found[0] if found else None

    scale = extras["scale"]
    # Among tools that left the bucket right: one that lost files has fewer left to write.
    right = {(t, s) for (t, s, n), ms in results.measures.items() if n == COUNTING and all(m.ok for m in ms)}
    fewest = all(
        objects <= min(o for (t, s), (o, _) in results.counts.items() if s == scenario and (t, s) in right)
        for (tool, scenario), (objects, _) in results.counts.items()
        if tool == OURS
    )
    rows = [
        "| target | measured | limit | |",
        "|---|---|---|---|",
        line(
            "no-op after full rebuild, loopback: ours / fastest other", r("no-op after full rebuild", "loopback"), 1.0
        ),
        line(f"no-op after full rebuild, {rtt}: ours / fastest other", r("no-op after full rebuild", rtt), 1.0),
        line(f"{LARGE}, loopback: ours / fastest other", r(LARGE, "loopback"), LARGE_LOOPBACK_RATIO),
        line(f"{LARGE}, {rtt}: ours / fastest other", r(LARGE, rtt), 0.2),
        line(f"first upload, {rtt}: ours / hugo deploy", r("first upload", rtt, tools.Hugo.name), 0.3),
        line("header-only, loopback: ours / fastest other", r("header-only", "loopback"), 1.0, strictly=True),
        line(f"header-only, {rtt}: ours / fastest other", r("header-only", rtt), 1.0, strictly=True),
    ]
    if scale:
        biggest = max(scale, key=lambda row: row["files"])
        rows.append(line(f"peak RSS, {biggest['files']:,}-file no-op", biggest["noop_rss_mb"], 150, " MB"))
        rows.append(
            line(
                f"time, {biggest['files']:,}-file no-op (half of issue 21's 4.65 s)",
                biggest["noop_s"],
                BIGGEST_NOOP_S,
                " s",
            )
        )
    in_plugin = extras["in_pelican"].get(IN_PLUGIN_NOOP)
    rows.append(
        line(
            "no-op inside `pelican content`, the plugin's own code",
            median(in_plugin) if in_plugin else None,
            0.12,
            " s",
        )
    )
    rows.append(
        f"| fewest objects written in every scenario | {'yes' if fewest else 'no'} | — | "
        f"{'met' if fewest else '**not met**'} |"
    )
    if chaos := extras.get("chaos"):
        broken = len(chaos["violations"])
        rows.append(
            f"| chaos run: promises broken in {chaos['publishes']} publishes | {broken} | 0 | "
            f"{'met' if broken == 0 else '**not met**'} |"
        )
    rows += ["", "No scenario slower than in the previous RESULTS.md: its direct loopback medians against this "
             "run's (within 10%: runs of the same code differ that much here); the counting pass, through the "
             "recording proxy, for reference.", "",
             "| scenario | previous, direct | now, direct | now, through the proxy | |",
             "|---|---|---|---|---|"]  # fmt: skip
    for scenario in SCENARIOS:
        before = previous.get(("loopback", scenario))
        through = _walls(results, OURS, scenario, COUNTING)
        direct = _walls(results, OURS, scenario, "loopback")
        if before is None or not through or not direct:
            continue
        verdict = "met" if median(direct) <= before * 1.1 else "**slower**"
        rows.append(f"| {scenario} (loopback) | {before:.2f} | {median(direct):.2f} | {through[0]:.2f} | {verdict} |")
    return rows


def _floors(results: Results, extras: dict[str, Any]) -> list[str]:
    """Each measured output's no-op beside its floor, and the target it is held to."""
    rows: list[tuple[str, dict[str, float], float | None]] = []
    if generated := extras.get("generated_floor"):
        other = _fastest_other(results, LARGE, "loopback")
        target = LARGE_LOOPBACK_RATIO * median(_walls(results, other, LARGE, "loopback")) if other else None
        rows.append((f"generated, {generated['files']:,} files, every file rewritten", generated, target))
    most = max((row["files"] for row in extras["scale"]), default=None)
    rows += [
        (f"flat, {row['files']:,} files", row, BIGGEST_NOOP_S if row["files"] == most else None)
        for row in extras["scale"]
    ]
    if not rows:
        return []
    lines = ["", "## The floor under a no-op", "", FLOOR_METHOD.format(cores=rows[0][1]["cores"]), "",
             "| output | runs | no-op s | CPU s, ours + server | read alone s | CPU s, ours + server "
             "| hashing alone s | floor s | target s | floor within the target |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    return lines + [_floor_row(*row) for row in rows]


def _floor_row(label: str, row: dict[str, float], target: float | None) -> str:
    verdict = "—" if target is None else "yes" if row["bound_s"] <= target else "**no**"
    return (
        f"| {label} | {row['runs']:.0f} | {row['noop_s']:.2f} | {row['noop_cpu_s']:.2f} + "
        f"{row['noop_server_cpu_s']:.2f} | {row['read_s']:.2f} | {row['read_cpu_s']:.2f} + "
        f"{row['read_server_cpu_s']:.2f} | {row['hash_s']:.2f} | {row['bound_s']:.2f} | "
        f"{'—' if target is None else f'{target:.2f}'} | {verdict} |"
    )


def _commit() -> str:
    """The commit measured, with a mark when the working tree differs from it."""
    git = ["git", "-C", str(Path(__file__).parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return (head or "an unknown commit") + (" with uncommitted changes" if dirty.stdout.strip() else "")


def write(
    args: argparse.Namespace, builds: sites.Builds, results: Results, extras: dict[str, Any], machine: str
) -> None:
    files, size = sites.count_files(builds.first)
    rtt = f"{args.rtt_ms} ms RTT"
    previous = previous_medians(args.out)
    command = shlex.join(["python", "-m", "bench.run", *sys.argv[1:]])  # quoted: tool names have spaces
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` (see the README) on {datetime.date.today()}, at {_commit()}; one run of the "
        "benchmark, "
        f"{args.runs} runs of each measurement, medians. Machine: {machine}.",
        "",
        f"Site: {args.articles} articles, a {args.big_mb} MiB download: {files:,} files, {size / 2**20:.0f} MiB, "
        "built by Pelican. The edited and 10%-removed outputs are real rebuilds; a full rebuild is "
        "simulated by rewriting every file with the same bytes (new mtimes), as DELETE_OUTPUT_DIRECTORY does.",
        "",
        f"Generated output ('{LARGE}'): {args.large_files:,} files, {args.large_mb} MiB of random bytes "
        "(pages, styles, images, scripts), no Pelican build; each tool's bucket is filled by its own first "
        "upload (untimed), then each run rewrites every file with the same bytes and times the no-op.",
        "",
        "Timed runs talk to SeaweedFS directly (loopback), or through a TCP proxy that holds every byte "
        f"{args.rtt_ms / 2:g} ms each way ({rtt}; devtools/latency.py, which parses nothing). The tools take "
        "turns, a different one first in each run; 'paired ratio' is the median over runs of ours / theirs "
        "in the same run. Objects written and bytes sent come from a separate, untimed pass of every "
        "scenario through the recording proxy (devtools/proxy.py); its times are shown last, for comparison "
        "with the earlier method.",
        "'objects written' counts site objects (PUT, server-side copy, completed multipart); "
        "pelican-s3-publish also writes its manifest once when anything changed, and into a new bucket a probe "
        "object it removes at once (asking the store what it does), neither counted.",
        "",
        *(f"- {note}" for note in results.notes),
        "",
        "## Targets",
        "",
        *_targets(results, extras, rtt, previous),
        "",
        "## Side by side",
        "",
        *_tables(results),
        "## The seed's comparison: sequential against concurrent",
        "",
        "| phase | workers=1 | concurrent | speed-up |",
        "|---|---|---|---|",
    ]
    for phase, label in (
        ("hashing", "hashing the output, SHA-256 and MD5 (in process, s)"),
        ("uploads", f"first upload, {rtt} (s)"),
    ):
        timings = extras[phase]
        one, many = timings["workers=1"], timings[max(timings, key=lambda k: int(k.split("=")[1]))]
        lines.append(f"| {label} | {one:.2f} | {many:.2f} | {one / many:.1f}x |")
    lines += ["", "## Inside `pelican content`", "", *IN_PELICAN_METHOD, "",
              "| what | seconds, median | min to max |", "|---|---|---|"]  # fmt: skip
    lines += [
        f"| {label} | {median(samples):.3f} | {min(samples):.3f} to {max(samples):.3f} |"
        for label, samples in extras["in_pelican"].items()
    ]
    if extras["scale"]:
        lines += ["", "## Scale: generated outputs, no Pelican build", "",
                  SCALE_METHOD.format(noops=extras["scale"][0]["runs"]), "",
                  "| files | first upload s | no-op s | no-op CPU s | no-op peak RSS MB | no-op µs per file |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {row['files']:,} | {row['first_s']:.1f} | {row['noop_s']:.2f} | {row['noop_cpu_s']:.2f} | "
            f"{row['noop_rss_mb']:.0f} | {row['noop_s'] / row['files'] * 1e6:.0f} |"
            for row in extras["scale"]
        ]
    lines += _floors(results, extras)
    if chaos := extras.get("chaos"):
        figures = [*(chaos[name] for name in ("seed", "publishes", "failed", "faults", "kills"))]
        figures += [len(chaos["violations"]), f"{chaos['minutes']:.1f}"]
        header = (
            "| seed | publishes | failed (faults past every retry) | faults injected | SIGKILLs | broken | minutes |"
        )
        lines += ["", "## Chaos run", "", *CHAOS_METHOD, "", header, "|---|---|---|---|---|---|---|"]
        lines.append("| " + " | ".join(str(f) for f in figures) + " |")
        lines += [f"- {violation}" for violation in chaos["violations"]]
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    args.out.write_text("\n".join(lines) + "\n")
