"""Walk the output directory: every file to publish, with its key and content digests.

Two passes. `scan` fingerprints every file with SHA-256, beside the bucket
read: on CPUs with SHA instructions it is 2.5x faster than MD5. Once the
process that reads the bucket is idle, it hashes half of what is left on the
other core (`Beside`). `identify`
then takes each file's MD5 (what S3's ETag and Content-MD5 speak) from the
manifest wherever the manifest vouches for these exact bytes by their SHA-256,
and computes it for the rest: after a rebuild, only for what changed.

Hashing streams each file, so a large download never sits in memory whole.
The MD5s computed run on a thread pool (hashlib and file reads release the
GIL): they are of changed files, often large ones.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import stat
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

from . import content_types
from .errors import RefusedError, SettingsError
from .globs import compiled

READ_BLOCK = 1024 * 1024
RACY_S = 0.05  # longer than a timestamp's tick where timestamps keep fractions of a second (a jiffy or less)
COARSE_RACY_S = 2.5  # where they keep whole seconds (ext3, HFS+), or two (FAT)
READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
MAX_KEY_BYTES = 1024
HASH_BATCH = 256
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")
_T = TypeVar("_T")


class Ahead(NamedTuple):
    """A file the build wrote, hashed while it went on (`hash_ahead`), and what says it is still that file."""

    stat: tuple[int, int, int, int, int]  # device, inode, size, mtime and ctime in ns
    sha256: str
    head: bytes  # first bytes, where its name may not decide its Content-Type


class Found(NamedTuple):
    """A file to publish, fingerprinted; its MD5 not yet known."""

    relpath: str  # POSIX path under the output directory; the key is prefix + relpath
    path: str
    size: int
    sha256: str
    head: bytes  # first bytes, kept only where they decide the Content-Type


@dataclass(frozen=True, slots=True)
class LocalFile:
    relpath: str
    path: str
    size: int
    md5: str
    sha256: str
    head: bytes


def _check_name(relpath: str, where: Path) -> None:
    try:
        encoded = relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError(
            f"file name {relpath.encode('utf-8', 'surrogateescape')!r} in {where} is not valid UTF-8: rename it"
        ) from None
    if CONTROL_CHARACTERS.search(relpath):
        raise SettingsError(f"file name {relpath!r} in {where} holds control characters: rename it")
    if len(encoded) > MAX_KEY_BYTES:
        raise SettingsError(f"file name {relpath[:60]!r}... in {where} is over {MAX_KEY_BYTES} bytes")


INDEX = "index.html"


def object_key(prefix: str, relpath: str) -> str:
    """The key a file of the output is published under: the prefix, then its path there."""
    return prefix + relpath


def relpath_of(prefix: str, key: str) -> str:
    """The path in the output a key under the prefix stands for: `object_key` undone."""
    return key[len(prefix) :]


def key_of(relpath: str) -> str:
    """A folder's index page under the folder's own key (the site's root page stays where it is)."""
    return relpath[: -len(INDEX)] if relpath.endswith("/" + INDEX) else relpath


def name_of(key: str) -> str:
    """The file a key was published from: what header rules and Content-Types go by."""
    return key + INDEX if key.endswith("/") else key


def _check_unique(first: str, path: str) -> None:
    if first != path:
        raise SettingsError(
            f"{first} and {path} publish to the same key (their names differ only in Unicode form): keep one of them"
        )


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _walk(root: Path, directory: str, seen: frozenset[Path], under: str = "") -> Iterator[tuple[str, str]]:
    """(relpath, path) of each regular file, following links that stay inside.

    No stat: the directory entry says what it is, and reading the file says its size.
    """
    for entry in _entries(directory):
        # NFC, as most systems write names: a site built on macOS (NFD) and elsewhere keeps one key per file.
        # Interned: the manifest and the listing name it too, one string for all.
        relpath = sys.intern(unicodedata.normalize("NFC", under + entry.name))
        if entry.is_symlink():
            yield from _follow_link(root, entry, seen, relpath)
        elif entry.is_file():
            yield relpath, entry.path
        elif entry.is_dir():
            yield from _walk(root, entry.path, seen, relpath + "/")


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as error:
        raise SettingsError(f"cannot read the directory {directory}: {error.strerror}: check its permissions") from None


def _follow_link(root: Path, entry: os.DirEntry[str], seen: frozenset[Path], relpath: str) -> Iterator[tuple[str, str]]:
    try:
        target = Path(entry.path).resolve(strict=True)
    except RuntimeError:  # Python before 3.13 says "Symlink loop" this way
        raise SettingsError(f"{entry.path} is a link loop: remove the link") from None
    except OSError as error:
        raise SettingsError(
            f"{entry.path} is a link that cannot be followed: {error.strerror}: fix or remove it"
        ) from None
    if not _inside(target, root):
        raise SettingsError(
            f"{entry.path} is a link to {target}, outside the output directory: copy the file instead of linking it"
        )
    info = entry.stat()
    if stat.S_ISDIR(info.st_mode):
        if target in seen:
            raise SettingsError(f"{entry.path} links back to {target}: remove the link loop")
        yield from _walk(root, entry.path, seen | {target}, relpath + "/")
    elif stat.S_ISREG(info.st_mode):
        yield relpath, entry.path


def _digest(path: str, algorithm: Callable[..., hashlib._Hash], buffer: bytearray) -> tuple[str, bytes, int]:
    """The file's hex digest, its first bytes (as many as sniffing reads), and its size.

    Read without a file object into a buffer the caller keeps: a site is
    mostly small files, and per file Python is most of what a scan costs.
    """
    view = memoryview(buffer)
    try:
        handle = os.open(path, READ_FLAGS)
        try:
            size = got = os.readv(handle, [buffer])
            first = bytes(view[: min(got, content_types.SNIFF_BYTES)])
            digest = algorithm(view[:got], usedforsecurity=False)
            while got == READ_BLOCK:  # a short read of a regular file is its end
                got = os.readv(handle, [buffer])
                digest.update(view[:got])
                size += got
        finally:
            os.close(handle)
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}: check its permissions") from None
    return digest.hexdigest(), first, size


