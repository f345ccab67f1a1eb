"""The one boundary to a store; nothing outside this package knows which library speaks to S3.

- `interface`: `Bucket`, the small interface a publish works against, and its value types;
- `capabilities`: what a store does, found by asking it (`probe`), kept in the manifest;
- `resolution` and `connections`: botocore's answers to where and how, and the connections built on them;
- `s3`: the real bucket, each request sent by the library that does it best, as the store allows;
- `failures`, `library_errors` and `retries`: what a failure means, from status and error code; retries;
- `memory`: the in-memory bucket for tests of logic.
"""

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
