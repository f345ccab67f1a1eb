"""Write bench/RESULTS.md from one run's measurements."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from bench import sites, tools
from bench.extra import NOOP, OFF
from bench.run import SCENARIOS, Measure, Results, median

OURS = tools.Ours.name
IN_PELICAN_METHOD = [
    "Whole builds with DELETE_OUTPUT_DIRECTORY, written to a tmpfs (writing to disk varied a build's "
    "system time by a second), the four variants in turn in each round. 'Whole build, added' is the "
    "median over rounds of each round's difference to the build without the plugin; the same build "
    "without the plugin, run again, shows what two identical builds differ by.",
    "",
    "'In the plugin's code' is the time the build spends importing the plugin, registering it and in "
    "its two handlers, timed inside the build. With publishing off that is everything the plugin adds "
    "(it starts nothing else), measured to the millisecond, so the target with publishing off is "
    "judged on it. A no-op publish also reads the bucket in a child process during the build, so its "
    "target is judged on the whole build.",
]


def _cell(measures: list[Measure]) -> list[str]:
    walls = [m.wall_s for m in measures]
    return [
        f"{median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
        f"{median([m.cpu_s for m in measures]):.2f}",
        f"{max(m.rss_mb for m in measures):.0f}",
        f"{measures[0].objects}",
        f"{measures[0].bytes_sent / 2**20:.1f}",
        "yes" if all(m.ok for m in measures) else "**NO**",
    ]


def _fastest_other(results: Results, scenario: str, network: str) -> tuple[str, float] | None:
    others = [
        (tool, median([m.wall_s for m in ms]))
        for (tool, s, n), ms in results.measures.items()
        if s == scenario and n == network and tool != OURS and all(m.ok for m in ms)
    ]
    return min(others, key=lambda pair: pair[1]) if others else None


def ratio(results: Results, scenario: str, network: str) -> tuple[float, str] | None:
    ours = results.measures.get((OURS, scenario, network))
    other = _fastest_other(results, scenario, network)
    if not ours or other is None:
        return None
    return median([m.wall_s for m in ours]) / other[1], other[0]


def _tables(results: Results) -> list[str]:
    lines = []
    networks = sorted({n for _, _, n in results.measures}, key=lambda n: (n != "loopback", n))
    for network in networks:
        lines += [f"### {network}", ""]
        for scenario in SCENARIOS:
            rows = [(t, ms) for (t, s, n), ms in results.measures.items() if s == scenario and n == network]
            if not rows:
                continue
            found = ratio(results, scenario, network)
            versus = f" — ours / fastest other ({found[1]}): **{found[0]:.2f}x**" if found else ""
            lines += [
                f"**{scenario}**{versus}",
                "",
                "| tool | wall s, median (min-max) | CPU s | peak RSS MB | objects written | MiB sent | bucket right |",
                "|---|---|---|---|---|---|---|",
            ]
            lines += [f"| {tool} | " + " | ".join(_cell(ms)) + " |" for tool, ms in rows]
            lines.append("")
    return lines


def _targets(results: Results, extras: dict[str, Any], rtt: str) -> list[str]:
    def line(label: str, value: float | None, limit: float, unit: str = "x") -> str:
        if value is None:
            return f"| {label} | not measured | {limit}{unit} | — |"
        return f"| {label} | {value:.2f}{unit} | {limit}{unit} | {'met' if value <= limit else '**not met**'} |"

    def r(scenario: str, network: str) -> float | None:
        found = ratio(results, scenario, network)
        return found[0] if found else None

    def in_pelican(label: str) -> float:
        return median(extras["in_pelican"][label])

    scale = extras["scale"]

    def right(measures: list[Measure]) -> bool:
        return all(m.ok for m in measures)

    # Among tools that left the bucket right: one that lost files has fewer left to update.
    fewest = all(
        ms[0].objects
        <= min(o[0].objects for (t, s, n), o in results.measures.items() if s == scen and n == net and right(o))
        for (tool, scen, net), ms in results.measures.items()
        if tool == OURS
    )
    rows = [
        "| target | measured | limit | |",
        "|---|---|---|---|",
        line(f"first upload, {rtt}: ours / fastest other", r("first upload", rtt), 0.5),
        line("no-op after full rebuild, loopback", r("no-op after full rebuild", "loopback"), 1.0),
        line(f"no-op after full rebuild, {rtt}", r("no-op after full rebuild", rtt), 1.0),
        line("added to a no-op `pelican content` (whole build)", in_pelican(f"whole build, added: {NOOP}"), 0.35, " s"),
        line("added with publishing off (plugin code)", in_pelican(f"in the plugin's code: {OFF}"), 0.05, " s"),
    ]
    if scale:
        biggest = max(scale, key=lambda row: row["files"])
        rows.append(line(f"peak RSS, {biggest['files']:,}-file no-op", biggest["noop_rss_mb"], 300, " MB"))
    rows.append(
        f"| fewest objects written in every scenario | {'yes' if fewest else 'no'} | — | "
        f"{'met' if fewest else '**not met**'} |"
    )
    return rows


def write(
    args: argparse.Namespace, builds: sites.Builds, results: Results, extras: dict[str, Any], machine: str
) -> None:
    files, size = sites.count_files(builds.first)
    rtt = f"{args.rtt_ms} ms RTT"
    command = " ".join(["python -m bench.run", *sys.argv[1:]])
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` (see the README) on {datetime.date.today()}; one run of the benchmark, "
        f"{args.runs} runs of each measurement, medians. Machine: {machine}.",
        "",
        f"Site: {args.articles} articles, a {args.big_mb} MiB download: {files:,} files, {size / 2**20:.0f} MiB, "
        "built by Pelican. The edited and 10%-removed outputs are real rebuilds; a full rebuild is "
        "simulated by rewriting every file with the same bytes (new mtimes), as DELETE_OUTPUT_DIRECTORY does.",
        "",
        "Every request goes through the same recording proxy on loopback (Python, on the same 2 cores), "
        f"which counts writes and, for the {rtt} rows, waits {args.rtt_ms} ms before forwarding each request.",
        "'objects written' counts site objects (PUT, server-side copy, completed multipart); "
        "pelican-s3-publish also writes its manifest once when anything changed, not counted.",
        "",
        *(f"- {note}" for note in results.notes),
        "",
        "## Targets",
        "",
        *_targets(results, extras, rtt),
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
                  "| files | first upload s | no-op s | no-op CPU s | no-op peak RSS MB | no-op µs per file |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {row['files']:,} | {row['first_s']:.1f} | {row['noop_s']:.2f} | {row['noop_cpu_s']:.2f} | "
            f"{row['noop_rss_mb']:.0f} | {row['noop_s'] / row['files'] * 1e6:.0f} |"
            for row in extras["scale"]
        ]
    notes = Path(__file__).with_name("NOTES.md")
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    args.out.write_text("\n".join(lines) + "\n")
