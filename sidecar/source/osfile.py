"""The one place that touches the OS to open a log file and ask what file it is.

Windows needs care: Python's ``open()`` does not pass ``FILE_SHARE_DELETE``, so while the
sidecar held a file open the service could not rename or delete it (the failure Promtail and
Filebeat users know: grafana/loki #3668, elastic/beats #25424). ``WindowsFiles`` opens with
``CreateFileW`` and share-read | share-write | share-delete, then wraps the handle with
``msvcrt.open_osfhandle``. Its OS calls are injectable so the logic is tested on Linux.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

GENERIC_READ = 0x80000000
FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_SHARE_DELETE = 0x4
OPEN_EXISTING = 3
FILE_ATTRIBUTE_NORMAL = 0x80
FILE_FLAG_SEQUENTIAL_SCAN = 0x08000000
INVALID_HANDLE_VALUE = -1
# What INVALID_HANDLE_VALUE looks like through a c_void_p return type (unsigned).
_INVALID_AS_PTR = ctypes.c_void_p(-1).value

# Win32 error codes -> errno, so callers handle one family of exceptions on every OS (and the
# source's error counter has the same reasons): file/path not found, access denied, sharing
# violation, name too long, a symbolic link that cannot be resolved (a loop), delete pending.
_WIN_ERRNO = {
    2: errno.ENOENT,
    3: errno.ENOENT,
    5: errno.EACCES,
    32: errno.EACCES,
    206: errno.ENAMETOOLONG,
    303: errno.ENOENT,
    1921: errno.ELOOP,
}


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


def share_mode() -> int:
    """Let the writer keep writing, and rename or delete the file, while we read it."""
    return FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE


def create_file_args(path: str) -> tuple[str, int, int, None, int, int, None]:
    """The exact ``CreateFileW`` arguments used to open a log file for reading."""
    return (
        path,
        GENERIC_READ,
        share_mode(),
        None,
        OPEN_EXISTING,
        FILE_ATTRIBUTE_NORMAL | FILE_FLAG_SEQUENTIAL_SCAN,
        None,
    )


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


class WindowsFiles:
    """Windows: ``CreateFileW`` with full sharing, file index via GetFileInformationByHandle.

    ``kernel32`` and ``msvcrt`` default to the real ones; tests pass fakes.
    """

    def __init__(self, kernel32: Any = None, msvcrt: Any = None) -> None:
        if kernel32 is None:
            kernel32 = _load_kernel32()
            # use_last_error: ctypes saves the error right after each call, before Python
            # code can overwrite it.
            self._last_error: Any = ctypes.get_last_error  # type: ignore[attr-defined,unused-ignore]
        else:
            self._last_error = kernel32.GetLastError
        if msvcrt is None:
            import msvcrt as _msvcrt  # type: ignore[import-not-found,unused-ignore]

            msvcrt = _msvcrt
        self._k32 = kernel32
        self._msvcrt = msvcrt

    def open_read(self, path: str) -> BinaryIO:
        handle = self._k32.CreateFileW(*create_file_args(path))
        if handle is None or handle in (INVALID_HANDLE_VALUE, _INVALID_AS_PTR):
            code = int(self._last_error())
            raise OSError(_WIN_ERRNO.get(code, errno.EIO), f"cannot open (WinError {code})", path)
        try:
            fd = self._msvcrt.open_osfhandle(handle, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except BaseException:
            self._k32.CloseHandle(handle)
            raise
        # From here the fd owns the handle: closing the file object closes both.
        return regular_only(os.fdopen(fd, "rb", buffering=0), path)

    def identify(self, f: BinaryIO) -> FileId:
        # os.fstat, not file_information(): the folder scan identifies files with os.stat,
        # and both must give the same numbers. CPython builds both on
        # GetFileInformationByHandle(Ex); 3.12+ reports the 64-bit volume serial and the
        # 128-bit file id (FILE_ID_INFO), which the 32-bit BY_HANDLE fields would not match.
        st = os.fstat(f.fileno())
        return FileId(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_nlink)

    def file_information(self, f: BinaryIO) -> FileId:
        """The file's identity straight from ``GetFileInformationByHandle`` (volume serial
        and 64-bit file index), for diagnostics and older Pythons' view of ``os.stat``."""
        info = ByHandleFileInformation()
        handle = self._msvcrt.get_osfhandle(f.fileno())
        if not self._k32.GetFileInformationByHandle(handle, ctypes.byref(info)):
            code = int(self._last_error())
            raise OSError(_WIN_ERRNO.get(code, errno.EIO), f"cannot stat (WinError {code})")
        wt = (info.ftLastWriteTime.high << 32) | info.ftLastWriteTime.low
        return FileId(
            dev=info.dwVolumeSerialNumber,
            ino=(info.nFileIndexHigh << 32) | info.nFileIndexLow,
            size=(info.nFileSizeHigh << 32) | info.nFileSizeLow,
            mtime_ns=(wt - _EPOCH_AS_FILETIME) * 100,
            nlink=info.nNumberOfLinks,
        )


def _load_kernel32() -> Any:
    windll = getattr(ctypes, "WinDLL", None)
    if windll is None:
        raise OSError("WindowsFiles needs Windows (kernel32)")
    k32 = windll("kernel32", use_last_error=True)
    k32.CreateFileW.restype = ctypes.c_void_p
    k32.CreateFileW.argtypes = [
        ctypes.c_wchar_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_void_p,
    ]
    k32.GetFileInformationByHandle.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ByHandleFileInformation),
    ]
    k32.CloseHandle.argtypes = [ctypes.c_void_p]
    return k32


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
