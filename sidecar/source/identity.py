"""Which known file is this, and where does reading start: file identity in one place.

**Fingerprint.** A hash of the file's first line, at most ``fingerprint_bytes`` bytes (as
Vector's ``checksum`` fingerprinter with ``lines = 1``). It never covers more than the first
line, so it does not change as the file grows: a file shorter than ``fingerprint_bytes`` keeps
its identity, and a restarted sidecar computes the same key. A file without a complete first
line (and shorter than the limit) has no fingerprint yet; it has nothing to read either, so it
waits. Device and inode (volume serial and file index on Windows) complete the key: two files
with the same first line are still two files, and a reused inode with new content is a new file.

**Lineage.** A copy (copy+truncate, a move to another volume) has a new inode but the same
first line and the same first bytes as its original, and the same bytes up to where it was
copied. Files whose fingerprint matches and whose first ``fingerprint_bytes`` agree share one
read position, so the copy continues where the original was read: its old lines are not sent
twice and the lines only it holds are not lost. Each position also remembers the key of the
first file read with that start (``origin``): a copy's lines are named after it, so they get
the ids they had (or would have had) in the original. Files that merely share a first line (a
constant header) disagree in their first KiB and keep separate positions.

**Decision.** :func:`identify` answers "which known file is this, and where do I start?" as a
pure function of what it is given: the file's first bytes, device/inode and size, the known
files (checkpoints, read only) and the lineage. The tailer applies the answer; what it learns
for the checkpoints goes back as a :class:`Discovery` that the engine records (only the engine
moves checkpoints).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass
from typing import Literal, Protocol

from obskit.schema.encoding import Encoding, sniff

# -- fingerprint -------------------------------------------------------------------------------


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
    """The identity checkpoints are stored under: ``<fingerprint>-<dev hex>-<ino hex>``."""
    return f"{fp}-{dev:x}-{ino:x}"


def fingerprint_of_key(key: str) -> str:
    return key.split("-", 1)[0]


def devino_of_key(key: str) -> tuple[int, int] | None:
    """The device and inode a key was made with (None for a key of another shape)."""
    parts = key.split("-")
    if len(parts) != 3:
        return None
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


def head_digest(head: bytes) -> str:
    """The digest stored for a file's first bytes."""
    return hashlib.blake2b(head, digest_size=16).hexdigest()


# -- what the checkpoints know (read only) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """A checkpointed file: acknowledged ``offset``, ``size`` when last seen (0: unknown),
    ``head`` = (length, digest) of its first bytes (None: not recorded), ``origin`` = the key
    its line ids use (itself for an original), ``path`` where it was last seen."""

    offset: int
    size: int
    head: tuple[int, str] | None
    origin: str
    path: str


class KnownFiles(Protocol):
    """The checkpoint store as the source sees it: read only."""

    def file_keys(self) -> list[str]: ...
    def known(self, file_key: str) -> Known | None: ...


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the tailer learnt about a file, for the engine to record in the checkpoints.

    ``head``: (length, digest) of its first bytes as far as they go now. ``origin``: the key
    its line ids use when it is a copy (empty for an original). ``advance_to``: record this
    offset now, before any acknowledgement: where a new original starts (so a copy of it found
    after a crash is still recognised as its), or the end of a gone file whose unread rest was
    reported lost (so it is not reported again). ``size``: its size when last seen.
    """

    key: str
    path: str
    head: tuple[int, str] | None = None
    origin: str = ""
    advance_to: int | None = None
    size: int | None = None


# -- lineage -----------------------------------------------------------------------------------

_PER_FINGERPRINT = 4


def agree(a: bytes, b: bytes) -> bool:
    """Do two files' first bytes agree as far as both go?"""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


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


