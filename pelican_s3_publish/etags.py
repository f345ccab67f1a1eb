"""What an object's ETag says about its bytes.

A single-part ETag is the MD5 of the bytes. A multipart ETag is the MD5 of
the parts' binary MD5s plus "-N", so it depends on the part size the uploader
chose; to recognise objects other tools uploaded, compute it for the part
sizes they use.
"""

from __future__ import annotations

import hashlib
import math

MIB = 1024 * 1024
# aws-cli/boto3 8, hugo 5, s3cmd 15, rclone 16 (and others that scale up).
COMMON_PART_SIZES_MIB = (8, 5, 15, 16, 10, 25, 32, 50, 64, 100, 128, 256, 512)
MAX_CANDIDATES = 24
READ_BLOCK = MIB


def normalise(etag: str) -> str:
    return etag.strip().strip('"').lower()


def part_count(etag: str) -> int | None:
    _, dash, count = normalise(etag).partition("-")
    return int(count) if dash and count.isdigit() else None


def multipart_etag(part_md5s: list[bytes]) -> str:
    return f"{hashlib.md5(b''.join(part_md5s), usedforsecurity=False).hexdigest()}-{len(part_md5s)}"


def _candidate_part_sizes(size: int, parts: int) -> list[int]:
    """Part sizes, common ones first, that split `size` bytes into exactly `parts` parts."""
    fits = [p * MIB for p in COMMON_PART_SIZES_MIB if math.ceil(size / (p * MIB)) == parts]
    smallest = max(1, math.ceil(size / parts / MIB))
    largest = math.ceil(size / max(1, parts - 1) / MIB) if parts > 1 else smallest
    fits += [p * MIB for p in range(smallest, largest + 1) if math.ceil(size / (p * MIB)) == parts]
    unique = list(dict.fromkeys(fits))
    return unique[:MAX_CANDIDATES]


def matches_content(path: str, size: int, md5: str, etag: str) -> bool:
    """True when an object with this ETag holds these bytes, as far as the ETag can tell."""
    parts = part_count(etag)
    if parts is None:
        return normalise(etag) == md5
    wanted = normalise(etag)
    sizes = _candidate_part_sizes(size, parts)
    return any(candidate == wanted for candidate in _multipart_etags(path, sizes))


def _multipart_etags(path: str, part_sizes: list[int]) -> list[str]:
    """Multipart ETags of a file for several part sizes, in one read of it."""
    digests = [hashlib.md5(usedforsecurity=False) for _ in part_sizes]
    finished: list[list[bytes]] = [[] for _ in part_sizes]
    filled = [0 for _ in part_sizes]
    with open(path, "rb") as handle:
        while block := handle.read(READ_BLOCK):
            for i, part_size in enumerate(part_sizes):
                view = memoryview(block)
                while view:
                    take = min(len(view), part_size - filled[i])
                    digests[i].update(view[:take])
                    filled[i] += take
                    view = view[take:]
                    if filled[i] == part_size:
                        finished[i].append(digests[i].digest())
                        digests[i] = hashlib.md5(usedforsecurity=False)
                        filled[i] = 0
    return [
        multipart_etag(done + ([digest.digest()] if fill else []))
        for done, digest, fill in zip(finished, digests, filled, strict=True)
    ]
