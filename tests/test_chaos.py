"""A short seeded chaos run (devtools/chaos.py): random site changes published through injected faults
and SIGKILLs, every promise checked after every publish. The benchmark runs the long one, each publish a
new interpreter; here each is forked (tests/forked_runs.py), on the SeaweedFS without identities."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from devtools import chaos, seaweed
from tests.conftest import FORKED, SharedServer


def _forked(
    arguments: list[str], env: dict[str, str], started: Callable[[int], None]
) -> subprocess.CompletedProcess[str]:
    return FORKED.run(arguments, Path.cwd(), env, timeout=300, started=started)


def test_a_short_seeded_chaos_run_breaks_no_promise(open_server: seaweed.SeaweedServer | SharedServer) -> None:
    stats = chaos.run(
        open_server.endpoint_url, seed=20261126, rounds=40, kill_share=0.3, log=lambda line: None, launch=_forked
    )

    assert stats.violations == []
    assert stats.publishes == 80
    assert stats.kills >= 5 and stats.faults >= 10  # the run did meet trouble
