"""A durable spool per sink: the lines a sink has not delivered yet, on disk, in order.

The engine appends each batch to the spool of every spooled sink as it reads it; once
appended, the batch counts as acknowledged for that sink, so checkpoints move and the log
files may be rotated or deleted by the service while the backend is down. The sink's worker
reads the spool in order at its own pace and acknowledges what the backend accepted, which
moves the spool's read position (its *ledger*) and frees whole segments.

On disk, in the spool's folder (``<checkpoint.dir>/spool/<sink name>`` by default):

- ``<first record number, 20 digits>.seg``: segment files of records appended back to back.
  A record is a 40-byte header (magic ``OKSR``, payload length, CRC-32 of the rest of the
  header and the payload, record number, lines so far in the spool's life, lines in the
  record, time appended) and the payload (:func:`encode_batch`). Records are numbered without
  gaps across segments.
- ``ledger``: two 64-byte slots written alternately, each with a sequence number and a CRC,
  holding the position after the last delivered record. A torn ledger write leaves the
  other slot; with neither valid, reading starts at the oldest segment (lines may be sent
  twice, never lost).

Crash safety: records are written with one ``write`` each, the reader only reads what the
writer has finished, and on start the newest segment is scanned and cut after its last whole
record (a torn tail from ``kill -9`` or a power cut is never shipped). Older segments are
not scanned (start-up stays fast whatever the size); a damaged record there is found when
read, counted, logged, and the reader resynchronises on the next valid record.

Durability (``fsync``): ``interval`` (default) syncs the spool before every checkpoint save,
so a checkpoint never passes lines that a power cut could take from the spool; ``always``
syncs every append (slower, for disks that lie less than page caches); ``never`` leaves it
to the operating system (safe against a process crash, not a power cut).

Memory stays flat whatever the size: the spool keeps counters and the open segment's
position, never an index of records.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgspec

from obskit._atomic import fsync_dir

#: Record header: magic, payload length, crc32, record number, cumulative lines (this one
#: included), lines in this record, time appended (Unix seconds).
_HEADER = struct.Struct("<4sIIQQId")
_MAGIC = b"OKSR"
HEADER_SIZE = _HEADER.size  # 40
_SEG_SUFFIX = ".seg"
#: Ledger slot: magic, version, write sequence, next record number, segment holding it,
#: offset there, cumulative lines delivered, crc32 of the preceding fields.
_LEDGER = struct.Struct("<4sIQQQQQI")
_LEDGER_MAGIC = b"OKLG"
_LEDGER_SLOT = 64
FsyncPolicy = Literal["interval", "always", "never"]
FullPolicy = Literal["block", "drop_oldest"]


class SpoolFull(Exception):
    """The spool is at ``max_bytes`` and its policy is ``block`` (or nothing can be dropped):
    the batch stays with the engine, and reading pauses once memory is used up."""


class SpoolError(Exception):
    """The spool folder cannot be used (names the folder and the reason)."""


@dataclass(slots=True, frozen=True)
class Location:
    """Where a record is: its number, the first record number of its segment, and its byte
    range there; ``cum`` is the spool's line count up to and including it."""

    no: int
    seg: int
    start: int
    end: int
    cum: int
    lines: int
    created: float


@dataclass(slots=True)
class SpoolStats:
    """Backlog of a spool: records and lines not delivered, bytes on disk, when the oldest
    undelivered record was appended (None when empty), lines dropped because it was full
    (``drop_oldest``), damaged bytes skipped and the lines known to be in them."""

    records: int
    lines: int
    nbytes: int
    oldest: float | None
    dropped_lines: int
    corrupt_bytes: int
    corrupt_lines: int


def _seg_name(first: int) -> str:
    return f"{first:020d}{_SEG_SUFFIX}"


def _crc(header_tail: bytes, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(header_tail))


def _record_header(no: int, cum: int, lines: int, created: float, parts: list[bytes]) -> bytes:
    tail = struct.pack("<QQId", no, cum, lines, created)
    crc = zlib.crc32(tail)
    for part in parts:
        crc = zlib.crc32(part, crc)
    return _HEADER.pack(_MAGIC, sum(map(len, parts)), crc, no, cum, lines, created)


