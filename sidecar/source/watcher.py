"""One file being followed: read complete lines from where we are, notice truncation, flush
a stale partial line, stream past over-long lines (the "file watcher")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from obskit.schema.encoding import Encoding
from sidecar.source.chunk import Chunk, TooLong
from sidecar.source.framing import HEAD_BYTES, find_newline, frame, newline_of
from sidecar.source.osfile import read_at
from sidecar.source.settings import SourceSettings


@dataclass(slots=True)
class _Skip:
    """An over-long line being streamed past: only its head is kept."""

    start: int
    length: int
    head: bytes


class WatchedFile:
    """State of one file identity. ``offset`` is always the start of a line (or of the
    partial line waiting for its newline); nothing past it is buffered, so memory stays
    bounded whatever the backlog."""

    def __init__(
        self,
        *,
        key: str,
        fp: str,
        fp_source: bytes,
        path: str,
        dev: int,
        ino: int,
        f: BinaryIO | None,
        enc: Encoding,
        offset: int,
        size: int,
        mtime_ns: int,
        now: float,
        sample: bytes = b"",
    ) -> None:
        self.key = key
        self.fp = fp
        self.fp_source = fp_source
        self.path = path
        self.dev = dev
        self.ino = ino
        self.f = f
        self.enc = enc
        self.nl = newline_of(enc)
        self.offset = max(offset, enc.bom_length)
        self.start = self.offset  # where reading started this run
        self.size = size
        self.seen_size = size  # the size the last folder scan saw (the handle may be closed)
        self.mtime_ns = mtime_ns
        self.last_growth = now
        self.gone_since: float | None = None
        self.partial_size = -1
        self.partial_since = 0.0
        self.at_partial = False
        self.skip: _Skip | None = None
        self.sample = sample  # first bytes (up to fingerprint_bytes): tells copies apart
        # Names its lines for ids: the original's key when this file is a copy of it.
        self.id_key = key

    @property
    def drained(self) -> bool:
        return self.offset >= self.size and self.skip is None

    def close(self) -> None:
        f, self.f = self.f, None
        if f is not None:
            f.close()

    def head_unchanged(self) -> bool:
        """Does the file still start with the bytes its fingerprint was made of?"""
        if self.f is None:
            return False
        return read_at(self.f, 0, len(self.fp_source)) == self.fp_source

    def read(
        self,
        out: list[Chunk],
        budget: int,
        now: float,
        settings: SourceSettings,
        *,
        force_partial: bool = False,
    ) -> int:
        """Append chunks of complete lines to ``out``; return the bytes read.

        Reads only up to ``self.size`` (the size seen at this poll's fstat)."""
        f = self.f
        if f is None:
            return 0
        n0 = len(out)
        try:
            return self._read(f, out, budget, now, settings, force_partial)
        finally:
            if self.id_key != self.key:
                for c in out[n0:]:
                    c.id_key = self.id_key

    def _read(
        self,
        f: BinaryIO,
        out: list[Chunk],
        budget: int,
        now: float,
        settings: SourceSettings,
        force_partial: bool,
    ) -> int:
        max_line = settings.max_line_bytes
        nlw = len(self.nl)
        total = 0
        self.at_partial = False
        while total < budget:
            avail = self.size - self.offset
            if avail <= 0:
                if self.skip is not None:  # at the end inside an over-long line
                    self._maybe_flush_skip(out, now, settings, force_partial)
                break
            # A block must be able to exceed max_line (that is how an over-long line is
            # told from one still being written), even after rounding to UTF-16 units.
            floor = max_line + 2
            want = min(max(settings.read_chunk_bytes, floor), avail, max(budget - total, floor))
            if nlw == 2 and want > 1:
                want &= ~1
            block = read_at(f, self.offset, want)
            if nlw == 2 and len(block) > 1 and len(block) % 2:
                block = block[:-1]  # half a UTF-16 code unit: the writer is mid-write
            if not block:
                break
            total += len(block)
            if self.skip is not None:
                i = find_newline(block, 0, self.nl)
                if i == -1:
                    self.skip.length += len(block)
                    self.offset += len(block)
                    if self.offset >= self.size:
                        self._maybe_flush_skip(out, now, settings, force_partial)
                        break
                    continue
                sk = self.skip
                self.skip = None
                tl = TooLong(sk.start, sk.length + i, sk.head)
                end = self.offset + i + nlw
                out.append(Chunk(self.key, self.path, sk.start, end, b"", too_long=[tl]))
                self.offset = end
                continue
            chunks, used = frame(block, self.offset, self.enc, max_line, self.key, self.path)
            if used:
                out.extend(chunks)
                self.offset += used
                continue
            if len(block) > max_line:
                self.skip = _Skip(self.offset, len(block), self._head(block))
                self.offset += len(block)
                continue
            if self.offset + len(block) >= self.size:
                self._partial(block, out, now, settings, force_partial)
            break
        return total

    def _head(self, raw: bytes) -> bytes:
        if self.enc.is_utf16:
            return raw[:HEAD_BYTES].decode(self.enc.value, "replace").encode("utf-8", "replace")
        return raw[:HEAD_BYTES]

    def _stale(self, now: float, settings: SourceSettings, force: bool) -> bool:
        if force:
            return True
        if self.partial_size != self.size:
            self.partial_size = self.size
            self.partial_since = now
            return False
        t = settings.partial_line_timeout
        return t is not None and now - self.partial_since >= t

    def _partial(
        self, block: bytes, out: list[Chunk], now: float, settings: SourceSettings, force: bool
    ) -> None:
        self.at_partial = True
        if not self._stale(now, settings, force):
            return
        offsets = None
        data = block
        if self.enc.is_utf16:
            data = block.decode(self.enc.value, "replace").encode("utf-8", "replace")
            offsets = [self.offset]
        end = self.offset + len(block)
        out.append(
            Chunk(
                self.key, self.path, self.offset, end, data + b"\n", offsets, flushed_partial=True
            )
        )
        self.offset = end
        self.at_partial = False

    def _maybe_flush_skip(
        self, out: list[Chunk], now: float, settings: SourceSettings, force: bool
    ) -> None:
        self.at_partial = True
        sk = self.skip
        if sk is None or not self._stale(now, settings, force):
            return
        tl = TooLong(sk.start, sk.length, sk.head)
        out.append(
            Chunk(
                self.key, self.path, sk.start, self.offset, b"", too_long=[tl], flushed_partial=True
            )
        )
        self.skip = None
        self.at_partial = False
