"""The one boundary to a store; nothing outside this package knows which library speaks to S3.

- `interface`: `Bucket`, the small interface a publish works against, and its value types;
- `capabilities`: what a store does, found by asking it (`probe`), kept in the manifest;
- `resolution` and `connections`: botocore's answers to where and how, and the connections built on them;
- `s3`: the real bucket, each request sent by the library that does it best, as the store allows;
- `failures`, `library_errors` and `retries`: what a failure means, from status and error code; retries;
- `memory`: the in-memory bucket for tests of logic.
"""

from typing import TYPE_CHECKING, Any

from .capabilities import Capabilities
from .interface import (
    EVERY_KEY,
    LISTING_PAGE,
    PLAIN,
    Bucket,
    BucketError,
    Head,
    KeyRange,
    Version,
    Write,
    WriteConflict,
)

if TYPE_CHECKING:
    from .memory import MemoryBucket
    from .s3 import S3Bucket

__all__ = [
    "EVERY_KEY",
    "LISTING_PAGE",
    "PLAIN",
    "Bucket",
    "BucketError",
    "Capabilities",
    "Head",
    "KeyRange",
    "MemoryBucket",
    "S3Bucket",
    "Version",
    "Write",
    "WriteConflict",
]


def __getattr__(name: str) -> Any:
    """The buckets themselves, loaded when first asked for: a publish that writes nothing works against
    the helper process's bucket, and its own process never loads the S3 one (a tenth of its imports)."""
    if name == "S3Bucket":
        from .s3 import S3Bucket

        return S3Bucket
    if name == "MemoryBucket":
        from .memory import MemoryBucket

        return MemoryBucket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