class _Header:
    __slots__ = ("crc", "created", "cum", "length", "lines", "no")

    def __init__(self, raw: bytes) -> None:
        magic, self.length, self.crc, self.no, self.cum, self.lines, self.created = _HEADER.unpack(
            raw
        )
        if magic != _MAGIC:
            raise ValueError("bad magic")

    def valid(self, payload: bytes | memoryview) -> bool:
        tail = struct.pack("<QQId", self.no, self.cum, self.lines, self.created)
        return bool(_crc(tail, payload) == self.crc)


def _walk(
    path: Path, size: int | None = None, *, payloads: bool = True
) -> Iterator[tuple[int, _Header, bytes]]:
    """``(offset, header, payload)`` of a segment's whole records from its start, in order,
    up to ``size`` bytes; it stops at the first record that is torn or (with ``payloads``)
    fails its checksum. Without ``payloads`` only headers are read (payload ``b""``)."""
    with open(path, "rb") as f:
        off = 0
        while size is None or off + HEADER_SIZE <= size:
            raw = _read_exact(f, HEADER_SIZE)
            if len(raw) < HEADER_SIZE:
                return
            try:
                h = _Header(raw)
            except (ValueError, struct.error):
                return
            end = off + HEADER_SIZE + h.length
            if size is not None and end > size:
                return
            payload = b""
            if payloads:
                payload = _read_exact(f, h.length)
                if len(payload) < h.length or not h.valid(payload):
                    return
            else:
                f.seek(end)
            yield off, h, payload
            off = end


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


