"""Read positions shared by a file and its copies (copy+truncate, a move to another volume).

A copy has a new inode but the same first line and the same first bytes as its original, and
the same bytes up to where it was copied. Files whose fingerprint matches and whose first
``fingerprint_bytes`` agree share one read position, so the copy continues where the original
was read: its old lines are not sent twice and the lines only it holds are not lost. Each
position also remembers the key of the first file read with that start (``origin``): a copy's
lines are named after it, so they get the ids they had (or would have had) in the original.
Files that merely share a first line (a constant header) disagree in their first KiB and keep
separate positions.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sidecar.checkpoint import head_digest

_PER_FINGERPRINT = 4


@dataclass(slots=True)
class Entry:
    offset: int
    sample: bytes  # the first bytes (up to fingerprint_bytes) of a file read this run
    # Seeded from a checkpoint: (length, digest) of the first bytes instead of the bytes.
    digest: tuple[int, str] | None = None
    origin: str = ""  # the key of the original file (ids of the lines at these offsets)

    def matches(self, sample: bytes) -> bool:
        if self.sample or self.digest is None:
            return agree(self.sample, sample)
        n, d = self.digest
        return len(sample) >= n and head_digest(sample[:n]) == d


def agree(a: bytes, b: bytes) -> bool:
    """Do two files' first bytes agree as far as both go?"""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class Lineage:
    """fingerprint -> a few (offset, sample) entries, least recently used forgotten first."""

    def __init__(self, max_fingerprints: int = 1024) -> None:
        self._max = max_fingerprints
        self._by_fp: OrderedDict[str, list[Entry]] = OrderedDict()

    def seed(self, fp: str, offset: int, head_len: int, digest: str, origin: str = "") -> None:
        """Remember a checkpointed offset with the digest of its file's first bytes and the
        key its lines are named after."""
        entries = self._by_fp.setdefault(fp, [])
        for e in entries:
            if e.digest == (head_len, digest):
                e.offset = max(e.offset, offset)
                e.origin = e.origin or origin
                return
        entries.append(Entry(offset, b"", (head_len, digest), origin))
        del entries[:-_PER_FINGERPRINT]

    def find(self, fp: str, sample: bytes) -> Entry | None:
        for e in self._by_fp.get(fp, ()):
            if e.matches(sample):
                return e
        return None

    def forget(self, fp: str, sample: bytes) -> None:
        """Drop the positions of files with this start (their content was truncated)."""
        entries = self._by_fp.get(fp)
        if entries:
            entries[:] = [e for e in entries if not e.matches(sample)]

    def note(self, fp: str, sample: bytes, offset: int, origin: str = "") -> None:
        """A file with this start (named ``origin`` for ids) has been read up to ``offset``."""
        e = self.find(fp, sample)
        if e is None:
            entries = self._by_fp.setdefault(fp, [])
            entries.append(Entry(offset, sample, None, origin))
            del entries[:-_PER_FINGERPRINT]
        else:
            e.offset = max(e.offset, offset)
            e.origin = e.origin or origin
            if len(sample) > len(e.sample):
                e.sample = sample
                e.digest = None
        self._by_fp.move_to_end(fp)
        while len(self._by_fp) > self._max:
            self._by_fp.popitem(last=False)
