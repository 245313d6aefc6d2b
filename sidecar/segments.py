"""Size-rotated segment files in one folder: their names, the file being written, rotation that
is transactional, and retention. The file sink's archive and the dead-letter file use it.

Names are ``<prefix>-<UTC yyyymmddThhmmssZ>-<nnnn><suffix>`` (``.gz`` may follow, once
compressed), numbered past any segment of the same second so that names sort in write order.
Either the newest numbered segment is the one being written (the archive), or a fixed *live*
name is written and renamed to the next numbered name when full (``quarantine.ndjson``).

Failure rules, so that a folder that is briefly unavailable (deleted, ``EACCES``, ``EMFILE``,
``ENOSPC``) never leaves the writer broken and a later retry succeeds by itself:

- :meth:`AppendFile.append` is all or nothing: a write that fails is cut back off the file
  (and, should that fail too, before the next write), so no torn or half-written data is
  ever followed by more;
- :meth:`Segments.rotate` opens the next segment (creating the folder again if it is gone)
  before it lets go of the current one, and changes nothing when that fails;
- :attr:`AppendFile.lost` tells when the file was deleted under us (its folder removed), so
  the writer starts a new one instead of writing into an unlinked file.

The OS calls go through :class:`SegmentIO`, so tests inject ``ENOSPC`` or ``EIO`` exactly where
a real disk would fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path


class SegmentIO:
    """The OS calls the writers make (tests subclass it to inject failures)."""

    def open_append(self, path: Path) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        flags |= getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        return os.open(path, flags, 0o644)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def linked(self, fd: int) -> bool:
        """False once the file was deleted (POSIX: no name left; Windows never deletes an
        open file that was not opened with share-delete)."""
        return os.fstat(fd).st_nlink > 0

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)


def named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` when the OS did not (writes and fsyncs report ENOSPC or EIO
    without a file name)."""
    if exc.filename is not None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


