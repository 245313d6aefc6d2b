"""Fake ``kernel32`` and ``msvcrt`` for the Windows OS seam (``obskit._winfile.WinAPI``):
real files underneath (handles are POSIX fds), every call recorded, failures on demand."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from obskit._winfile import FILE_APPEND_DATA, WinAPI


class FakeKernel32:
    """CreateFileW backed by os.open; handles are fds. Records calls and closed handles."""

    def __init__(self, fail_code: int | None = None, invalid: int = -1) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.closed: list[int] = []
        self.fail_code = fail_code
        self.invalid = invalid
        self.last_error = 0

    def CreateFileW(self, *args: Any) -> int:
        self.calls.append(args)
        if self.fail_code is not None:
            self.last_error = self.fail_code
            return self.invalid
        if args[1] == FILE_APPEND_DATA:
            return os.open(args[0], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return os.open(args[0], os.O_RDONLY)

    def GetLastError(self) -> int:
        return self.last_error

    def CloseHandle(self, h: int) -> None:
        self.closed.append(h)
        os.close(h)

    def GetFileInformationByHandleEx(self, h: int, cls: int, ref: Any, size: int) -> int:
        """FileStandardInfo only: DeletePending when the file has no name left."""
        from sidecar.source.osfile import FILE_STANDARD_INFO_CLASS, FileStandardInfo

        assert cls == FILE_STANDARD_INFO_CLASS and size == ctypes.sizeof(FileStandardInfo)
        st = os.fstat(h)
        info = ctypes.cast(ref, ctypes.POINTER(FileStandardInfo)).contents
        info.EndOfFile = st.st_size
        info.NumberOfLinks = max(st.st_nlink, 1)  # Windows keeps the link while pending
        info.DeletePending = 1 if st.st_nlink == 0 else 0
        return 1

    def GetFileInformationByHandle(self, h: int, ref: Any) -> int:
        from sidecar.source.osfile import ByHandleFileInformation

        st = os.fstat(h)
        info = ctypes.cast(ref, ctypes.POINTER(ByHandleFileInformation)).contents
        info.dwVolumeSerialNumber = st.st_dev & 0xFFFFFFFF
        info.nFileIndexHigh = st.st_ino >> 32
        info.nFileIndexLow = st.st_ino & 0xFFFFFFFF
        info.nFileSizeHigh = st.st_size >> 32
        info.nFileSizeLow = st.st_size & 0xFFFFFFFF
        info.nNumberOfLinks = st.st_nlink
        ft = st.st_mtime_ns // 100 + 116444736000000000
        info.ftLastWriteTime.high = ft >> 32
        info.ftLastWriteTime.low = ft & 0xFFFFFFFF
        return 1


class FakeMsvcrt:
    """``open_osfhandle`` returns the handle (an fd) or, with ``fail``, raises EMFILE as the C
    runtime does when its descriptor table is full."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def open_osfhandle(self, handle: int, flags: int) -> int:
        if self.fail:
            raise OSError(errno.EMFILE, "too many open files")
        return handle

    def get_osfhandle(self, fd: int) -> int:
        return fd


def fake_api(
    *, fail_wrap: bool = False, fail_code: int | None = None
) -> tuple[WinAPI, FakeKernel32]:
    """A seam over the fakes, and its kernel32 (to inspect calls and closed handles)."""
    k32 = FakeKernel32(fail_code=fail_code)
    return WinAPI(kernel32=k32, msvcrt=FakeMsvcrt(fail=fail_wrap)), k32
