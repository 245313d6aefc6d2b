"""Append-only segment files: rotation never renames, truncates or reopens an existing file.

A segment is ``<service>.<yyyymmddThhmmssZ>.<pid>.<seq>.log`` in the log folder. Each process
writes only its own segments; rotation (by size and/or age) starts a new segment; retention
deletes the oldest closed segments of the service beyond a count and a total size, and
retries later when a file cannot be deleted yet (Windows: another process has it open).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from obskit import _winfile
from obskit._winfile import WinAPI

SEGMENT_RE = re.compile(r"(?P<service>.+)\.(?P<ts>\d{8}T\d{6}Z)\.(?P<pid>\d+)\.(?P<seq>\d+)\.log")


@dataclass(frozen=True, order=True)
class Segment:
    """A segment file found in the folder; sorts oldest first."""

    ts: str
    pid: int
    seq: int
    path: Path


def segment_name(service: str, when: float, pid: int, seq: int) -> str:
    """The file name of a new segment."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    return f"{service}.{stamp}.{pid}.{seq:04d}.log"


def list_segments(folder: Path, service: str) -> list[Segment]:
    """The service's segments in ``folder``, oldest first (ignores other files)."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        m = SEGMENT_RE.fullmatch(entry.name)
        if m and m["service"] == service:
            out.append(Segment(m["ts"], int(m["pid"]), int(m["seq"]), Path(entry.path)))
    out.sort()
    return out


def open_append(path: Path, win_api: WinAPI | None = None) -> int:
    """Open ``path`` for appending and return the OS file descriptor.

    POSIX: ``O_APPEND`` makes every ``os.write`` land at the end atomically with respect to
    other writers. Windows: the file is opened with ``FILE_SHARE_READ | FILE_SHARE_WRITE |
    FILE_SHARE_DELETE`` so the sidecar can read it and retention (ours or another process's)
    can delete it while it is open (``win_api``: the OS seam, for tests).
    """
    if win_api is not None or sys.platform == "win32":
        return _winfile.open_append(str(path), win_api)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o644)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (unknown counts as alive: never delete in doubt)."""
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # access denied: exists
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class SegmentWriter:
    """Writes whole lines to the current segment; rotates and applies retention.

    Not thread-safe: one writer thread (or a lock held by the caller) uses it.
    """

    def __init__(
        self,
        folder: Path,
        service: str,
        *,
        max_bytes: int = 50 * 1024 * 1024,
        rotate_seconds: float = 0.0,
        keep_segments: int = 20,
        keep_bytes: int = 500 * 1024 * 1024,
    ) -> None:
        self.folder = folder
        self.service = service
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.keep_segments = keep_segments
        self.keep_bytes = keep_bytes
        self.fd: int | None = None
        self.path: Path | None = None
        self.size = 0
        self.opened_at = 0.0
        self.seq = 0
        self.pid = os.getpid()
        self.deleted = 0
        self.delete_failures = 0
        self.rotations = 0

    def ensure_folder(self) -> None:
        """Create the folder (and parents); raise ``OSError`` with a clear message if impossible."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot create log folder {self.folder}: {exc.strerror}"
            ) from exc
        if not os.access(self.folder, os.W_OK):
            raise PermissionError(f"log folder {self.folder} is not writable by this process")

    def _open_new(self) -> None:
        self.ensure_folder()
        now = time.time()
        self.pid = os.getpid()
        while True:
            self.seq += 1
            path = self.folder / segment_name(self.service, now, self.pid, self.seq)
            if not path.exists():  # never append to a file this process did not start
                break
        self.fd = open_append(path)
        self.path = path
        self.size = 0
        self.opened_at = time.monotonic()

    def write(self, data: bytes) -> None:
        """Append ``data`` (one or more complete lines); a batch that would overflow
        ``max_bytes`` is split at a line boundary so every segment stays within the limit
        (a single line longer than the limit gets a segment of its own)."""
        if self.fd is None or self.pid != os.getpid():
            if self.fd is not None:  # after fork: the parent's segment is not ours to write
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = None
            self._open_new()
            self.apply_retention()
        elif self._due(0):
            self.rotate()
        view = memoryview(data)
        while view:
            room = self.max_bytes - self.size if self.max_bytes else len(view)
            if len(view) <= room:
                chunk = len(view)
            else:
                cut = data.rfind(b"\n", len(data) - len(view), len(data) - len(view) + room)
                chunk = cut + 1 - (len(data) - len(view)) if cut >= 0 else 0
                if chunk == 0:
                    if self.size:
                        self.rotate()
                        continue
                    nl = data.find(b"\n", len(data) - len(view))
                    chunk = (nl + 1 if nl >= 0 else len(data)) - (len(data) - len(view))
            self._write_all(view[:chunk])
            view = view[chunk:]
            if view:
                self.rotate()

    def _write_all(self, view: memoryview) -> None:
        assert self.fd is not None
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def _due(self, incoming: int) -> bool:
        if self.max_bytes and self.size and self.size + incoming >= self.max_bytes:
            return True
        return bool(
            self.rotate_seconds and time.monotonic() - self.opened_at >= self.rotate_seconds
        )

    def rotate(self) -> None:
        """Close the current segment, start a new one, then apply retention."""
        self.close()
        self._open_new()
        self.rotations += 1
        self.apply_retention()

    def close(self) -> None:
        """Close the current segment (a later write opens a new one)."""
        if self.fd is not None:
            try:
                if self.pid == os.getpid():
                    os.close(self.fd)
            finally:
                self.fd = None

    def apply_retention(self) -> None:
        """Delete the oldest segments of the service beyond ``keep_segments``/``keep_bytes``.

        The newest segment of every live process is never deleted (it may be in use). A file
        that cannot be deleted now (open elsewhere on Windows) is left for the next pass.
        """
        if not self.keep_segments and not self.keep_bytes:
            return
        segments = list_segments(self.folder, self.service)
        newest: dict[int, Segment] = {}
        for seg in segments:
            newest[seg.pid] = seg
        protected = {seg.path for pid, seg in newest.items() if pid_alive(pid)}
        if self.path is not None:
            protected.add(self.path)
        sizes: dict[Path, int] = {}
        for seg in segments:
            try:
                sizes[seg.path] = seg.path.stat().st_size
            except OSError:
                sizes[seg.path] = 0
        count = len(segments)
        total = sum(sizes.values())
        for seg in segments:  # oldest first
            over_count = self.keep_segments and count > self.keep_segments
            over_bytes = self.keep_bytes and total > self.keep_bytes
            if not (over_count or over_bytes):
                break
            if seg.path in protected:
                continue
            try:
                seg.path.unlink()
            except FileNotFoundError:
                pass  # another process's retention got there first
            except OSError:
                self.delete_failures += 1  # open elsewhere (Windows): retry next rotation
                continue
            else:
                self.deleted += 1
            count -= 1
            total -= sizes[seg.path]
