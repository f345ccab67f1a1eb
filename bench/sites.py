"""Generate Pelican sites for the benchmark, and the changed builds it syncs."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PELICANCONF = """
SITENAME = "Benchmark site"
SITEURL = ""
FEED_DOMAIN = "https://bench.example"
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
RELATIVE_URLS = True
DEFAULT_PAGINATION = 10
PAGINATION_PATTERNS = (
    (1, "{url}", "{save_as}"),
    (2, "{base_name}/page/{number}/", "{base_name}/page/{number}/index.html"),
)
STATIC_PATHS = ["images", "downloads"]
FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
CATEGORY_FEED_ATOM = "feeds/{slug}.atom.xml"
TAG_FEED_ATOM = "feeds/tag-{slug}.atom.xml"
PLUGINS = []
"""


@dataclass(frozen=True)
class Builds:
    """Outputs of real Pelican builds: the site, one article edited, 10% removed."""

    root: Path
    first: Path
    edited: Path
    removed: Path


def _article(number: int, edited: bool = False) -> str:
    title = f"Article {number}"
    body = f"Text of article {number}. " * 20 + (" An edit." if edited else "")
    return (
        f"{title}\n{'#' * len(title)}\n\n:date: 2025-01-01 00:{number % 60:02d}\n"
        f":category: cat{number % 12}\n:tags: t{number % 97}, u{number % 31}\n:slug: article-{number}\n\n"
        f"{body}\n\n.. image:: {{static}}/images/img-{number % 200}.png\n"
    )


def write_content(root: Path, articles: int, big_mb: int) -> None:
    content = root / "content"
    (content / "images").mkdir(parents=True, exist_ok=True)
    (content / "downloads").mkdir(parents=True, exist_ok=True)
    (root / "pelicanconf.py").write_text(PELICANCONF)
    rng = random.Random(1)
    for number in range(articles):
        (content / f"article-{number}.rst").write_text(_article(number))
    for number in range(max(1, articles // 5)):
        (content / "images" / f"img-{number}.png").write_bytes(rng.randbytes(rng.randint(30_000, 150_000)))
    if big_mb:
        (content / "downloads" / "big.bin").write_bytes(rng.randbytes(big_mb * 1024 * 1024))


def build(root: Path, output: Path) -> Path:
    command = [sys.executable, "-m", "pelican", "content", "-s", "pelicanconf.py", "-o", str(output), "-q"]
    subprocess.run(command, cwd=root, check=True)
    return output


def make_builds(root: Path, articles: int, big_mb: int) -> Builds:
    write_content(root, articles, big_mb)
    first = build(root, root / "out-first")
    (root / "content" / "article-1.rst").write_text(_article(1, edited=True))
    edited = build(root, root / "out-edited")
    for number in range(0, articles, 10):
        (root / "content" / f"article-{number}.rst").unlink()
    removed = build(root, root / "out-removed")
    return Builds(root, first, edited, removed)


def rewrite(source: Path, target: Path) -> Path:
    """Same bytes, new files and mtimes: what DELETE_OUTPUT_DIRECTORY does to every file."""
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
    return target


def flat_tree(root: Path, files: int) -> Path:
    """A large output generated directly (no Pelican build): `files` small files."""
    rng = random.Random(2)
    for number in range(files):
        path = root / f"d{number // 1000}" / f"page-{number}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"<!doctype html><p>" + rng.randbytes(200).hex().encode() + b"</p>")
    return root


def generated_tree(root: Path, files: int, megabytes: int) -> Path:
    """A large output generated directly (no Pelican build): pages, styles and images of random sizes
    averaging `megabytes` / `files`, a hundred folders or so."""
    rng = random.Random(3)
    mean = megabytes * 2**20 // files
    suffixes = (".html", ".html", ".html", ".css", ".png", ".js")
    for number in range(files):
        path = root / f"section-{number % 97}" / f"item-{number}{suffixes[number % len(suffixes)]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(mean // 4, mean * 7 // 4)))
    return root


def count_files(root: Path) -> tuple[int, int]:
    sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def tree_exists(root: Path) -> bool:
    return root.is_dir() and any(os.scandir(root))
