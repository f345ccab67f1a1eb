"""The README's first command keeps working, and the plugin stays light when off."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_demo_publishes_the_sample_site_then_sends_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.demo"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, COLUMNS="300"),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    summaries = [line for line in (done.stdout + done.stderr).splitlines() if "published to" in line]
    assert len(summaries) == 2
    assert re.search(r": [1-9]\d* new, 0 changed, 0 header-only, 0 deleted; ", summaries[0]), summaries[0]
    assert "0 new, 0 changed, 0 header-only" in summaries[1]
    assert "Open the published site" not in done.stdout  # its server stops with the demo: no dead address
    assert "the server stops now" in done.stdout


@pytest.mark.parametrize("name", ["pelican_s3_publish", "pelican.plugins.s3_publish"])
def test_importing_the_plugin_does_not_load_boto3(name: str) -> None:
    """Either way Pelican loads it: discovery imports every installed plugin, publishing or not."""
    probe = f"import sys, {name}; print('boto3' in sys.modules, 'botocore' in sys.modules, 'obstore' in sys.modules)"

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert done.stdout.split() == ["False", "False", "False"]
