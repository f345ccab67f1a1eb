"""The tools compared, each as the command a user would run.

Every tool gets the same job: make the bucket equal to an output directory,
deleting what is gone; and, for the header scenario, give every HTML file
`Cache-Control: max-age=60` the way that tool's users would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HEADER = "max-age=60"


@dataclass(frozen=True)
class Context:
    endpoint_url: str
    bucket: str
    work: Path  # scratch folder for config files
    tools_venv: Path
    site_root: Path  # holds the site's pelicanconf.py, for our own tool


class Tool:
    name = ""

    def version(self, ctx: Context) -> str:
        raise NotImplementedError

    def sync(self, ctx: Context, source: Path) -> list[str]:
        raise NotImplementedError

    def headers(self, ctx: Context, source: Path) -> list[str]:
        raise NotImplementedError

    def env(self, ctx: Context) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "AWS_CA_BUNDLE"}
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        env.update(AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        return env


def _first_line(command: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    return (done.stdout or done.stderr).strip().splitlines()[0]


class Ours(Tool):
    name = "pelican-s3-publish"

    def _base(self, ctx: Context, source: Path) -> list[str]:
        return [
            sys.executable, "-m", "pelican_s3_publish", "-q", "-s", str(ctx.site_root / "pelicanconf.py"),
            "-o", str(source), "-e", f'S3_PUBLISH_BUCKET="{ctx.bucket}"',
            f'S3_PUBLISH_ENDPOINT_URL="{ctx.endpoint_url}"', "S3_PUBLISH_MAX_DELETES=null",
        ]  # fmt: skip

    def version(self, ctx: Context) -> str:
        from pelican_s3_publish import __version__

        return __version__

    def sync(self, ctx: Context, source: Path) -> list[str]:
        return self._base(ctx, source)

    def headers(self, ctx: Context, source: Path) -> list[str]:
        rules = json.dumps([["*.html", {"Cache-Control": HEADER}]])
        return [*self._base(ctx, source), f"S3_PUBLISH_HEADERS={rules}"]


class AwsCli(Tool):
    name = "aws s3 sync"

    def _aws(self, ctx: Context) -> list[str]:
        return [str(ctx.tools_venv / "bin" / "aws"), "--endpoint-url", ctx.endpoint_url, "s3"]

    def version(self, ctx: Context) -> str:
        return _first_line([str(ctx.tools_venv / "bin" / "aws"), "--version"]).split()[0]

    def sync(self, ctx: Context, source: Path) -> list[str]:
        return [*self._aws(ctx), "sync", str(source), f"s3://{ctx.bucket}/", "--delete", "--only-show-errors"]

    def headers(self, ctx: Context, source: Path) -> list[str]:
        bucket = f"s3://{ctx.bucket}/"
        return [
            *self._aws(ctx), "cp", bucket, bucket, "--recursive", "--exclude", "*", "--include", "*.html",
            "--cache-control", HEADER, "--metadata-directive", "REPLACE", "--only-show-errors",
        ]  # fmt: skip


class S3cmd(Tool):
    name = "s3cmd"

    def _config(self, ctx: Context) -> str:
        host = urlsplit(ctx.endpoint_url).netloc
        path = ctx.work / "s3cfg"
        path.write_text(
            f"[default]\naccess_key = bench\nsecret_key = bench\nhost_base = {host}\nhost_bucket = {host}\n"
            "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        )
        return str(path)

    def _s3cmd(self, ctx: Context) -> list[str]:
        return [str(ctx.tools_venv / "bin" / "s3cmd"), "-c", self._config(ctx), "--no-progress", "--quiet"]

    def version(self, ctx: Context) -> str:
        return _first_line([str(ctx.tools_venv / "bin" / "s3cmd"), "--version"]).split()[-1]

    def sync(self, ctx: Context, source: Path) -> list[str]:
        return [*self._s3cmd(ctx), "sync", "--delete-removed", f"{source}/", f"s3://{ctx.bucket}/"]

    def headers(self, ctx: Context, source: Path) -> list[str]:
        """Sends the HTML again: `s3cmd modify` is refused by SeaweedFS (AccessDenied on its copy)."""
        return [
            *self._s3cmd(ctx), "put", "--recursive", "--exclude", "*", "--include", "*.html",
            f"--add-header=Cache-Control:{HEADER}", f"{source}/", f"s3://{ctx.bucket}/",
        ]  # fmt: skip


class Rclone(Tool):
    name = "rclone --checksum --fast-list"

    def env(self, ctx: Context) -> dict[str, str]:
        env = super().env(ctx)
        env.update(
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=ctx.endpoint_url,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="bench",
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="bench",
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )
        return env

    def version(self, ctx: Context) -> str:
        return _first_line(["rclone", "version"]).split()[-1]

    def sync(self, ctx: Context, source: Path) -> list[str]:
        # --fast-list: one listing of the bucket instead of one per directory, rclone's fastest for S3.
        return ["rclone", "sync", "--checksum", "--fast-list", str(source), f"bench:{ctx.bucket}"]

    def headers(self, ctx: Context, source: Path) -> list[str]:
        return [
            "rclone", "copy", "--checksum", "--fast-list", "--no-check-dest", "--include", "*.html",
            "--header-upload", f"Cache-Control: {HEADER}", str(source), f"bench:{ctx.bucket}",
        ]  # fmt: skip


class Hugo(Tool):
    name = "hugo deploy"

    def _config(self, ctx: Context, source: Path, with_header: bool) -> str:
        host = urlsplit(ctx.endpoint_url).netloc
        url = f"s3://{ctx.bucket}?endpoint={host}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1"
        matcher = f'[[deployment.matchers]]\npattern = "^.+\\\\.html$"\ncacheControl = "{HEADER}"\n'
        site = ctx.work / "hugo"
        site.mkdir(exist_ok=True)
        (site / "hugo.toml").write_text(
            f'publishDir = "{source}"\n[deployment]\n[[deployment.targets]]\nname = "bench"\nURL = "{url}"\n'
            + (matcher if with_header else "")
        )
        return str(site)

    def version(self, ctx: Context) -> str:
        return _first_line(["hugo", "version"]).split()[1]

    def sync(self, ctx: Context, source: Path) -> list[str]:
        site = self._config(ctx, source, with_header=False)
        return ["hugo", "deploy", "--source", site, "--target", "bench", "--maxDeletes", "-1", "--quiet"]

    def headers(self, ctx: Context, source: Path) -> list[str]:
        site = self._config(ctx, source, with_header=True)
        return ["hugo", "deploy", "--source", site, "--target", "bench", "--force", "--maxDeletes", "-1"]


ALL = [Ours(), AwsCli(), S3cmd(), Rclone(), Hugo()]


def install(tools_venv: Path, chosen: list[Tool]) -> None:
    """awscli and s3cmd from PyPI in their own venv (awscli pins another botocore);
    rclone and hugo from Debian. Only what the chosen tools need."""
    names = {type(tool) for tool in chosen}
    if names & {AwsCli, S3cmd} and not all((tools_venv / "bin" / b).exists() for b in ("aws", "s3cmd")):
        subprocess.run([sys.executable, "-m", "venv", str(tools_venv)], check=True)
        pip = [str(tools_venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "awscli", "s3cmd"], check=True)
    wanted = [name for name, kind in (("rclone", Rclone), ("hugo", Hugo)) if kind in names]
    missing = [name for name in wanted if shutil.which(name) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
