"""The OS seam: Windows flag computation and logic with a fake kernel32/msvcrt (real files
underneath), the POSIX branch, and the tailer driven through a fake OS layer."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from obskit import _winfile
from sidecar.checkpoint import CheckpointStore
from sidecar.source.osfile import FileId, PosixFiles, WindowsFiles
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import FakeClock, Reader
from tests.winfakes import FakeKernel32, FakeMsvcrt


def test_windows_open_flags_share_read_write_delete() -> None:
    path, access, share, sa, disposition, flags, template = _winfile.create_file_args(r"C:\x.log")
    assert path == r"C:\x.log" and sa is None and template is None
    assert access == 0x80000000  # GENERIC_READ only: never write access to the service's file
    assert share == 0x1 | 0x2 | 0x4  # FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
    assert disposition == 3  # OPEN_EXISTING: never create
    assert flags & 0x08000000


def test_windows_branch_opens_reads_and_identifies(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(b"hello\n")
    k32 = FakeKernel32()
    wf = WindowsFiles(kernel32=k32, msvcrt=FakeMsvcrt())
    f = wf.open_read(str(p))
    assert f.read() == b"hello\n"
    st = os.stat(p)
    fid = wf.file_information(f)  # the ctypes path
    assert fid.ino == st.st_ino and fid.size == 6 and fid.nlink == 1
    assert abs(fid.mtime_ns - st.st_mtime_ns) < 100
    # identify() must agree with os.stat, which the folder scan uses.
    same = wf.identify(f)
    assert (same.dev, same.ino, same.size) == (st.st_dev, st.st_ino, 6)
    assert k32.calls[0][2] == _winfile.share_mode()
    f.close()


@pytest.mark.parametrize(
    ("code", "exc"), [(2, FileNotFoundError), (32, PermissionError), (5, PermissionError)]
)
def test_windows_open_errors_map_to_python_exceptions(
    tmp_path: Path, code: int, exc: type[OSError]
) -> None:
    # INVALID_HANDLE_VALUE as -1 and as it comes back through a c_void_p return type.
    for invalid in (-1, ctypes.c_void_p(-1).value or 0):
        k32 = FakeKernel32(fail_code=code, invalid=invalid)
        wf = WindowsFiles(kernel32=k32, msvcrt=FakeMsvcrt())
        with pytest.raises(exc, match=f"WinError {code}"):
            wf.open_read(str(tmp_path / "x.log"))
        assert k32.closed == []


def test_windows_handle_closed_when_wrapping_fails(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    p.write_bytes(b"x\n")
    k32 = FakeKernel32()
    wf = WindowsFiles(kernel32=k32, msvcrt=FakeMsvcrt(fail=True))
    with pytest.raises(OSError, match="too many"):
        wf.open_read(str(p))
    assert len(k32.closed) == 1  # no leaked handle keeping the file locked


def test_real_windows_layer_refuses_cleanly_off_windows() -> None:
    if os.name == "nt":  # pragma: no cover
        pytest.skip("Windows")
    with pytest.raises((OSError, ImportError)):
        WindowsFiles()


def test_tailer_through_windows_branch_with_fakes(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    """The whole tailer on the Windows code path (fake kernel32 over real files)."""
    (logdir / "a.log").write_bytes(b"one\ntwo\n")
    wf = WindowsFiles(kernel32=FakeKernel32(), msvcrt=FakeMsvcrt())
    t = Tailer(settings, store, files=wf)
    r = Reader(t, store)
    r.poll()
    assert r.lines == [b"one", b"two"]
    t.close()


class CountingFiles(PosixFiles):
    """POSIX layer that tracks which handles are open."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def open_read(self, path: str) -> BinaryIO:
        f = super().open_read(path)
        self.open[id(f)] = path
        real_close = f.close

        def close() -> None:
            self.open.pop(id(f), None)
            real_close()

        f.close = close  # type: ignore[method-assign]
        return f

    def identify(self, f: BinaryIO) -> FileId:
        return super().identify(f)