class Lineage:
    """fingerprint -> a few (offset, sample) entries, least recently used forgotten first."""

    def __init__(self, max_fingerprints: int = 1024) -> None:
        self._max = max_fingerprints
        self._by_fp: OrderedDict[str, list[Entry]] = OrderedDict()

    @classmethod
    def from_known(cls, known: KnownFiles) -> Lineage:
        """Seeded from checkpoints, only where the first bytes were recorded: a file that
        merely shares a first line (a constant header) must never inherit an offset."""
        lin = cls()
        for key in known.file_keys():
            k = known.known(key)
            if k is not None and k.head is not None:
                lin.seed(fingerprint_of_key(key), k.offset, *k.head, k.origin or key)
        return lin

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


# -- the decision --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """What the tailer read of a newly seen file: its first ``fingerprint_bytes`` bytes (fewer
    when the file is shorter), device/inode and size. ``stale_partial``: its first line has no
    newline and the file has not changed for ``partial_line_timeout``: identify it anyway."""

    dev: int
    ino: int
    size: int
    head: bytes
    stale_partial: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """No complete first line yet: nothing to identify, nothing to read."""


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A gzip or UTF-32 file: never tailed. ``what`` names the format."""

    what: str


@dataclass(frozen=True, slots=True)
class Tracked:
    """Already followed under ``key`` (a hard link, or the scan and the open disagreed on its
    identity): never start it over, that would send its lines again."""

    key: str


StartWhy = Literal["checkpoint", "truncated_while_away", "copy", "new", "end"]


@dataclass(frozen=True, slots=True)
class Start:
    """Follow the file as ``key``, from ``offset`` (None: after its last complete line,
    ``start_at: end``), naming its lines after ``origin``.

    ``why``: ``checkpoint`` (resume), ``truncated_while_away`` (its checkpoint, ``saved``, is
    past its end: read from 0), ``copy`` (continues where a file with the same start was read),
    ``new`` or ``end``. ``record_start``: an original without a checkpoint, whose start the
    engine records at once (see :class:`Discovery`)."""

    key: str
    fp: str
    fp_source: bytes
    enc: Encoding
    offset: int | None
    origin: str
    why: StartWhy
    saved: int | None = None

    @property
    def record_start(self) -> bool:
        return self.why in ("new", "end") or (self.why == "copy" and self.origin == self.key)


Decision = Wait | Unsupported | Tracked | Start


def identify(
    probe: Probe,
    *,
    limit: int,
    known: KnownFiles,
    lineage: Lineage,
    tracked: Container[str],
    at_end: bool,
) -> Decision:
    """Which known file is this, and where does reading start?

    ``limit`` is ``fingerprint_bytes``; ``tracked`` the keys already followed; ``at_end``
    whether a file without a checkpoint or lineage starts at its end (``start_at: end`` on the
    first poll). Reads nothing and changes nothing."""
    src = fingerprint_source(probe.head, limit, allow_partial=probe.stale_partial)
    if src is None:
        return Wait()
    enc = sniff(probe.head[:4])
    if enc is Encoding.GZIP:
        return Unsupported("gzip-compressed")
    if enc is Encoding.UTF32:
        return Unsupported("UTF-32")
    fp = fingerprint(src)
    key = file_key(fp, probe.dev, probe.ino)
    if key in tracked:
        return Tracked(key)
    k = known.known(key)
    if k is not None:
        origin = k.origin or key
        if k.offset > probe.size:
            # Its remembered read position is past the end now; it would skip the file.
            return Start(key, fp, src, enc, 0, origin, "truncated_while_away", k.offset)
        return Start(key, fp, src, enc, k.offset, origin, "checkpoint")
    lin = lineage.find(fp, probe.head)
    if lin is not None:
        # A copy of a file already read (copy+truncate): continue where that was read,
        # naming the lines after it so they keep their ids.
        return Start(key, fp, src, enc, lin.offset, lin.origin or key, "copy")
    if at_end:
        return Start(key, fp, src, enc, None, key, "end")
    return Start(key, fp, src, enc, 0, key, "new")
