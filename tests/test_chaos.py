"""A short seeded chaos run (devtools/chaos.py): random site changes published through injected faults
and SIGKILLs, every promise checked after every publish. The benchmark runs the long one."""

from __future__ import annotations

from pathlib import Path

from devtools import chaos, seaweed


def test_a_short_seeded_chaos_run_breaks_no_promise(tmp_path: Path) -> None:
    with seaweed.running(tmp_path / "seaweedfs") as server:
        stats = chaos.run(server, seed=20261126, rounds=40, kill_share=0.3, log=lambda line: None)

    assert stats.violations == []
    assert stats.publishes == 80
    assert stats.kills >= 5 and stats.faults >= 10  # the run did meet trouble
