"""The one Windows share-delete open (``obskit._winfile``), driven through the OS seam with a
fake kernel32/msvcrt over real files, from each of its callers: the trace's file search, the
SDK's segment writer (the sidecar's tailer is covered in tests/sidecar/source)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from obskit import _winfile
from obskit.sdk.segments import open_append
from obskit.trace.files import open_shared, search_files
from obskit.trace.model import Window
from tests.winfakes import fake_api

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
LINE = (
    '{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","service":"a","message":"m",'
    f'"trace_id":"{TRACE}"}}\n'
)
WIDE = Window(0, 2**62)


def test_trace_search_reads_through_the_share_delete_open(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(LINE * 3)
    api, k32 = fake_api()
    found = search_files([tmp_path], TRACE, WIDE, win_api=api)
    assert len(found.entries) == 3 and found.warnings == []
    (call,) = k32.calls
    assert call == _winfile.create_file_args(str(tmp_path / "a.log"))
    assert call[2] == _winfile.FILE_SHARE_READ | _winfile.FILE_SHARE_WRITE | 0x4


def test_trace_open_closes_the_handle_when_wrapping_it_fails(tmp_path: Path) -> None:
    """The trace's own copy of this open leaked the handle (keeping the file locked against
    rotation) when open_osfhandle failed; the one open closes it."""
    (tmp_path / "a.log").write_text(LINE)
    (tmp_path / "b.log").write_text(LINE)
    api, k32 = fake_api(fail_wrap=True)
    found = search_files([tmp_path], TRACE, WIDE, win_api=api)
    assert found.entries == []
    assert found.warnings == [
        f"{tmp_path / 'a.log'}: cannot read: too many open files",
        f"{tmp_path / 'b.log'}: cannot read: too many open files",
    ]
    assert len(k32.calls) == 2 and len(k32.closed) == 2
    for handle in k32.closed:  # really closed: the fd number is free again
        with pytest.raises(OSError) as exc:
            os.fstat(handle)
        assert exc.value.errno == errno.EBADF


@pytest.mark.parametrize(("code", "exc"), [(2, FileNotFoundError), (32, PermissionError)])
def test_trace_open_maps_win32_errors(tmp_path: Path, code: int, exc: type[OSError]) -> None:
    api, k32 = fake_api(fail_code=code)
    with pytest.raises(exc, match=f"WinError {code}"):
        open_shared(tmp_path / "x.log", api)
    assert k32.closed == []


def test_sdk_segment_append_goes_through_the_seam(tmp_path: Path) -> None:
    seg = tmp_path / "svc.20260101T000000Z.1.0.log"
    api, k32 = fake_api()
    fd = open_append(seg, api)
    try:
        os.write(fd, b"one\n")
        os.write(fd, b"two\n")
    finally:
        os.close(fd)
    assert seg.read_bytes() == b"one\ntwo\n"
    (call,) = k32.calls
    assert call[1] == _winfile.FILE_APPEND_DATA and call[2] == _winfile.share_mode()
    assert call[4] == _winfile.OPEN_ALWAYS  # created when missing, appended to otherwise

    api, k32 = fake_api(fail_wrap=True)
    with pytest.raises(OSError, match="too many"):
        open_append(seg, api)
    assert len(k32.closed) == 1