class Spool:
    """One sink's spool. One writer thread (the engine: :meth:`append`, :meth:`sync`) and
    one reader thread (the sink's worker: :meth:`read`, :meth:`ack`); both may call
    :meth:`stats`."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int = 32 * 1024 * 1024,
        fsync: FsyncPolicy = "interval",
        when_full: FullPolicy = "block",
        opener: Callable[[str], BinaryIO] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4 or 4096))
        self.fsync = fsync
        self.when_full = when_full
        self._open_read = opener or _open_shared
        self._clock = clock
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Segments on disk: first record number -> size in bytes (committed).
        self._segs: dict[int, int] = {}
        self._order: deque[int] = deque()  # segment first numbers, oldest first
        # Writer state.
        self._fd: int | None = None
        self._wseg = 0
        self._next_no = 0
        self._cum = 0
        self._broken = False  # the open segment has an uncut partial record: start anew
        # Reader state (the position after the last delivered record).
        self._rno = 0
        self._rseg = 0
        self._roff = 0
        self._rcum = 0
        self._rfile: BinaryIO | None = None
        self._rfile_seg = -1
        self._oldest: float | None = None
        self._ledger_fd: int | None = None
        self._ledger_seq = 0
        self._ledger_dirty = False
        self.dropped_lines = 0
        self.corrupt_bytes = 0
        self.corrupt_lines = 0
        self.warnings: list[str] = []
        self._closed = False
        self._ledger_cum_hint = 0

    # -- opening and recovery -------------------------------------------------------------
    def open(self) -> list[str]:
        """Create or recover the spool; returns warnings (torn tail cut, ledger lost,
        leftover segments removed). Raises :class:`SpoolError` when the folder is unusable."""
        warnings: list[str] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            names = sorted(p.name for p in self.dir.iterdir() if p.name.endswith(_SEG_SUFFIX))
        except OSError as exc:
            raise SpoolError(f"spool folder {self.dir}: {exc.strerror or exc}") from exc
        for name in names:
            stem = name[: -len(_SEG_SUFFIX)]
            if not stem.isdigit():
                warnings.append(f"spool {self.dir}: ignoring unexpected file {name}")
                continue
            first = int(stem)
            try:
                self._segs[first] = (self.dir / name).stat().st_size
            except OSError as exc:
                raise SpoolError(f"spool segment {self.dir / name}: {exc.strerror}") from exc
            self._order.append(first)
        ledger = self._load_ledger(warnings)
        if self._order:
            self._recover_tail(warnings)
        else:
            self._next_no = ledger[0] if ledger else 0
            self._cum = ledger[3] if ledger else 0
        self._place_reader(ledger, warnings)
        self._open_writer()
        self._save_ledger()
        self.warnings = warnings
        return warnings

    def _recover_tail(self, warnings: list[str]) -> None:
        """Scan the newest segment; cut it after its last whole record."""
        last = self._order[-1]
        path = self.dir / _seg_name(last)
        good, no, cum = 0, last, None
        for off, h, _ in _walk(path):
            if h.no != no:
                break
            good = off + HEADER_SIZE + h.length
            no, cum = h.no + 1, h.cum
        size = self._segs[last]
        if good < size:
            with open(path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
            warnings.append(
                f"spool {self.dir}: cut {size - good} bytes of an incomplete record at the"
                f" end of {path.name} (a crash while appending; those lines were never"
                " acknowledged and are read again from the log files)"
            )
            self._segs[last] = good
        self._next_no = no
        if cum is None:
            cum = self._cum_before(last)
        self._cum = cum

    def _cum_before(self, first: int) -> int:
        """Lines appended before segment ``first``: from the previous segment's last record
        (its first record's header and a walk), or 0 for the first segment."""
        prev = [s for s in self._order if s < first]
        if not prev:
            return self._ledger_cum_hint
        # The previous segment ends just before ``first``; walk its headers once.
        cum = 0
        with contextlib.suppress(OSError):
            for _, h, _ in _walk(self.dir / _seg_name(prev[-1]), payloads=False):
                cum = h.cum
        return cum

    def _place_reader(self, ledger: tuple[int, int, int, int] | None, warnings: list[str]) -> None:
        """Put the reader where the ledger says, checked against the segments on disk."""
        pos: tuple[int, int, int, int] | None = None
        if ledger is not None:
            no, seg, off, cum = ledger
            later = [s for s in self._order if s > seg]
            if no >= self._next_no:
                pos = (
                    self._next_no,
                    self._wseg_hint(),
                    self._segs.get(self._wseg_hint(), 0),
                    self._cum,
                )
            elif seg in self._segs and off <= self._segs[seg]:
                pos = ledger
            elif later and later[0] <= no:
                # The ledger's segment was freed just before a crash: go on at the next one.
                pos = (later[0] if later[0] > no else no, later[0], 0, cum)
            else:
                warnings.append(
                    f"spool {self.dir}: the ledger does not match the segments on disk;"
                    " reading from the oldest segment (lines may be sent twice)"
                )
        if pos is None:
            oldest = self._order[0] if self._order else self._next_no
            pos = (oldest, oldest, 0, self._first_cum_before(oldest))
        self._rno, self._rseg, self._roff, self._rcum = pos
        # Segments wholly before the reader were delivered (a crash between the ledger write
        # and their removal): remove them now.
        for s in list(self._order):
            if s < self._rseg:
                self._remove_segment(s)
        self._oldest = None

    def _wseg_hint(self) -> int:
        return self._order[-1] if self._order else self._next_no

    def _first_cum_before(self, seg: int) -> int:
        if seg not in self._segs:
            return self._cum
        try:
            with open(self.dir / _seg_name(seg), "rb") as f:
                raw = _read_exact(f, HEADER_SIZE)
            h = _Header(raw)
            return int(h.cum - h.lines)
        except (OSError, ValueError, struct.error):
            return self._cum

    def _peek_created(self) -> float | None:
        """When the next undelivered record was appended (one header read)."""
        if self._rno >= self._next_no:
            return None
        seg, off = self._rseg, self._roff
        if off >= self._segs.get(seg, 0):
            later = [s for s in self._order if s > seg]
            if not later:
                return None
            seg, off = later[0], 0
        try:
            with open(self.dir / _seg_name(seg), "rb") as f:
                f.seek(off)
                return float(_Header(_read_exact(f, HEADER_SIZE)).created)
        except (OSError, ValueError, struct.error):
            return None

    def _open_writer(self) -> None:
        if self._order and not self._broken:
            seg = self._order[-1]
            if self._segs[seg] < self.segment_bytes:
                self._fd = os.open(self.dir / _seg_name(seg), os.O_WRONLY | os.O_APPEND | _O_BINARY)
                self._wseg = seg
                return
        self._new_segment()

    def _new_segment(self) -> None:
        if self._fd is not None:
            if self.fsync != "never":
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        first = self._next_no
        path = self.dir / _seg_name(first)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _O_BINARY, 0o600)
        with self._lock:
            if first in self._segs:  # an empty segment of the same number (records cut)
                os.ftruncate(fd, 0)
            else:
                self._order.append(first)
            self._segs[first] = 0
            self._fd = fd
            self._wseg = first
            self._broken = False
        if self.fsync != "never":
            with contextlib.suppress(OSError):
                fsync_dir(self.dir)

    # -- the ledger -----------------------------------------------------------------------
    def _load_ledger(self, warnings: list[str]) -> tuple[int, int, int, int] | None:
        path = self.dir / "ledger"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"spool ledger {path}: {exc.strerror}") from exc
        best: tuple[int, tuple[int, int, int, int]] | None = None
        for slot in range(2):
            chunk = raw[slot * _LEDGER_SLOT : slot * _LEDGER_SLOT + _LEDGER.size]
            if len(chunk) < _LEDGER.size:
                continue
            magic, version, seq, no, seg, off, cum, crc = _LEDGER.unpack(chunk)
            if magic != _LEDGER_MAGIC or version != 1:
                continue
            if zlib.crc32(chunk[: _LEDGER.size - 4]) != crc:
                continue
            if best is None or seq > best[0]:
                best = (seq, (no, seg, off, cum))
        if best is None:
            if raw:
                warnings.append(
                    f"spool {self.dir}: the ledger is unreadable; reading from the oldest"
                    " segment (lines may be sent twice)"
                )
            return None
        self._ledger_seq = best[0]
        self._ledger_cum_hint = best[1][3]
        return best[1]

    def _save_ledger(self) -> None:
        if self._ledger_fd is None:
            self._ledger_fd = os.open(
                self.dir / "ledger", os.O_RDWR | os.O_CREAT | _O_BINARY, 0o600
            )
        self._ledger_seq += 1
        body = _LEDGER.pack(
            _LEDGER_MAGIC,
            1,
            self._ledger_seq,
            self._rno,
            self._rseg,
            self._roff,
            self._rcum,
            0,
        )[: _LEDGER.size - 4]
        slot = body + struct.pack("<I", zlib.crc32(body))
        _pwrite(self._ledger_fd, slot.ljust(_LEDGER_SLOT, b"\0"), (self._ledger_seq % 2) * 64)
        self._ledger_dirty = True

    # -- the writer side ------------------------------------------------------------------
    def append(self, payload: bytes | list[bytes], lines: int) -> Location:
        """Append one record (its payload, or the parts of it); returns where it is. Raises
        :class:`SpoolFull` (policy ``block``, or nothing left to drop) or ``OSError`` (the
        record is then not in the spool: a partial write is cut off)."""
        parts = [payload] if isinstance(payload, bytes) else payload
        rec_len = HEADER_SIZE + sum(map(len, parts))
        with self._lock:
            if self._closed:
                raise SpoolError(f"spool {self.dir} is closed")
            while self._size_locked() + rec_len > self.max_bytes:
                if self.when_full != "drop_oldest" or not self._drop_oldest_locked():
                    raise SpoolFull(
                        f"spool {self.dir} is full ({self._size_locked()} of"
                        f" {self.max_bytes} bytes)"
                    )
            no, cum = self._next_no, self._cum + lines
        used = self._segs.get(self._wseg, 0)
        if self._fd is None or self._broken or (used > 0 and used + rec_len > self.segment_bytes):
            self._new_segment()
        assert self._fd is not None
        created = self._clock()
        header = _record_header(no, cum, lines, created, parts)
        start = self._segs[self._wseg]
        try:
            _write_all(self._fd, [header, *parts])
            if self.fsync == "always":
                os.fsync(self._fd)
        except OSError:
            # Take back what part of the record reached the file; if even that fails the
            # segment ends in a torn record, so the next append starts a new segment and
            # the reader skips the torn one (it was never acknowledged).
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._broken = True
            raise
        loc = Location(no, self._wseg, start, start + rec_len, cum, lines, created)
        with self._cond:
            self._segs[self._wseg] = loc.end
            self._next_no = no + 1
            self._cum = cum
            if self._rno == no:
                self._oldest = created
            self._cond.notify_all()
        return loc

    def sync(self) -> None:
        """Make every appended record and the ledger durable (``fsync``), unless the policy
        is ``never``. Called by the engine before it saves checkpoints."""
        if self.fsync == "never":
            return
        if self._fd is not None:
            os.fsync(self._fd)
        with self._lock:
            fd = self._ledger_fd if self._ledger_dirty else None
            self._ledger_dirty = False
        if fd is not None:
            os.fsync(fd)

    def _size_locked(self) -> int:
        return sum(self._segs.values())

    def _drop_oldest_locked(self) -> bool:
        """Remove the oldest segment (never the one being written); count its undelivered
        lines as dropped. False when there is nothing to drop."""
        if len(self._order) < 2:
            return False
        victim, nxt = self._order[0], self._order[1]
        cum_end = self._first_cum_before(nxt)
        lost = max(0, cum_end - max(self._rcum, self._first_cum_before(victim)))
        self.dropped_lines += lost
        if self._rseg == victim:
            self._rno, self._rseg, self._roff, self._rcum = nxt, nxt, 0, cum_end
        self._remove_segment(victim)
        self._oldest = None  # unknown until the reader reads again
        return True

    def _remove_segment(self, first: int) -> None:
        if self._rfile is not None and self._rfile_seg == first:
            self._rfile.close()
            self._rfile, self._rfile_seg = None, -1
        with contextlib.suppress(FileNotFoundError):
            (self.dir / _seg_name(first)).unlink()
        self._segs.pop(first, None)
        with contextlib.suppress(ValueError):
            self._order.remove(first)

    # -- the reader side ------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        """Wait until a record is there to read; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._rno < self._next_no, timeout)

    @property
    def next_to_read(self) -> int:
        """Number of the next record the reader needs."""
        return self._rno

    def read(self) -> tuple[Location, bytes] | None:
        """The next undelivered record (without acknowledging it), or None when there is
        none. A damaged record is skipped (counted in ``corrupt_bytes``, with a warning)."""
        with self._lock:
            while True:
                if self._rno >= self._next_no:
                    return None
                seg, off = self._rseg, self._roff
                size = self._segs.get(seg)
                if size is None or off >= size:
                    later = [s for s in self._order if s > seg]
                    if not later:
                        return None
                    self._rseg, self._roff = later[0], 0
                    if later[0] > self._rno:  # records between were dropped or lost
                        self._rno = later[0]
                    continue
                got = self._read_at(seg, off, size)
                if got is not None:
                    return got

    def _read_at(self, seg: int, off: int, size: int) -> tuple[Location, bytes] | None:
        f = self._reader_file(seg)
        f.seek(off)
        raw = _read_exact(f, HEADER_SIZE)
        try:
            h = _Header(raw)
            payload = _read_exact(f, h.length) if off + HEADER_SIZE + h.length <= size else b""
            ok = len(payload) == h.length and h.valid(payload) and h.no >= self._rno
        except (ValueError, struct.error):
            ok = False
        if not ok:
            self._resync(f, seg, off, size)
            return None
        loc = Location(h.no, seg, off, off + HEADER_SIZE + h.length, h.cum, h.lines, h.created)
        if h.no > self._rno:  # records before it were damaged or dropped
            self._rno = h.no
        self._oldest = h.created
        return loc, payload

    def _resync(self, f: BinaryIO, seg: int, off: int, size: int) -> None:
        """Skip a damaged record: find the next valid one in this segment, else its end."""
        f.seek(off + 1)
        rest = _read_exact(f, size - off - 1)
        pos = 0
        new_off = size
        while True:
            i = rest.find(_MAGIC, pos)
            if i < 0 or i + HEADER_SIZE > len(rest):
                break
            try:
                h = _Header(rest[i : i + HEADER_SIZE])
                body = rest[i + HEADER_SIZE : i + HEADER_SIZE + h.length]
                if len(body) == h.length and h.valid(body) and h.no >= self._rno:
                    new_off = off + 1 + i
                    break
            except (ValueError, struct.error):
                pass
            pos = i + 1
        skipped = new_off - off
        self.corrupt_bytes += skipped
        self.warnings.append(
            f"spool {self.dir}: skipped {skipped} damaged bytes in {_seg_name(seg)} at offset"
            f" {off} (the lines in them are lost; the rest of the spool is intact)"
        )
        self._roff = new_off

    def _reader_file(self, seg: int) -> BinaryIO:
        if self._rfile is None or self._rfile_seg != seg:
            if self._rfile is not None:
                self._rfile.close()
            self._rfile = self._open_read(str(self.dir / _seg_name(seg)))
            self._rfile_seg = seg
        return self._rfile

    def ack(self, loc: Location) -> None:
        """The record at ``loc`` (and every one before it) was delivered: move the ledger,
        free segments the reader has left."""
        with self._lock:
            if loc.no < self._rno:
                return  # dropped meanwhile, or acknowledged twice
            self._rno, self._rseg, self._roff, self._rcum = loc.no + 1, loc.seg, loc.end, loc.cum
            for s in list(self._order):
                if s < loc.seg:
                    self._remove_segment(s)
            if loc.end >= self._segs.get(loc.seg, 0) and loc.seg != self._wseg:
                later = [s for s in self._order if s > loc.seg]
                self._remove_segment(loc.seg)
                if later:
                    self._rseg, self._roff = later[0], 0
            self._oldest = None
            self._save_ledger()

    def skip(self, loc: Location, why: str) -> None:
        """Give up on the record at ``loc`` (it cannot be decoded): count its lines as lost,
        warn, and move past it."""
        with self._lock:
            self.corrupt_bytes += loc.end - loc.start
            self.corrupt_lines += loc.lines
            self.warnings.append(f"spool {self.dir}: {why}; its {loc.lines} lines are lost")
        self.ack(loc)

    @property
    def next_no(self) -> int:
        """The number the next appended record will get."""
        with self._lock:
            return self._next_no

    def scan(self, start: int) -> list[tuple[Location, bytes]]:
        """Records numbered ``start`` or later, still in the spool (delivered or not), read
        at start-up only: the engine recovers what was appended after its last checkpoint
        save. Damaged records are left out (the reader reports them when it meets them)."""
        out: list[tuple[Location, bytes]] = []
        segs = [s for s in self._order if s <= start][-1:] + [s for s in self._order if s > start]
        for seg in segs:
            with contextlib.suppress(OSError):
                for off, h, payload in _walk(self.dir / _seg_name(seg), self._segs.get(seg, 0)):
                    if h.no >= start:
                        end = off + HEADER_SIZE + h.length
                        out.append(
                            (Location(h.no, seg, off, end, h.cum, h.lines, h.created), payload)
                        )
        return out

    # -- status and shutdown --------------------------------------------------------------
    def stats(self) -> SpoolStats:
        """The backlog now."""
        with self._lock:
            if self._oldest is None and self._rno < self._next_no:
                self._oldest = self._peek_created()
            return SpoolStats(
                records=self._next_no - self._rno,
                lines=self._cum - self._rcum,
                nbytes=self._size_locked(),
                oldest=self._oldest,
                dropped_lines=self.dropped_lines,
                corrupt_bytes=self.corrupt_bytes,
                corrupt_lines=self.corrupt_lines,
            )

    def take_warnings(self) -> list[str]:
        """Warnings met since the last call (damaged records skipped)."""
        with self._lock:
            out, self.warnings = self.warnings, []
            return out

    def close(self) -> None:
        """Sync (unless ``never``) and close the files."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()
        for fd in (self._fd, self._ledger_fd):
            if fd is not None:
                if self.fsync != "never":
                    with contextlib.suppress(OSError):
                        os.fsync(fd)
                os.close(fd)
        self._fd = self._ledger_fd = None
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None


_O_BINARY: int = getattr(os, "O_BINARY", 0)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` back to back: one ``writev`` (no joined copy) where there is one."""
    if hasattr(os, "writev"):
        views = [memoryview(p) for p in parts if p]
        while views:
            n = os.writev(fd, views)
            while views and n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            if n:
                views[0] = views[0][n:]
        return
    view = memoryview(b"".join(parts))  # Windows has no writev
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    if hasattr(os, "pwrite"):
        os.pwrite(fd, data, offset)
        return
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pwrite; one thread writes the ledger
    _write_all(fd, [data])


