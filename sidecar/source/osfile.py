"""The one place that touches the OS to open a log file and ask what file it is.

Windows needs care: Python's ``open()`` does not pass ``FILE_SHARE_DELETE``, so while the
sidecar held a file open the service could not rename or delete it. ``WindowsFiles`` opens
through :func:`obskit._winfile.open_shared` (``CreateFileW`` with share-read | share-write |
share-delete). Its OS calls are injectable so the logic is tested on Linux.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from obskit._winfile import WinAPI, open_shared


@dataclass(frozen=True, slots=True)
class FileId:
    """Device (volume serial on Windows) and inode (file index on Windows) of an open file."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    nlink: int


class Files(Protocol):
    """What the tailer needs from the OS."""

    def open_read(self, path: str) -> BinaryIO: ...
    def identify(self, f: BinaryIO) -> FileId: ...
    def deleted(self, f: BinaryIO) -> bool: ...


def regular_only(f: BinaryIO, path: str) -> BinaryIO:
    """``f`` when it is a regular file; else close it and raise ``IsADirectoryError`` (a
    folder) or ``ENXIO`` (a FIFO, socket or device put in place of a log file after the scan
    saw a file there)."""
    try:
        mode = os.fstat(f.fileno()).st_mode
    except OSError:
        f.close()
        raise
    if stat.S_ISREG(mode):
        return f
    f.close()
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    raise OSError(errno.ENXIO, "not a regular file (FIFO, socket or device)", path)


class PosixFiles:
    """POSIX: a plain unbuffered open; renames and unlinks never conflict with readers.

    ``O_NONBLOCK``: a FIFO swapped in for a log file must not block the open (it is then
    refused as not a regular file); it changes nothing for regular files."""

    def open_read(self, path: str) -> BinaryIO:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        # The tailer owns and closes it.
        return regular_only(os.fdopen(fd, "rb", buffering=0), path)

    def identify(self, f: BinaryIO) -> FileId:
        st = os.fstat(f.fileno())
        return FileId(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_nlink)

    def deleted(self, f: BinaryIO) -> bool:
        """The open file has no name left (unlinked; its data lives only through us)."""
        return os.fstat(f.fileno()).st_nlink == 0


class _FileTime(ctypes.Structure):
    _fields_ = [("low", ctypes.c_uint32), ("high", ctypes.c_uint32)]


class ByHandleFileInformation(ctypes.Structure):
    """``BY_HANDLE_FILE_INFORMATION``."""

    _fields_ = [
        ("dwFileAttributes", ctypes.c_uint32),
        ("ftCreationTime", _FileTime),
        ("ftLastAccessTime", _FileTime),
        ("ftLastWriteTime", _FileTime),
        ("dwVolumeSerialNumber", ctypes.c_uint32),
        ("nFileSizeHigh", ctypes.c_uint32),
        ("nFileSizeLow", ctypes.c_uint32),
        ("nNumberOfLinks", ctypes.c_uint32),
        ("nFileIndexHigh", ctypes.c_uint32),
        ("nFileIndexLow", ctypes.c_uint32),
    ]


_EPOCH_AS_FILETIME = 116444736000000000  # 1601-01-01 -> 1970-01-01 in 100 ns units


class FileStandardInfo(ctypes.Structure):
    """``FILE_STANDARD_INFO`` (``GetFileInformationByHandleEx`` class 1)."""

    _fields_ = [
        ("AllocationSize", ctypes.c_int64),
        ("EndOfFile", ctypes.c_int64),
        ("NumberOfLinks", ctypes.c_uint32),
        ("DeletePending", ctypes.c_ubyte),
        ("Directory", ctypes.c_ubyte),
    ]


FILE_STANDARD_INFO_CLASS = 1


class WindowsFiles:
    """Windows: ``CreateFileW`` with full sharing (:func:`obskit._winfile.open_shared`), file
    index via GetFileInformationByHandle.

    ``kernel32`` and ``msvcrt`` default to the real ones; tests pass fakes.
    """

    def __init__(self, kernel32: Any = None, msvcrt: Any = None) -> None:
        self._api = WinAPI(kernel32, msvcrt)
        if kernel32 is None:
            self._api.kernel32.GetFileInformationByHandle.argtypes = [
                ctypes.c_void_p,
                ctypes.POINTER(ByHandleFileInformation),
            ]
            self._api.kernel32.GetFileInformationByHandleEx.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.c_void_p,
                ctypes.c_uint32,
            ]

    def open_read(self, path: str) -> BinaryIO:
        # The tailer owns and closes it.
        return regular_only(open_shared(path, self._api), path)

    def identify(self, f: BinaryIO) -> FileId:
        # os.fstat, not file_information(): the folder scan identifies files with os.stat,
        # and both must give the same numbers. CPython builds both on
        # GetFileInformationByHandle(Ex); 3.12+ reports the 64-bit volume serial and the
        # 128-bit file id (FILE_ID_INFO), which the 32-bit BY_HANDLE fields would not match.
        st = os.fstat(f.fileno())
        return FileId(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_nlink)

    def deleted(self, f: BinaryIO) -> bool:
        """The file was deleted while we hold it ("delete pending"): its name stays taken
        until every handle is closed, so the service's next rename onto it fails."""
        info = FileStandardInfo()
        handle = self._api.msvcrt.get_osfhandle(f.fileno())
        if not self._api.kernel32.GetFileInformationByHandleEx(
            handle, FILE_STANDARD_INFO_CLASS, ctypes.byref(info), ctypes.sizeof(info)
        ):
            raise self._api.error("cannot stat")
        return bool(info.DeletePending) or info.NumberOfLinks == 0

    def file_information(self, f: BinaryIO) -> FileId:
        """The file's identity straight from ``GetFileInformationByHandle`` (volume serial
        and 64-bit file index), for diagnostics and older Pythons' view of ``os.stat``."""
        info = ByHandleFileInformation()
        handle = self._api.msvcrt.get_osfhandle(f.fileno())
        if not self._api.kernel32.GetFileInformationByHandle(handle, ctypes.byref(info)):
            raise self._api.error("cannot stat")
        wt = (info.ftLastWriteTime.high << 32) | info.ftLastWriteTime.low
        return FileId(
            dev=info.dwVolumeSerialNumber,
            ino=(info.nFileIndexHigh << 32) | info.nFileIndexLow,
            size=(info.nFileSizeHigh << 32) | info.nFileSizeLow,
            mtime_ns=(wt - _EPOCH_AS_FILETIME) * 100,
            nlink=info.nNumberOfLinks,
        )


def default_files() -> Files:
    """The OS layer for this platform."""
    if sys.platform == "win32":
        return WindowsFiles()
    return PosixFiles()


def stat_path(path: str) -> os.stat_result | None:
    """``os.stat`` or None when the file vanished meanwhile; other errors (a symlink loop,
    EACCES, EIO) are raised for the caller to report. On Windows ``os.stat`` fills
    ``st_ino``/``st_dev`` with the file index and volume serial (``DirEntry.stat`` does not)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (one seek + read: works on Windows too)."""
    f.seek(offset)
    return f.read(n) or b""
