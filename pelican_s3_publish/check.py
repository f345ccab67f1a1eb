"""`pelican-s3-publish --check`: whether a publish can work here, and how, without changing the site.

One line per item, in the order a publish meets them: credentials, endpoint,
bucket, permission to write and delete (a probe object, removed), what the
store does and what the publish does about it, versioning, folder keys, the
ACL, CloudFront and Cloudflare when configured. The first failure ends the check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .bucket import Capabilities
from .errors import PublishError
from .settings import Settings

OK, NOTE, FAIL = "ok  ", "note", "FAIL"

CONDITIONS = {
    "enforced": (OK, "enforced: a publisher working at the same time is stopped before it changes anything"),
    "refused": (NOTE, "refused: the manifest is checked before and read back after each write instead"),
    "ignored": (NOTE, "ignored: the manifest is checked before and read back after each write instead"),
}
DELETES = {
    "batch": (OK, "DeleteObjects accepted: up to 1,000 keys a request"),
    "batch-md5": (NOTE, "DeleteObjects needs Content-MD5: sent with it"),
    "single": (NOTE, "DeleteObjects refused: keys are deleted one at a time, concurrently"),
}


def _line(mark: str, item: str, what: str) -> str:
    return f"{mark}  {item}: {what}"


def check(settings: Settings, say: Callable[[str], None]) -> int:
    """Say each item as it is checked; 0 when a publish can work, 1 otherwise."""
    from .bucket import S3Bucket

    failed = False
    try:
        bucket = S3Bucket(settings)
        say(_line(OK, "credentials", bucket.whoami()))
        say(_line(OK, "endpoint", f"{bucket.where} (region {bucket.address.region})"))
        bucket.reach(settings.prefix)
        say(_line(OK, "bucket", f"{settings.bucket} can be listed"))
        found = bucket.know(None, settings.prefix)
        probed = f"allowed (a probe object under {settings.destination} was written and removed)"
        say(_line(OK, "write and delete", probed))
        for line in store_lines(found, settings):
            failed |= line.startswith(FAIL)
            say(line)
        versioning = bucket.keeps_versions()
        say(_line(OK if versioning else NOTE, "versioning", _versioning_words(versioning)))
        for line in _cdn_lines(settings):
            say(line)
    except PublishError as error:
        say(_line(FAIL, "check", str(error)))
        return 1
    return 1 if failed else 0


def store_lines(found: Capabilities, settings: Settings) -> Iterator[str]:
    """What the store does, and what a publish does about it."""
    for name, enforcement in (
        ("If-None-Match on writes", found.conditional_create),
        ("If-Match on writes", found.conditional_replace),
    ):
        condition_mark, condition_words = CONDITIONS[enforcement]
        yield _line(condition_mark, name, condition_words)
    if found.checksums:
        yield _line(OK, "checksums", "accepted: each body carries its SHA-256 for the store to check")
    else:
        yield _line(NOTE, "checksums", "not accepted: each body carries Content-MD5 instead")
    mark, words = DELETES[found.deletes]
    yield _line(mark, "deletes", words)
    if found.folder_keys:
        yield _line(OK, "folder keys", "kept with their bytes: S3_PUBLISH_STRIP_INDEX_HTML can be used")
    else:
        mark = FAIL if settings.strip_index_html else NOTE
        yield _line(mark, "folder keys", "kept as folders without bytes: S3_PUBLISH_STRIP_INDEX_HTML cannot be used")
    if settings.acl:
        yield _line(OK, "ACL", f"{settings.acl} accepted")
    for fallback in found.fallbacks():
        yield _line(NOTE, "publish", fallback)


def _versioning_words(on: bool) -> str:
    if on:
        return "on: --rollback can put back an earlier publish"
    return "off: --rollback is refused; turn versioning on to undo later publishes (README: Undo)"


def _cdn_lines(settings: Settings) -> Iterator[str]:
    from . import cdn

    for target in cdn.targets(settings):
        yield _line(OK, target.label, target.check())
