"""The package as a user gets it: the sdist and wheel built and checked, the
wheel installed into a fresh virtual environment, and from there the sample
site published as the README says, and as examples/github-actions.yml does."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import seaweed

from .conftest import FAKE_KEY_ID, FAKE_SECRET, ROOT, Bucket, md5_tree, new_bucket, s3_client, sample_site_copy


@dataclass
class Installed:
    wheel: Path
    bin: Path  # the fresh environment's scripts: pelican, pelican-s3-publish, pip

    def env(self, **extra: str) -> dict[str, str]:
        """A shell whose python, pip and pelican are the fresh environment's; no PYTHONPATH to the working tree."""
        env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        return env | extra


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done


def _build_and_install(work: Path) -> Path:
    """The sdist and wheel built and checked, the wheel installed into a fresh environment; the wheel."""
    run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(ROOT)])
    (wheel,) = (work / "dist").glob("*.whl")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    dists = [sdist, wheel]
    run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)])
    run([sys.executable, "-m", "venv", str(work / "venv")])
    venv_bin = work / "venv" / "bin"
    run([str(venv_bin / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)])
    return wheel


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Installed]:
    """Built once per run: parallel test processes share it (the first builds it, under a lock)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # the run's folder, above each process's own
    work = shared / "package"
    with open(shared / "package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (work / "wheel").exists():
            work.mkdir(exist_ok=True)
            (work / "wheel").write_text(str(_build_and_install(work)))
    yield Installed(Path((work / "wheel").read_text()), work / "venv" / "bin")


def test_the_wheel_carries_what_a_user_needs(installed: Installed) -> None:
    shown = run([str(installed.bin / "python"), "-m", "pip", "show", "-f", "pelican-s3-publish"], cwd="/").stdout
    for needed in ("pelican/plugins/s3_publish/__init__.py", "pelican_s3_publish/py.typed", "LICENSE"):
        assert needed in shown, shown
    assert "Framework :: Pelican :: Plugins" in run(
        [str(installed.bin / "python"), "-c", "from importlib.metadata import metadata as m; "
         "print(m('pelican-s3-publish'))"], cwd="/").stdout  # fmt: skip
    listed = run([str(installed.bin / "pelican-plugins")], cwd="/")
    assert "pelican.plugins.s3_publish" in listed.stdout + listed.stderr
    version = run([str(installed.bin / "pelican-s3-publish"), "--version"], cwd="/").stdout
    assert re.fullmatch(r"pelican-s3-publish \d+\.\d+\.\d+\S*\n", version), version


def test_the_installed_wheel_publishes_the_sample_site(installed: Installed, bucket: Bucket, tmp_path: Path) -> None:
    site = sample_site_copy(tmp_path)
    env = installed.env(S3_PUBLISH_BUCKET=bucket.name, S3_PUBLISH_ENDPOINT_URL=bucket.endpoint_url)
    done = subprocess.run(
        ["pelican", "content", "-s", "publishconf.py"], cwd=site, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published to s3://" in done.stdout + done.stderr
    assert bucket.site_keys() == set(md5_tree(site / "output"))


# What each action the recipe uses leaves behind, as its documentation says.
def checkout(site: Path, installed: Installed, env: dict[str, str], with_: dict[str, str]) -> dict[str, str]:
    """actions/checkout: the repository in the working directory (here, a copy of sample_site)."""
    return env


def setup_python(site: Path, installed: Installed, env: dict[str, str], with_: dict[str, str]) -> dict[str, str]:
    """actions/setup-python: its python and pip first on PATH (here, the fresh environment's)."""
    assert with_.get("cache") == "pip", "the recipe caches pip downloads"
    return installed.env() | {name: env[name] for name in env if name != "PATH"}


def configure_aws_credentials(
    site: Path, installed: Installed, env: dict[str, str], with_: dict[str, str]
) -> dict[str, str]:
    """aws-actions/configure-aws-credentials with an OIDC role: the role's session in the environment
    (https://github.com/aws-actions/configure-aws-credentials#readme, "Environment variables")."""
    assert with_["role-to-assume"] and "aws-access-key-id" not in with_, "the recipe assumes a role, no stored keys"
    region = with_["aws-region"]
    return env | {
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_SESSION_TOKEN": "a-session-token-from-sts",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


ACTIONS = {
    "actions/checkout": checkout,
    "actions/setup-python": setup_python,
    "aws-actions/configure-aws-credentials": configure_aws_credentials,
}


def expand(text: str, variables: dict[str, str]) -> str:
    """GitHub's `${{ vars.NAME }}` expressions, from the repository variables a user would set; any other fails."""

    def value(match: re.Match[str]) -> str:
        assert match[1] in variables, f"the test does not know {match[0]}"
        return variables[match[1]]

    return re.sub(r"\$\{\{\s*vars\.(\w+)\s*\}\}", value, text)


def test_the_github_actions_recipe_runs_step_by_step(
    installed: Installed, open_server: seaweed.SeaweedServer, tmp_path: Path
) -> None:
    """On a SeaweedFS without identities: the role's session token is one no local server can have issued."""
    bucket = new_bucket(open_server.endpoint_url, s3_client(open_server.endpoint_url))
    try:
        run_the_recipe(installed, bucket, tmp_path)
    finally:
        bucket.proxy.stop()


def run_the_recipe(installed: Installed, bucket: Bucket, tmp_path: Path) -> None:
    variables = {
        "S3_BUCKET": bucket.name,
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/publish",
        "AWS_REGION": "us-east-1",
    }
    recipe = yaml.safe_load(expand((ROOT / "examples" / "github-actions.yml").read_text(), variables))
    assert "${{" not in str(recipe), "every expression is one the test knows"
    assert recipe["permissions"]["id-token"] == "write"
    (job,) = recipe["jobs"].values()
    site = sample_site_copy(tmp_path)
    (site / "requirements.txt").write_text(f"pelican>=4.9\npelican-s3-publish @ {installed.wheel.as_uri()}\n")
    # The store: SeaweedFS, reached the way botocore lets any job point S3 elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | job["env"]
    env |= {"AWS_ENDPOINT_URL_S3": bucket.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true"}
    ran = []
    for step in job["steps"]:
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in ACTIONS, f"the test does not know what {action} does"
            env = ACTIONS[action](site, installed, env, step.get("with", {}))
            continue
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=site, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"step {step.get('name')!r} failed:\n{done.stdout}{done.stderr}"
        ran.append((step["run"], done.stdout + done.stderr))
    assert [command for command, _ in ran][-2:] == [
        "pelican-s3-publish -s publishconf.py --check",
        "pelican content -s publishconf.py",
    ]
    assert "published to s3://" in ran[-1][1]
    assert bucket.site_keys() == set(md5_tree(site / "output"))


# Commands in the README's ```sh blocks that this test does not run, and why; any other is run.
NOT_RUN_HERE = {
    "bash scripts/demo.sh": "run by tests/test_demo.py",
    "bash scripts/test.sh": "the suite itself (CI runs it)",
    "aws s3api ": "needs awscli and an AWS account",
    "bash scripts/setup-venv.sh test && .venv/bin/python -m bench.run": "the benchmark: an hour",
    ".venv/bin/python -m bench.run --quick": "run by tests/test_bench.py",
}


def readme_commands() -> list[str]:
    """Each command of the README's shell blocks, a command's continuation lines joined."""
    blocks = re.findall(r"^ *```sh\n(.*?)^ *```", (ROOT / "README.md").read_text(), re.S | re.M)
    commands: list[str] = []
    for block in blocks:
        pending = ""
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line.strip()
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            commands.append(pending)
            pending = ""
    return [command for command in commands if shlex.split(command, comments=True)]


def test_every_shell_command_in_the_readme_runs_or_says_why_not(
    installed: Installed, bucket: Bucket, tmp_path: Path
) -> None:
    bucket.client.put_bucket_versioning(Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"})
    site = sample_site_copy(tmp_path)
    env = installed.env(S3_PUBLISH_BUCKET=bucket.name, S3_PUBLISH_ENDPOINT_URL=bucket.endpoint_url)
    for version in ("first", "second"):
        (site / "content" / "extra" / "robots.txt").write_text(f"User-agent: *\n# {version}\n")
        run(["pelican", "content", "-s", "publishconf.py"], cwd=site, env=env)
    listed = run(["pelican-s3-publish", "--history", "--json"], cwd=site, env=env).stdout
    oldest = json.loads(listed)[-1]["id"]
    substitutes = {"/path/to/pelican-s3-publish": str(ROOT), "0a4579db": oldest}

    ran, skipped = [], []
    for command in readme_commands():
        reason = next((why for start, why in NOT_RUN_HERE.items() if command.startswith(start)), None)
        if reason is not None:
            skipped.append(command)
            continue
        for placeholder, value in substitutes.items():
            command = command.replace(placeholder, value)
        done = subprocess.run(["bash", "-e", "-c", command], cwd=site, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"README: {command}\n{done.stdout}{done.stderr}"
        ran.append(command)

    assert any(c.startswith("pip install") for c in ran) and any("--rollback" in c for c in ran), ran
    assert {start for start in NOT_RUN_HERE if any(c.startswith(start) for c in skipped)} == set(NOT_RUN_HERE)
    assert bucket.site_keys() == set(md5_tree(site / "output"))  # the last command rolled back to the first publish
    robots = bucket.body("robots.txt").decode()
    assert robots.endswith("# first\n"), robots


def test_the_readme_s_links_within_it_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        for title in re.findall(r"^#+ (.*)$", text, re.M)
    }
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert linked - anchors == set()
    for path in re.findall(r"\]\((?!https?:|#)([^)]+)\)", text):
        assert (ROOT / path).exists(), path
