"""Read positions shared by a file and its copies (copy+truncate, a move to another volume).

A copy has a new inode but the same first line and the same first bytes as its original, and
the same bytes up to where it was copied. Files whose fingerprint matches and whose first
``fingerprint_bytes`` agree share one read position, so the copy continues where the original
was read: its old lines are not sent twice and the lines only it holds are not lost. Files
that merely share a first line (a constant header) disagree in their first KiB and keep
separate positions.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

_PER_FINGERPRINT = 4


@dataclass(slots=True)
class Entry:
    offset: int
    sample: bytes  # the first bytes (up to fingerprint_bytes); b"" when seeded from checkpoints


def agree(a: bytes, b: bytes) -> bool:
    """Do two files' first bytes agree as far as both go?"""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


class Lineage:
    """fingerprint -> a few (offset, sample) entries, least recently used forgotten first."""

    def __init__(self, max_fingerprints: int = 1024) -> None:
        self._max = max_fingerprints
        self._by_fp: OrderedDict[str, list[Entry]] = OrderedDict()

    def seed(self, fp: str, offset: int) -> None:
        """Remember a checkpointed offset (no sample: matches any file with this first line)."""
        entries = self._by_fp.setdefault(fp, [])
        for e in entries:
            if not e.sample:
                e.offset = max(e.offset, offset)
                return
        entries.append(Entry(offset, b""))

    def find(self, fp: str, sample: bytes) -> Entry | None:
        for e in self._by_fp.get(fp, ()):
            if agree(e.sample, sample):
                return e
        return None

    def note(self, fp: str, sample: bytes, offset: int) -> None:
        """A file with this start has been read up to ``offset``."""
        e = self.find(fp, sample)
        if e is None:
            entries = self._by_fp.setdefault(fp, [])
            entries.append(Entry(offset, sample))
            del entries[:-_PER_FINGERPRINT]
        else:
            e.offset = max(e.offset, offset)
            if len(sample) > len(e.sample):
                e.sample = sample
        self._by_fp.move_to_end(fp)
        while len(self._by_fp) > self._max:
            self._by_fp.popitem(last=False)