def test_handles_released_after_rotate_wait_and_idle(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, rotate_wait=5, close_idle_after=30)
    files = CountingFiles()
    (logdir / "a.log").write_bytes(b"a1\n")
    (logdir / "b.log").write_bytes(b"b1\n")
    t = Tailer(st, store, clock=clock, files=files)
    r = Reader(t, store)
    r.poll()
    assert sorted(Path(p).name for p in files.open.values()) == ["a.log", "b.log"]
    # Deleted (with lines not read yet): still drained, then released after rotate_wait.
    with (logdir / "a.log").open("ab") as f:
        f.write(b"a2\n")
    (logdir / "a.log").unlink()
    r.poll()
    assert b"a2" in r.lines
    clock.advance(4)
    r.poll()
    assert any(Path(p).name == "a.log" for p in files.open.values())
    clock.advance(1.5)
    r.poll()
    assert [Path(p).name for p in files.open.values()] == ["b.log"]
    assert [Path(s.path).name for s in t.files()] == ["b.log"]
    # Idle: released after close_idle_after, re-opened when it grows, nothing repeated.
    clock.advance(30)
    r.poll()
    assert files.open == {}
    (status,) = t.files()
    assert not status.open and status.read_offset == 3
    with (logdir / "b.log").open("ab") as f:
        f.write(b"b2\n")
    r.poll()
    assert r.lines == [b"a1", b"b1", b"a2", b"b2"] or sorted(r.lines) == [
        b"a1",
        b"a2",
        b"b1",
        b"b2",
    ]
    assert len(r.lines) == 4
    t.close()
    assert files.open == {}


def test_idle_closed_file_replaced_by_new_content_is_a_new_file(
    logdir: Path, store: CheckpointStore
) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, close_idle_after=1)
    log = logdir / "a.log"
    log.write_bytes(b"first-gen line\n")
    t = Tailer(st, store, clock=clock)
    r = Reader(t, store)
    r.poll()
    clock.advance(2)
    r.poll()
    assert not t.files()[0].open
    log.write_bytes(b"second generation, longer content\n")  # same inode, new content
    r.poll()
    assert r.lines == [b"first-gen line", b"second generation, longer content"]
    t.close()


class SkewedFiles(PosixFiles):
    """An OS layer whose handle identity disagrees with os.stat (as 32- vs 64-bit volume
    serials could on Windows)."""

    def identify(self, f: BinaryIO) -> FileId:
        fid = super().identify(f)
        return FileId(fid.dev + 1, fid.ino, fid.size, fid.mtime_ns, fid.nlink)


def test_identity_disagreement_never_restarts_a_file(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "a.log"
    log.write_bytes(b"1\n2\n")
    t = Tailer(settings, store, files=SkewedFiles())
    r = Reader(t, store, ack=False)  # no checkpoint to fall back on either
    for i in range(3, 8):
        r.poll()
        with log.open("ab") as f:
            f.write(b"%d\n" % i)
    r.poll()
    assert r.lines == [b"%d" % i for i in range(1, 8)]
    assert len(t.files()) == 1
    t.close()


@pytest.mark.parametrize("kind", ["posix", "windows"])
def test_a_deleted_file_is_told_apart_from_a_renamed_one(tmp_path: Path, kind: str) -> None:
    """The tailer lets a deleted file go instead of holding its name "delete pending"
    (Windows) or its space; a file that was only renamed away is still named."""
    from tests.winfakes import FakeKernel32, FakeMsvcrt

    files = PosixFiles() if kind == "posix" else WindowsFiles(FakeKernel32(), FakeMsvcrt())
    p = tmp_path / "a.log"
    p.write_bytes(b"x\n")
    f = files.open_read(str(p))
    try:
        assert not files.deleted(f)
        os.replace(p, tmp_path / "a.log.1")
        assert not files.deleted(f)
        (tmp_path / "a.log.1").unlink()
        assert files.deleted(f)
    finally:
        f.close()