def _open_shared(path: str) -> BinaryIO:
    """Open a segment for reading so that it can still be deleted while open (Windows)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        from obskit._winfile import open_shared

        return open_shared(path)
    return open(path, "rb")


def inspect(directory: Path) -> SpoolStats:
    """A spool's backlog, read without changing anything (safe while a sidecar writes to
    it): the ledger, the segment sizes and two record headers."""
    directory = Path(directory)
    firsts = sorted(
        int(p.name[: -len(_SEG_SUFFIX)])
        for p in directory.glob("*" + _SEG_SUFFIX)
        if p.name[: -len(_SEG_SUFFIX)].isdigit()
    )
    nbytes = sum((directory / _seg_name(f)).stat().st_size for f in firsts)
    probe = Spool(directory, max_bytes=1 << 62)
    ledger = probe._load_ledger([])
    last_no, last_cum = -1, 0
    if firsts:
        for _, h, _ in _walk(directory / _seg_name(firsts[-1])):
            last_no, last_cum = h.no, h.cum
    if ledger is not None:
        no, seg, off, cum = ledger
    else:
        no = seg = firsts[0] if firsts else 0
        off, cum = 0, 0
    records = max(0, last_no + 1 - no) if last_no >= 0 else 0
    oldest: float | None = None
    if records:
        # The next undelivered record: at the ledger's position, or the next segment's start.
        for first in [s for s in firsts if s >= seg]:
            with contextlib.suppress(OSError, ValueError, struct.error):
                with open(directory / _seg_name(first), "rb") as f:
                    f.seek(off if first == seg else 0)
                    raw = _read_exact(f, HEADER_SIZE)
                if len(raw) == HEADER_SIZE:
                    oldest = float(_Header(raw).created)
                    break
    return SpoolStats(
        records=records,
        lines=max(0, last_cum - cum) if records else 0,
        nbytes=nbytes,
        oldest=oldest,
        dropped_lines=0,
        corrupt_bytes=0,
        corrupt_lines=0,
    )


# -- the payload: a batch ------------------------------------------------------------------


class _Meta(msgspec.Struct, array_like=True):
    """Everything of a batch but its lines."""

    seq: int
    offsets: list[int]
    runs: list[tuple[int, str]]
    extents: dict[str, tuple[int, int]]
    paths: dict[str, str]
    read_time: float
    #: file key -> (path, offset the batch covers up to): what the checkpoints would move
    #: to once the batch is taken; read back after a crash (:func:`payload_marks`).
    marks: dict[str, tuple[str, int]] = {}


_meta_encoder = msgspec.msgpack.Encoder()
_meta_decoder = msgspec.msgpack.Decoder(_Meta)


def encode_batch(batch: Any, marks: dict[str, tuple[str, int]]) -> list[bytes]:
    """A :class:`~sidecar.sinks.base.Batch` and the checkpoint ``marks`` it covers, as the
    parts of a spool payload: the length of the metadata, the metadata (msgpack), then the
    lines joined by newlines as they are (written with one ``writev``, never copied into one
    buffer). Records are decoded again from the lines when read back: never stored twice."""
    meta = _meta_encoder.encode(
        _Meta(
            batch.seq,
            batch.offsets,
            batch.runs,
            batch.extents,
            batch.paths,
            batch.read_time,
            marks,
        )
    )
    return [len(meta).to_bytes(4, "little") + meta, b"\n".join(batch.lines)]


def _split(payload: bytes) -> tuple[_Meta, bytes]:
    n = int.from_bytes(payload[:4], "little")
    return _meta_decoder.decode(payload[4 : 4 + n]), payload[4 + n :]


def payload_marks(
    payload: bytes,
) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[int, int]]]:
    """The checkpoint marks (file key -> (path, end)) and line extents (id key -> (first,
    end)) of a spool payload."""
    n = int.from_bytes(payload[:4], "little")
    p = _meta_decoder.decode(payload[4 : 4 + n])
    return (
        {k: (str(v[0]), int(v[1])) for k, v in p.marks.items()},
        {k: (int(a), int(b)) for k, (a, b) in p.extents.items()},
    )


def decode_batch(
    payload: bytes, static: dict[str, str], records: Callable[[list[bytes], bytes], list[Any]]
) -> Any:
    """The batch of a spool payload; ``records(lines, data)`` decodes their schema fields."""
    from sidecar.sinks.base import Batch

    p, data = _split(payload)
    lines = data.split(b"\n") if data or p.offsets else []
    return Batch(
        p.seq,
        lines,
        records(lines, data),
        offsets=p.offsets,
        runs=[(int(i), str(k)) for i, k in p.runs],
        static=static,
        extents={k: (int(a), int(b)) for k, (a, b) in p.extents.items()},
        paths=p.paths,
        read_time=p.read_time,
    )
