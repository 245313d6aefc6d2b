"""The one way obskit opens a log file on Windows: ``CreateFileW`` with share-read |
share-write | share-delete, wrapped into a C runtime fd with ``msvcrt.open_osfhandle``.

Python's ``open()`` does not pass ``FILE_SHARE_DELETE``, so while a reader held a file open
the service could not rename or delete it (the failure Promtail and Filebeat users know:
grafana/loki #3668, elastic/beats #25424). The sidecar's tailer (``sidecar.source.osfile``)
and ``obskit trace``'s file search read through :func:`open_shared`; the SDK's segment writer
appends through :func:`open_append`. The OS functions
come from a :class:`WinAPI`, which tests build with fakes so this code runs on Linux too.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, BinaryIO, Final

GENERIC_READ: Final = 0x80000000
FILE_APPEND_DATA: Final = 0x0004
FILE_SHARE_READ: Final = 0x1
FILE_SHARE_WRITE: Final = 0x2
FILE_SHARE_DELETE: Final = 0x4
OPEN_EXISTING: Final = 3
OPEN_ALWAYS: Final = 4
FILE_ATTRIBUTE_NORMAL: Final = 0x80
FILE_FLAG_SEQUENTIAL_SCAN: Final = 0x08000000
INVALID_HANDLE_VALUE: Final = -1
# What INVALID_HANDLE_VALUE looks like through a c_void_p return type (unsigned).
_INVALID_AS_PTR: Final = ctypes.c_void_p(-1).value

# Win32 error codes -> errno, so callers handle one family of exceptions on every OS (and the
# sidecar's source error counter has the same reasons): file/path not found, access denied,
# sharing violation, name too long, delete pending, a symbolic link that cannot be resolved.
WIN_ERRNO: Final = {
    2: errno.ENOENT,
    3: errno.ENOENT,
    5: errno.EACCES,
    32: errno.EACCES,
    206: errno.ENAMETOOLONG,
    303: errno.ENOENT,
    1921: errno.ELOOP,
}


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


class WinAPI:
    """The OS seam: ``kernel32`` and ``msvcrt``, the real ones unless given (tests pass
    fakes; a fake kernel32 also provides ``GetLastError``)."""

    def __init__(self, kernel32: Any = None, msvcrt: Any = None) -> None:
        if kernel32 is None:
            kernel32 = load_kernel32()
            # use_last_error: ctypes saves the error right after each call, before Python
            # code can overwrite it.
            self.last_error: Any = ctypes.get_last_error  # type: ignore[attr-defined,unused-ignore]
        else:
            self.last_error = kernel32.GetLastError
        if msvcrt is None:
            import msvcrt as _msvcrt  # type: ignore[import-not-found,unused-ignore]

            msvcrt = _msvcrt
        self.kernel32 = kernel32
        self.msvcrt = msvcrt

    def error(self, what: str, path: str | None = None) -> OSError:
        """The last Win32 error as an ``OSError`` with the matching errno."""
        code = int(self.last_error())
        return OSError(WIN_ERRNO.get(code, errno.EIO), f"{what} (WinError {code})", path)


def _open_fd(path: str, args: tuple[Any, ...], fd_flags: int, api: WinAPI | None) -> int:
    """``CreateFileW(*args)`` wrapped into a C runtime fd; no handle is left open when a step
    fails."""
    api = api if api is not None else WinAPI()
    handle = api.kernel32.CreateFileW(*args)
    if handle is None or handle in (INVALID_HANDLE_VALUE, _INVALID_AS_PTR):
        raise api.error("cannot open", path)
    try:
        fd: int = api.msvcrt.open_osfhandle(handle, fd_flags | getattr(os, "O_BINARY", 0))
    except BaseException:
        api.kernel32.CloseHandle(handle)
        raise
    # From here the fd owns the handle: closing the fd closes both.
    return fd


def open_shared(path: str, api: WinAPI | None = None, *, buffering: int = 0) -> BinaryIO:
    """Open ``path`` for reading with full sharing (Windows). Raises ``OSError``."""
    fd = _open_fd(path, create_file_args(path), os.O_RDONLY, api)
    try:
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def open_append(path: str, api: WinAPI | None = None) -> int:
    """An fd appending to ``path`` (created if missing) with full sharing, so readers can
    follow it and retention can delete it while it is open (Windows). Raises ``OSError``."""
    args = (path, FILE_APPEND_DATA, share_mode(), None, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, None)
    return _open_fd(path, args, os.O_APPEND | os.O_WRONLY, api)


def load_kernel32() -> Any:
    """The real ``kernel32`` with the argument types of the functions used here."""
    windll = getattr(ctypes, "WinDLL", None)
    if windll is None:
        raise OSError("the Windows file layer needs Windows (kernel32)")
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
    k32.CloseHandle.argtypes = [ctypes.c_void_p]
    return k32
