"""What file is this, whatever its name: the fingerprint part of a file's identity.

The fingerprint is a hash of the file's first line, at most ``fingerprint_bytes`` bytes (as
Vector's ``checksum`` fingerprinter with ``lines = 1``). Because it never covers more than
the first line, it does not change as the file grows: a file shorter than
``fingerprint_bytes`` keeps its identity, and a restarted sidecar computes the same key. A
file without a complete first line (and shorter than the limit) has no fingerprint yet; it
has nothing to read either, so it simply waits. Device and inode (volume serial and file
index on Windows) complete the identity: two files with the same first line are still two
files, and a reused inode with new content is a new file.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO


def fingerprint_source(head: bytes, limit: int, *, allow_partial: bool = False) -> bytes | None:
    """The bytes the fingerprint covers, from the file's first bytes, or None if not yet known."""
    head = head[:limit]
    i = head.find(b"\n")
    if i != -1:
        return head[: i + 1]
    if len(head) >= limit or (allow_partial and head):
        return head
    return None


def fingerprint(source: bytes) -> str:
    """16 hex digits."""
    return hashlib.blake2b(source, digest_size=8).hexdigest()


def file_key(fp: str, dev: int, ino: int) -> str:
    """The identity the checkpoints are stored under: ``<fingerprint>-<dev hex>-<ino hex>``."""
    return f"{fp}-{dev:x}-{ino:x}"


def fingerprint_of_key(key: str) -> str:
    return key.split("-", 1)[0]


def read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (one seek + read: works on Windows too)."""
    f.seek(offset)
    return f.read(n) or b""
