"""Rotation starts new segments (never renames, never truncates); retention tolerates files
that cannot be deleted yet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sdk_helpers import assert_valid, read_records

import obskit
from obskit.sdk.segments import SEGMENT_RE, SegmentWriter, list_segments


def _line(i: int) -> bytes:
    return b'{"timestamp":"2024-01-01T00:00:00Z","level":"INFO","service":"s","message":"%d"}\n' % i


def test_size_rotation_never_renames_an_open_file(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "svc", max_bytes=500, keep_segments=0, keep_bytes=0)
    w.write(_line(0))
    first = w.path
    assert first is not None
    # A tailer holding the first segment open keeps seeing the same file, only growing.
    tail = first.open("rb")
    inode = os.fstat(tail.fileno()).st_ino
    for i in range(1, 40):
        w.write(_line(i))
    w.close()
    segs = list_segments(tmp_path, "svc")
    assert len(segs) > 3
    assert segs[0].path == first and os.stat(first).st_ino == inode
    data = tail.read()
    tail.close()
    assert data.endswith(b"\n") and data.startswith(_line(0))
    every = b"".join(s.path.read_bytes() for s in segs)
    assert every == b"".join(_line(i) for i in range(40))  # nothing lost, order kept
    for s in segs:
        assert s.path.stat().st_size <= 500
        assert SEGMENT_RE.fullmatch(s.path.name) and s.path.name.endswith(".log")


def test_time_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = SegmentWriter(tmp_path, "svc", max_bytes=0, rotate_seconds=60)
    w.write(_line(0))
    w.opened_at -= 61  # the segment is now a minute old
    w.write(_line(1))
    w.write(_line(2))
    w.close()
    segs = list_segments(tmp_path, "svc")
    assert [s.path.read_bytes() for s in segs] == [_line(0), _line(1) + _line(2)]


def test_retention_by_count_and_size_keeps_current(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "svc", max_bytes=100, keep_segments=3, keep_bytes=0)
    for i in range(20):
        w.write(_line(i))
    segs = list_segments(tmp_path, "svc")
    assert len(segs) == 3 and segs[-1].path == w.path
    assert w.deleted == 17
    w2 = SegmentWriter(tmp_path / "b", "svc", max_bytes=100, keep_segments=0, keep_bytes=250)
    for i in range(20):
        w2.write(_line(i))
    # retention runs at rotation: closed segments <= keep_bytes, plus the current one
    sizes = [s.path.stat().st_size for s in list_segments(tmp_path / "b", "svc")]
    assert sum(sizes[:-1]) <= 250 and sum(sizes) <= 250 + 100
    # other services' files and unrelated files are never touched
    (tmp_path / "other.20240101T000000Z.1.0001.log").write_bytes(b"x\n")
    (tmp_path / "notes.log").write_bytes(b"x\n")
    w.rotate()
    assert (tmp_path / "other.20240101T000000Z.1.0001.log").exists()
    assert (tmp_path / "notes.log").exists()
    w.close()
    w2.close()


def test_delete_refused_is_retried_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = SegmentWriter(tmp_path, "svc", max_bytes=100, keep_segments=2, keep_bytes=0)
    real_unlink = Path.unlink
    locked = True

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if locked:  # what Windows says while the sidecar still has the file open
            raise PermissionError(13, "The process cannot access the file", str(self))
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    for i in range(6):
        w.write(_line(i))
    assert w.delete_failures > 0 and len(list_segments(tmp_path, "svc")) == 6
    locked = False
    w.write(_line(6))  # next rotation retries
    assert len(list_segments(tmp_path, "svc")) == 2
    w.close()


def test_dead_process_segments_are_not_protected(tmp_path: Path) -> None:
    # pid 2**22+1 is above Linux's pid_max default range and is not running.
    dead = tmp_path / "svc.20200101T000000Z.4194305.0001.log"
    dead.write_bytes(_line(0))
    w = SegmentWriter(tmp_path, "svc", max_bytes=100, keep_segments=1, keep_bytes=0)
    w.write(_line(1))
    assert not dead.exists()
    w.close()


def test_configured_rotation_end_to_end(sdk: Any, log_dir: Path) -> None:
    sdk(max_bytes=2000, keep_segments=100)
    log = obskit.get_logger()
    for i in range(200):
        log.info("event", i=i)
        if i % 50 == 0:
            obskit.flush()
    lines = read_records(log_dir)
    assert_valid(lines)
    assert len(lines) == 200
    assert len(list(log_dir.glob("*.log"))) > 5
    assert obskit.stats()["rotations"] > 4
