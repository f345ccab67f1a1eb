"""What a store does with what we send, found by asking it (the probe), never from its name.

S3-compatible stores differ exactly where a publish makes its promises:
conditional writes (B2 refuses them, Garage ignores them), additional
checksums (B2, GCS's XML API and older clones refuse them), DeleteObjects
(some need Content-MD5, botocore now sends a CRC32), keys that end in '/'
(SeaweedFS and MinIO keep them as folders), the order of a listing (SeaweedFS
lists folder by folder: `a/b` before `a-b`, and after `a` skips `a/b`). What a probe found is kept in the
manifest with the endpoint it was found at, so a no-op asks nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

# What a store does with a condition: checks it (412 when it fails), refuses it (501), or ignores it (writes anyway).
Enforcement = Literal["enforced", "refused", "ignored"]
# How keys are deleted: DeleteObjects as botocore sends it, DeleteObjects with Content-MD5, or one at a time.
Deletes = Literal["batch", "batch-md5", "single"]
ENFORCEMENTS = get_args(Enforcement)
DELETES = get_args(Deletes)


@dataclass(frozen=True)
class Capabilities:
    """What one store did when asked. `where`: the bucket's address when it was asked; asked again elsewhere."""

    where: str
    conditional_create: Enforcement = "enforced"
    conditional_replace: Enforcement = "enforced"
    checksums: bool = True  # takes x-amz-checksum-* headers
    etag_is_md5: bool = True  # a plain PUT's ETag is the body's MD5, so a body can be checked by it
    deletes: Deletes = "batch"
    folder_keys: bool = True  # a key ending in '/' keeps its bytes
    ordered_listing: bool = True  # lists keys in byte order, StartAfter meaning every key greater
    acl: str | None = None  # the canned ACL the probe sent and the store accepted

    @property
    def conditional(self) -> bool:
        return self.conditional_create == "enforced" and self.conditional_replace == "enforced"

    def fallbacks(self) -> list[str]:
        """One sentence for each promise this store makes us keep another way; said once per publish."""
        said = []
        if not self.conditional:
            how = _condition_words(self.conditional_create, self.conditional_replace)
            said.append(
                f"this store {how}: a publisher working at the same time is not detected "
                "(the manifest is checked before and read back after each write)"
            )
        if not self.checksums:
            said.append("this store takes no additional checksums: bodies carry Content-MD5 instead")
        if self.deletes == "batch-md5":
            said.append("this store needs Content-MD5 on DeleteObjects: sent with it")
        if self.deletes == "single":
            said.append("this store refuses DeleteObjects: keys are deleted one at a time")
        return said

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: object) -> Capabilities | None:
        """None for anything that is not a whole record of this shape: the store is then asked again."""
        if not isinstance(document, dict) or set(document) != {f.name for f in fields(cls)}:
            return None
        valid = (
            isinstance(document["where"], str)
            and document["conditional_create"] in ENFORCEMENTS
            and document["conditional_replace"] in ENFORCEMENTS
            and document["deletes"] in DELETES
            and all(
                isinstance(document[name], bool)
                for name in ("checksums", "etag_is_md5", "folder_keys", "ordered_listing")
            )
            and (document["acl"] is None or isinstance(document["acl"], str))
        )
        return cls(**document) if valid else None


VERBS = {"enforced": "enforces", "refused": "refuses", "ignored": "ignores"}


def _condition_words(create: Enforcement, replace_: Enforcement) -> str:
    if create == replace_:
        return f"{VERBS[create]} conditional writes"
    return f"{VERBS[create]} If-None-Match and {VERBS[replace_]} If-Match"
