"""The one place that touches the OS to open a log file and ask what file it is.

Windows needs care: Python's ``open()`` does not pass ``FILE_SHARE_DELETE``, so while the
sidecar held a file open the service could not rename or delete it. ``WindowsFiles`` opens
through :func:`obskit._winfile.open_shared` (``CreateFileW`` with share-read | share-write |
share-delete). Its OS calls are injectable so the logic is tested on Linux.
"""

from __future__ import annotations

import ctypes
import os
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


class PosixFiles:
    """POSIX: a plain unbuffered open; renames and unlinks never conflict with readers."""

    def open_read(self, path: str) -> BinaryIO:
        return open(path, "rb", buffering=0)  # the tailer owns and closes it

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

    def open_read(self, path: str) -> BinaryIO:
        return open_shared(path, self._api)  # the tailer owns and closes it

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
    """``os.stat`` or None when the file vanished meanwhile. On Windows ``os.stat`` fills
    ``st_ino``/``st_dev`` with the file index and volume serial (``DirEntry.stat`` does not)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
