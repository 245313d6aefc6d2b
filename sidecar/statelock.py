"""One sidecar per folder: an OS lock on each folder the sidecar writes (the state folder, the
dead-letter folder, each file sink's archive).

Two sidecars sharing a state folder (a rolling update, a copied manifest) would each archive
every line, and the file sink's journal of one would cut the other's lines out of the archive
on the next start. So at start the sidecar takes an exclusive, non-blocking lock on
``<folder>/.obskit-sidecar.lock`` for each folder, and a second instance refuses to start
(:class:`FolderLocked`, exit 2) naming the folder and the holder's PID and host, which the
holder writes into the lock file.

The lock belongs to the open file, not to the file on disk: it is released when the process
exits however it exits (``kill -9``, OOM, power loss), so there is never a stale lock to clean
up; the file itself stays. POSIX uses ``flock``; Windows ``msvcrt.locking`` on one byte far past
the file's content (a locked range cannot be read by others on Windows, and the holder's PID at
the start of the file must stay readable). The OS calls are injectable (:class:`LockOS`), so the
Windows branch is tested on Linux.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

LOCK_FILE = ".obskit-sidecar.lock"
#: Where the Windows lock byte sits: past any holder record, so the record stays readable.
WINDOWS_LOCK_OFFSET = 1 << 30


class LockOS(Protocol):
    """The OS calls that take and release an exclusive lock on an open file."""

    def try_lock(self, fd: int) -> bool:
        """Take the lock without waiting; False when another open file holds it."""
        ...

    def unlock(self, fd: int) -> None: ...


class PosixLocks:
    """``flock(LOCK_EX | LOCK_NB)``: per open file, released by the kernel at exit."""

    def __init__(self, fcntl: Any = None) -> None:
        if fcntl is None:
            import fcntl as _fcntl

            fcntl = _fcntl
        self._fcntl = fcntl

    def try_lock(self, fd: int) -> bool:
        try:
            self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def unlock(self, fd: int) -> None:
        self._fcntl.flock(fd, self._fcntl.LOCK_UN)


class WindowsLocks:
    """``msvcrt.locking(LK_NBLCK)`` of the byte at :data:`WINDOWS_LOCK_OFFSET` (locks beyond
    the end of a file are allowed; the system releases them when the process ends)."""

    def __init__(self, msvcrt: Any = None) -> None:
        if msvcrt is None:
            import msvcrt as _msvcrt  # type: ignore[import-not-found,unused-ignore]

            msvcrt = _msvcrt
        self._msvcrt = msvcrt

    def try_lock(self, fd: int) -> bool:
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            self._msvcrt.locking(fd, self._msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            # The CRT reports a range locked by someone else as EACCES (EDEADLOCK after
            # its retries).
            if exc.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)):
                return False
            raise
        return True

    def unlock(self, fd: int) -> None:
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        self._msvcrt.locking(fd, self._msvcrt.LK_UNLCK, 1)


def default_lock_os() -> LockOS:
    """The lock calls of this platform."""
    if sys.platform == "win32":
        return WindowsLocks()
    return PosixLocks()


class FolderLocked(Exception):
    """Another process holds the folder; the message names it, the setting and the holder."""

    def __init__(self, folder: Path, setting: str, holder: dict[str, Any]) -> None:
        self.folder = folder
        self.setting = setting
        self.holder = holder
        pid = holder.get("pid")
        who = f"pid {pid}" if pid else "a process whose pid is not recorded"
        if holder.get("host"):
            who += f" on {holder['host']}"
        super().__init__(
            f"{setting} {folder} is in use by another obskit-sidecar ({who}); only one "
            "instance may use it: stop that one, or give this one its own folder"
        )


@dataclass
class FolderLocks:
    """The locks one sidecar holds; :meth:`release` at shutdown (exit releases them too)."""

    fds: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lock_os: LockOS | None = None

    def release(self) -> None:
        """Unlock and close every lock file (left in place: deleting it would race)."""
        fds, self.fds = self.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                if self.lock_os is not None:
                    self.lock_os.unlock(fd)
            with contextlib.suppress(OSError):
                os.close(fd)


def lock_folders(folders: Iterable[tuple[str, Path]], lock_os: LockOS | None = None) -> FolderLocks:
    """Lock each ``(setting, folder)``, creating folders as needed; one lock per distinct
    folder. Raises :class:`FolderLocked` (after releasing what it took) when another process
    holds one. A folder where no lock file can be created (read-only) is not locked: a
    warning says so, and this sidecar will not be able to write there either."""
    lock_os = lock_os or default_lock_os()
    held = FolderLocks(lock_os=lock_os)
    seen: set[tuple[int, int]] = set()
    try:
        for setting, folder in folders:
            folder = Path(folder)
            folder.mkdir(parents=True, exist_ok=True)
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue  # the same folder under two settings (or two names): one lock
            seen.add((st.st_dev, st.st_ino))
            fd = _open_lock_file(folder / LOCK_FILE, held.warnings)
            if fd is None:
                continue
            if not lock_os.try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderLocked(folder, setting, holder)
            held.fds.append(fd)
            _write_holder(fd)
    except BaseException:
        held.release()
        raise
    return held


def _open_lock_file(path: Path, warnings: list[str]) -> int | None:
    flags = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        # Never O_TRUNC: a second instance must not touch the holder's record.
        return os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
    except OSError as first:
        if first.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:  # a read-only folder with a lock file: a read-only open can still be locked
            return os.open(path, os.O_RDONLY | flags)
        except OSError:
            warnings.append(
                f"cannot create {path} ({first.strerror}): this folder is not protected "
                "against a second sidecar"
            )
            return None


def _write_holder(fd: int) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    data = orjson.dumps(record) + b"\n"
    with contextlib.suppress(OSError):  # read-only lock file: the lock alone is what counts
        # Overwrite, then cut: a reader never sees an empty file, only a whole first line.
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.ftruncate(fd, len(data))


def _read_holder(fd: int) -> dict[str, Any]:
    # The holder writes its record just after locking: a new file may be empty for a moment.
    for _ in range(10):
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, 4096)
        except OSError:
            return {}
        if data:
            break
        time.sleep(0.02)
    try:
        rec = orjson.loads(data.split(b"\n", 1)[0])
    except orjson.JSONDecodeError:
        return {}
    return rec if isinstance(rec, dict) else {}
