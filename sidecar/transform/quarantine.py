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
    """Appends entries to the size-rotated dead-letter file; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int, max_files: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._lock = threading.Lock()
        self._fh: Any = None
        self._size = 0
        self.entries = 0
        #: Entries written since the last durable flush.
        self.unsynced = 0

    @property
    def path(self) -> Path:
        return self.dir / CURRENT

    def _open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open across writes
        self._size = self._fh.tell()
        if self._size and _last_byte(self.path) != b"\n":
            # An entry torn by a crash (kill -9 with a full disk): end it, so the next entry
            # starts on its own line instead of being glued to the fragment.
            self._fh.write(b"\n")
            self._size += 1

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
        """Append one entry (buffered; :meth:`flush` makes it durable). ``service`` is
        guessed from the line unless given (``None``: known to have none). ``line_length``
        is set when ``line`` is only the head of a longer line (OBS011)."""
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
            if self._fh is None:
                self._open()
            elif self._size + len(data) > self.max_bytes and self._size > 0:
                try:
                    self._rotate()
                except OSError:
                    # Held open by someone else (Windows) or cannot rename: keep appending to
                    # the current file and try again at the next entry; never lose the entry.
                    if self._fh is None or self._fh.closed:
                        self._open()
            self._fh.write(data)
            self._size += len(data)
            self.entries += 1
            self.unsynced += 1

    def _rotate(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        # Numbered past any file of the same second, so names sort in rotation order (the
        # pruning below deletes the first names).
        used = [
            int(p.name[len(stamp) + 12 : len(stamp) + 16])
            for p in self.dir.glob(f"quarantine-{stamp}-[0-9][0-9][0-9][0-9].ndjson")
        ]
        target = self.dir / f"quarantine-{stamp}-{max(used, default=-1) + 1:04d}.ndjson"
        os.replace(self.path, target)
        rotated = sorted(self.dir.glob("quarantine-*.ndjson"))
        for old in rotated[: max(0, len(rotated) - (self.max_files - 1))]:
            with contextlib.suppress(OSError):
                old.unlink()
        self._open()

    def flush(self, durable: bool = True) -> None:
        """Hand buffered entries to the OS, and to the disk when ``durable``."""
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                if durable:
                    os.fsync(self._fh.fileno())
                    self.unsynced = 0

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None


def violation_reasons(violations: list[Violation]) -> list[dict[str, Any]]:
    """Violations as dead-letter reasons."""
    return [
        {"rule": v.rule, "field": v.field, "message": v.message, "column": v.column}
        for v in violations
    ]
