"""The README's first command: build sample_site, publish it to a local
SeaweedFS, publish again to show that nothing is sent, and say where to look.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

from devtools import seaweed

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "sample_site"
BUCKET = "sample-site"


def demo_env(endpoint_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        S3_PUBLISH_BUCKET=BUCKET,
        S3_PUBLISH_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID=env.get("AWS_ACCESS_KEY_ID", "demo-key"),
        AWS_SECRET_ACCESS_KEY=env.get("AWS_SECRET_ACCESS_KEY", "demo-secret"),
    )
    return env


def build_and_publish(env: dict[str, str], output: Path, title: str) -> None:
    print(f"\n== {title}: pelican content -s publishconf.py", flush=True)
    command = [sys.executable, "-m", "pelican", "content", "-s", "publishconf.py", "-o", str(output)]
    subprocess.run(command, cwd=SITE, env=env, check=True)


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="s3-publish-demo-") as scratch,
        seaweed.running(Path(scratch) / "seaweedfs") as server,
    ):
        print(f"SeaweedFS S3 is running at {server.endpoint_url}")
        boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="demo-key",
            aws_secret_access_key="demo-secret",
        ).create_bucket(Bucket=BUCKET)
        env = demo_env(server.endpoint_url)
        output = Path(scratch) / "output"
        build_and_publish(env, output, "first publish: every file is new")
        build_and_publish(env, output, "second publish after a full rebuild: nothing to send")
        if not sys.stdin.isatty():  # nobody to open it, and the server stops now: no address that will not answer
            print("\nDone; the server stops now (run from a terminal to keep it up and browse the site).")
            return 0
        print(f"\nOpen the published site: {server.endpoint_url}/{BUCKET}/index.html")
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input("Press Enter to stop the server. ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