class AppendFile:
    """One file open for appending, written all or nothing; :attr:`size` is what it holds."""

    def __init__(self, path: Path, io: SegmentIO) -> None:
        self.path = path
        self.io = io
        try:
            self.fd = io.open_append(path)
            self.size = io.size(self.fd)
        except OSError as exc:
            raise named(exc, path) from None

    @property
    def lost(self) -> bool:
        """The file was deleted (or its folder removed) while open."""
        try:
            return not self.io.linked(self.fd)
        except OSError:
            return True

    def append(self, data: bytes) -> None:
        """Append ``data`` entirely, or raise (naming the file) with the file as it was."""
        try:
            if self.io.size(self.fd) != self.size:
                # A failed write whose cut failed too: cut it now, before writing after it.
                self.io.truncate(self.fd, self.size)
            view = memoryview(data)
            while view:
                view = view[self.io.write(self.fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.io.truncate(self.fd, self.size)
            raise named(exc, self.path) from None
        self.size += len(data)

    def sync(self) -> None:
        try:
            self.io.fsync(self.fd)
        except OSError as exc:
            raise named(exc, self.path) from None

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes."""
        try:
            self.io.truncate(self.fd, size)
        except OSError as exc:
            raise named(exc, self.path) from None
        self.size = size

    def discard_after(self, size: int) -> None:
        """Forget what follows ``size`` (a write the caller undoes): cut it now if possible,
        else before the next :meth:`append`."""
        self.size = size
        with contextlib.suppress(OSError):
            self.io.truncate(self.fd, size)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the data was synced (or is re-sent) by the owner
            self.io.close(self.fd)


_STAMP = "%Y%m%dT%H%M%SZ"


class Segments:
    """The segments of one folder and the one being written (:attr:`current`)."""

    def __init__(
        self,
        folder: Path,
        prefix: str,
        *,
        live_name: str | None = None,
        suffix: str = ".ndjson",
        io: SegmentIO | None = None,
    ) -> None:
        self.dir = folder
        self.prefix = prefix
        self.suffix = suffix
        self.live = folder / live_name if live_name else None
        self.io = io or SegmentIO()
        self.current: AppendFile | None = None
        self._name = re.compile(
            rf"{re.escape(prefix)}-(\d{{8}}T\d{{6}}Z)-(\d{{4}}){re.escape(suffix)}(?:\.gz)?"
        )

    # naming ------------------------------------------------------------------------------------
    def next_path(self) -> Path:
        """A new numbered segment name, sorting after every existing one."""
        stamp = time.strftime(_STAMP, time.gmtime())
        used = [int(m.group(2)) for m in self._matches() if m.group(1) == stamp]
        if self.current is not None:
            m = self._name.fullmatch(self.current.path.name)
            if m and m.group(1) == stamp:
                used.append(int(m.group(2)))
        return self.dir / f"{self.prefix}-{stamp}-{max(used, default=-1) + 1:04d}{self.suffix}"

    def numbered(self) -> list[Path]:
        """The numbered segments (compressed ones too), oldest first."""
        return sorted(self.dir / m.group(0) for m in self._matches())

    def _matches(self) -> list[re.Match[str]]:
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        return [m for m in map(self._name.fullmatch, names) if m]

    def is_segment(self, path: Path) -> bool:
        """Whether ``path`` is named as one of these numbered segments."""
        return self._name.fullmatch(path.name) is not None

    # the file being written ----------------------------------------------------------------------
    def open(self, path: Path | None = None) -> AppendFile:
        """Open ``path`` (default: the live name, else a new segment) as :attr:`current`,
        creating the folder if needed; the previous current file is closed."""
        target = path or self.live or self.next_path()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise named(exc, self.dir) from None
        new = AppendFile(target, self.io)
        if self.current is not None:
            self.current.close()
        self.current = new
        return new

    def rotate(self, commit: Callable[[Path], None] | None = None) -> Path | None:
        """Start the next segment; returns the completed one (None when there was none).

        Transactional: the current file is synced and the next one opened (and ``commit``
        called with its path, e.g. to journal it) before the current one is let go; when
        any step fails, the exception propagates and nothing changed, so the caller keeps
        writing where it was and tries again later. With a live name, the live file is
        renamed to the next numbered name (closed first: Windows cannot rename an open
        file) and a new live file opened; if that open fails, :attr:`current` is None and
        the next :meth:`open` creates it.
        """
        old = self.current
        if old is not None:
            old.sync()
        if self.live is not None:
            return self._rotate_live(old)
        new = AppendFile(self._next_path_in_folder(), self.io)
        try:
            if commit is not None:
                commit(new.path)
        except BaseException:
            new.close()
            if new.size == 0:
                with contextlib.suppress(OSError):
                    new.path.unlink()
            raise
        self.current = new
        if old is not None:
            old.close()
            return old.path
        return None

    def _next_path_in_folder(self) -> Path:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise named(exc, self.dir) from None
        return self.next_path()

    def _rotate_live(self, old: AppendFile | None) -> Path | None:
        assert self.live is not None
        target = self.next_path()
        if old is not None:
            old.close()
            self.current = None
        try:
            self.io.replace(self.live, target)
        except OSError as exc:
            # Held open by another process (Windows) or cannot rename: go on appending to
            # the live file; the caller tries again at a later rotation.
            with contextlib.suppress(OSError):
                self.open(self.live)
            raise named(exc, self.live) from None
        self.open(self.live)
        return target

    def prune(self, keep: int) -> None:
        """Delete the oldest numbered segments so that at most ``keep`` files remain (the live
        file counted); never the one being written. Best effort: a segment that cannot be
        deleted now (a reader holds it on Windows) is tried again at the next rotation."""
        if keep <= 0:
            return
        segs = self.numbered()
        excess = len(segs) + (1 if self.live is not None else 0) - keep
        for p in segs[: max(0, excess)]:
            if self.current is None or p != self.current.path:
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