def _fingerprint(relpath: str, path: str, buffer: bytearray) -> Found:
    sha256, first, size = _digest(path, hashlib.sha256, buffer)
    return Found(relpath, path, size, sha256, _kept_head(relpath, first))


def _kept_head(relpath: str, first: bytes) -> bytes:
    sniffed = content_types.needs_sniffing(relpath) or first.startswith(content_types.GZIP_MAGIC)
    return first if sniffed else b""


def _stat_key(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def hash_ahead(path: str, buffer: bytearray) -> tuple[str, Ahead] | None:
    """A file the build has written, hashed while the build goes on: its real path and `Ahead`; None
    if it changed while being read, or cannot be read (the scan reads it again, and says why).

    It is read only once its last change (ctime) is `RACY_S` old, longer
    than the file system's timestamps take to tick, as git does with its
    index: any later write then shows as a new ctime, which no tool can set
    back, and the scan hashes the file again.
    """
    try:
        before = os.stat(path)
        margin = RACY_S if before.st_ctime_ns % 1_000_000_000 else COARSE_RACY_S  # whole seconds: a coarse one
        time.sleep(max(0.0, before.st_ctime_ns / 1e9 + margin - time.time()))
        sha256, first, _ = _digest(path, hashlib.sha256, buffer)
        after = os.stat(path)
    except (OSError, SettingsError):
        return None
    if _stat_key(before) != _stat_key(after):
        return None
    return os.path.realpath(path), Ahead(_stat_key(after), sha256, _kept_head(path, first))


def still_as_hashed(path: str, ahead: Ahead) -> bool:
    """The file has not changed since it was hashed ahead: asked once the build is done."""
    try:
        return _stat_key(os.stat(path)) == ahead.stat
    except OSError:
        return False


def _vouched(relpath: str, path: str, ahead: Ahead) -> Found | None:
    """The file as it was hashed ahead, unless the first bytes it needs were not kept."""
    size = ahead.stat[2]
    if size and not ahead.head and content_types.needs_sniffing(relpath):
        return None  # its name differs from its file's (strip_index)
    return Found(relpath, path, size, ahead.sha256, _kept_head(relpath, ahead.head))


def _md5_batch(batch: list[Found]) -> list[str]:
    buffer = bytearray(READ_BLOCK)
    return [_digest(found.path, hashlib.md5, buffer)[0] for found in batch]


def _batches(items: list[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(items), HASH_BATCH):
        yield items[start : start + HASH_BATCH]


def output_root(output_dir: str | os.PathLike[str]) -> Path:
    root = Path(output_dir).absolute()
    if not root.is_dir():
        raise SettingsError(f"output directory {root} does not exist: build the site first")
    return root.resolve()


def scan(
    output_dir: str | os.PathLike[str],
    exclude: tuple[str, ...],
    reserved: frozenset[str] = frozenset(),
    strip_index: bool = False,
    ahead: Callable[[], Mapping[str, Ahead]] | None = None,
    beside: Beside | None = None,
) -> list[Found]:
    """Every file to publish, in walk order (names sorted per directory); refuses an empty site.

    With `strip_index`, a folder's `index.html` is published under the folder's key (`dir/`). `ahead`
    waits for the files hashed ahead that are still as they were hashed, by real path: asked for once
    the walk is done, they are not read again. The rest are hashed here, and in part `beside` this
    process once something there is idle (`fingerprinted`).
    """
    root = output_root(output_dir)
    named = list(_named(root, exclude, reserved, strip_index))
    if not named:
        raise RefusedError(f"output directory {root} holds no files to publish: refusing to publish an empty site")
    hashed = ahead() if ahead else {}
    found = [_vouched(key, path, hashed[path]) if path in hashed else None for key, path in named]
    unread = [name for name, item in zip(named, found, strict=True) if item is None]
    read = iter(fingerprinted(unread, beside))
    return [item or next(read) for item in found]


def _named(
    root: Path, exclude: tuple[str, ...], reserved: frozenset[str], strip_index: bool
) -> Iterator[tuple[str, str]]:
    """(key, path) of each file to publish, in walk order; a name no key can be refused here."""
    non_ascii: dict[str, str] = {}  # by key: the only names that can have two Unicode forms
    excluded = compiled(exclude).first
    for relpath, path in _walk(root, str(root), frozenset({root})):
        if relpath in reserved or excluded(relpath):
            continue
        _check_name(relpath, root)
        if not relpath.isascii():
            _check_unique(non_ascii.setdefault(relpath, path), path)
        yield (key_of(relpath) if strip_index else relpath), path


class Beside(Protocol):
    """Somewhere else to fingerprint files, idle or not."""

    def idle(self) -> bool:
        """Nothing to do there now: files handed over would be hashed at once."""
        ...

    def fingerprint(self, files: list[tuple[str, str]]) -> Callable[[], list[Found]]:
        """Start on (key, path) files: a function that waits for their `Found`s, in order."""
        ...


SHARED_MIN = 16  # fewer files left than this are not worth handing over
FILE_AS_BYTES = 16 * 1024  # what opening, reading and closing a file costs here, in bytes hashed


def fingerprinted(files: list[tuple[str, str]], beside: Beside | None = None) -> list[Found]:
    """Each (key, path) file's `Found`, in order: hashed in this thread, and the later half `beside` it
    once that is idle (in a build, at its end; from the command line, once the bucket is read). The
    scan's files, the redirect pages, and what a scan hands over.

    In this thread, not a pool of threads: a site is mostly small files,
    each three system calls, and hashing threads hand the interpreter lock
    over at every one (two threads took 1.5x as long as one; bench/NOTES.md,
    tenth pass). Whoever is beside has an interpreter of its own.
    """
    buffer = bytearray(READ_BLOCK)
    done: list[Found] = []
    theirs: Callable[[], list[Found]] | None = None
    end = len(files)
    for start in range(0, len(files), HASH_BATCH):
        if beside is not None and end - start >= SHARED_MIN and beside.idle():
            cut = start + _half_of(files[start:end])
            if cut < end:
                theirs, end = beside.fingerprint(files[cut:end]), cut
            beside = None  # cut once
        done += [_fingerprint(key, path, buffer) for key, path in files[start : min(start + HASH_BATCH, end)]]
    return done + theirs() if theirs is not None else done


def _half_of(files: list[tuple[str, str]]) -> int:
    """Where to cut the files so each side has about as much to hash: one large download outweighs
    many pages."""
    before = list(itertools.accumulate((FILE_AS_BYTES + _size(path) for _, path in files), initial=0))
    half = before[-1] / 2
    return min(range(len(before)), key=lambda cut: abs(before[cut] - half))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # hashed here or there all the same, which says why it cannot be read


def identify(found: list[Found], on_record: Callable[[Found], LocalFile | None], workers: int = 8) -> list[LocalFile]:
    """Each file with its MD5: `on_record` answers for the bytes the manifest vouches for."""
    known = [on_record(item) for item in found]
    unknown = [item for item, file in zip(found, known, strict=True) if file is None]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        computed = iter([md5 for batch in pool.map(_md5_batch, _batches(unknown)) for md5 in batch])
    return [
        file or LocalFile(item.relpath, item.path, item.size, next(computed), item.sha256, item.head)
        for item, file in zip(found, known, strict=True)
    ]
