"""The benchmark runs (a tiny site, one run); its numbers live in bench/RESULTS.md, never here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_benchmark_runs_on_a_tiny_site(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    command = [
        sys.executable, "-m", "bench.run", "--quick", "--tools", "pelican-s3-publish",
        "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = out.read_text()
    for scenario in ("first upload", "no-op after full rebuild", "one article edited", "10% removed", "header-only"):
        assert f"**{scenario}**" in results
    assert "| pelican-s3-publish |" in results
    assert "**NO**" not in results  # every run left the bucket equal to the output
    floors = [line.split(" | ") for line in results.splitlines() if line.startswith("| generated, 300 files")]
    assert len(floors) == 1  # the generated output's no-op, beside the floor under it
    read_alone, hashing_alone, floor = (float(floors[0][column]) for column in (4, 6, 7))
    assert floor >= max(read_alone, hashing_alone) > 0
