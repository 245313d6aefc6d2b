"""The dead-letter file: lines that were not forwarded, with where they came from and why.

One JSON object per line in ``<dir>/quarantine.ndjson``; when it passes ``max_bytes`` it is
renamed ``quarantine-<UTC time>-<n>.ndjson`` and a new one starts; the oldest rotated files beyond
``max_files`` are deleted (the only data the sidecar ever deletes, bounded by config). Entry::

    {"time": "...Z", "stage": "schema"|"sink", "sink": null|"loki", "file": "/app/logs/a.log",
     "file_key": "...", "offset": 1234, "line_number": null, "service": "checkout"|null,
     "reasons": [{"rule": "OBS003", "field": "level", "message": "...", "column": 40}],
     "raw": "<the line as text>"}   # or "raw_base64" when it is not UTF-8

A file name that is not valid UTF-8 is shown escaped in ``file`` and kept exactly in
``file_b64`` (its bytes, base64).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from obskit._names import path_fields
from obskit.schema import Violation
from sidecar.segments import SegmentIO, Segments

CURRENT = "quarantine.ndjson"
_SERVICE = re.compile(rb'"service"\s*:\s*"([a-z0-9][a-z0-9._-]{0,62})"')


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def guess_service(line: bytes) -> str | None:
    """The ``service`` of an invalid line when it can be read cheaply, for metrics labels."""
    m = _SERVICE.search(line)
    return m.group(1).decode() if m else None


_second: list[Any] = [None, ""]


def utc_iso(t: float) -> str:
    """``t`` (Unix seconds) as RFC 3339 UTC with milliseconds."""
    sec = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{int((t - sec) * 1000):03d}Z"


def utc_now() -> str:
    """Current UTC time, RFC 3339 with milliseconds (the formatted second is cached)."""
    t = time.time()
    sec = int(t)
    if _second[0] != sec:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{int((t - sec) * 1000):03d}Z"


class DeadLetter:
    """Appends entries to the size-rotated dead-letter file; thread-safe.

    :meth:`write` only queues an entry in memory (it raises only when it did not accept the
    entry: see ``max_pending``); :meth:`flush` writes the queue to the file, and to the disk
    with ``durable``. An entry leaves the queue only once it is durable: when a flush fails
    (``ENOSPC``, ``EIO``, the folder gone), it raises an ``OSError`` naming the file, cuts what
    it wrote of the failed part back off the file, and keeps every entry that is not yet
    durable, so calling :meth:`flush` again later writes each exactly once, none torn.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        max_files: int,
        *,
        io: SegmentIO | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        #: Bytes of entries held in memory while the file cannot be written; past it
        #: :meth:`write` refuses new entries (raises) instead of growing without bound.
        self.max_pending = max_pending if max_pending is not None else max(max_bytes, 1 << 20)
        self._segments = Segments(directory, "quarantine", live_name=CURRENT, io=io)
        self._lock = threading.Lock()
        self._queue: list[bytes] = []  # entries not yet handed to the OS
        self._queued = 0
        self._unsynced: list[bytes] = []  # entries in the file, not yet fsynced
        self._unsynced_bytes = 0
        self.entries = 0

    @property
    def path(self) -> Path:
        return self.dir / CURRENT

    def _open(self) -> None:
        # Never opened, or deleted under us (its folder removed): what was written to the
        # old file but not fsynced is written again, to the new one.
        self._queue[:0] = self._unsynced
        self._queued += self._unsynced_bytes
        self._unsynced, self._unsynced_bytes = [], 0
        f = self._segments.open()
        if f.size and _last_byte(f.path) != b"\n":
            # An entry torn by a crash (kill -9 with a full disk): end it, so the next entry
            # starts on its own line instead of being glued to the fragment.
            f.append(b"\n")

    def write(
        self,
        line: bytes,
        *,
        file: str | None,
        file_key: str | None,
        offset: int | None,
        reasons: list[dict[str, Any]],
        stage: str = "schema",
        sink: str | None = None,
        line_number: int | None = None,
        service: str | None = "",
        line_length: int | None = None,
    ) -> None:
        """Queue one entry (:meth:`flush` writes it and makes it durable). ``service`` is
        guessed from the line unless given (``None``: known to have none). ``line_length``
        is set when ``line`` is only the head of a longer line (OBS011). Raises ``OSError``
        only when the entry was not accepted: the file has been failing and ``max_pending``
        bytes already wait."""
        entry: dict[str, Any] = {
            "time": utc_now(),
            "stage": stage,
            "sink": sink,
            "file": file,
            "file_key": file_key,
            "offset": offset,
            "line_number": line_number,
            "service": guess_service(line) if service == "" else service,
            "reasons": reasons,
        }
        if file is not None:
            entry.update(path_fields(file, "file"))
        if line_length is not None:
            entry["line_length"] = line_length
        try:
            entry["raw"] = line.decode("utf-8")
        except UnicodeDecodeError:
            entry["raw_base64"] = base64.b64encode(line).decode("ascii")
        data = orjson.dumps(entry) + b"\n"
        with self._lock:
            if self._queued + len(data) > self.max_pending:
                self._write_queue()  # raises while the file still cannot be written
            self._queue.append(data)
            self._queued += len(data)
            self.entries += 1
            if self._queued >= _WRITE_AT:
                # Like a write buffer: hand a full one to the OS. A failure is not this
                # entry's: it stays queued, and flush() reports it.
                with contextlib.suppress(OSError):
                    self._write_queue()

    def _write_queue(self) -> None:
        # Entries go in whole, up to max_bytes per file (the live file is rotated between
        # entries, as it fills); on failure the queue keeps whatever is not in a file.
        seg = self._segments
        lost_unsynced = bool(self._unsynced) and seg.current is not None and seg.current.lost
        if not self._queue and not lost_unsynced:
            return  # nothing to write (and no file to create)
        try:
            if seg.current is None or seg.current.lost:
                self._open()
            while self._queue:
                cur = seg.current
                assert cur is not None
                room = self.max_bytes - cur.size
                n = total = 0
                for data in self._queue:
                    if n and total + len(data) > room:
                        break
                    n, total = n + 1, total + len(data)
                if cur.size and total > room:
                    n = 0  # even the first entry does not fit: rotate first
                if n == 0:
                    if self._rotate():
                        continue
                    n, total = len(self._queue), self._queued  # cannot rotate: append all
                cur.append(b"".join(self._queue[:n]))
                self._unsynced += self._queue[:n]
                self._unsynced_bytes += total
                del self._queue[:n]
                self._queued -= total
        except OSError:
            self._give_back()
            raise

    def _rotate(self) -> bool:
        cur = self._segments.current
        assert cur is not None
        cur.sync()  # what it holds is durable from here, whatever the rotation does
        self._unsynced, self._unsynced_bytes = [], 0
        try:
            self._segments.rotate()
        except OSError:
            if self._segments.current is None:
                raise  # the new live file could not be opened: nowhere to write now
            return False  # could not rename (held on Windows): keep appending, retry later
        self._segments.prune(self.max_files)
        return True

    def _give_back(self) -> None:
        # The file is cut back to what was fsynced; what was written since goes back to
        # the front of the queue, to be written again (once).
        cur = self._segments.current
        if self._unsynced and cur is not None:
            with contextlib.suppress(OSError):
                cur.truncate(cur.size - self._unsynced_bytes)
        self._queue[:0] = self._unsynced
        self._queued += self._unsynced_bytes
        self._unsynced, self._unsynced_bytes = [], 0

    def flush(self, durable: bool = True) -> None:
        """Write queued entries to the file, and with ``durable`` fsync it. Raises an
        ``OSError`` naming the file when that fails; every entry not yet durable is kept
        for the next call."""
        with self._lock:
            self._write_queue()
            cur = self._segments.current
            if durable and self._unsynced and cur is not None:
                try:
                    cur.sync()
                except OSError:
                    self._give_back()
                    raise
                self._unsynced, self._unsynced_bytes = [], 0

    @property
    def unsynced(self) -> int:
        """Entries accepted but not yet durable."""
        with self._lock:
            return len(self._queue) + len(self._unsynced)

    def close(self) -> None:
        """Flush durably and close; raises like :meth:`flush` (the file is closed anyway)."""
        try:
            self.flush(durable=True)
        finally:
            with self._lock:
                self._segments.close()


#: Queued bytes handed to the OS without waiting for a flush (like a write buffer).
_WRITE_AT = 64 * 1024


def violation_reasons(violations: list[Violation]) -> list[dict[str, Any]]:
    """Violations as dead-letter reasons."""
    return [
        {"rule": v.rule, "field": v.field, "message": v.message, "column": v.column}
        for v in violations
    ]
