"""Atomic replace-writes (``obskit._atomic``): the Windows sharing-violation retry for both
users (checkpoints are covered in tests/sidecar/source), failures leave the old content."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from obskit import _atomic
from obskit._atomic import replace, write_atomic
from sidecar.sinks.file import JOURNAL, Config, FileSink


def _flaky_replace(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    left = [failures]
    real = os.replace

    def flaky(src: object, dst: object) -> None:
        if left[0]:
            left[0] -= 1
            raise PermissionError(13, "The process cannot access the file")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(_atomic.os, "replace", flaky)
    return left


def test_file_sink_journal_survives_a_briefly_locked_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virus scanner holding the journal for a moment (Windows) must not fail the sink's
    start; before, the journal rewrite had no retry."""
    monkeypatch.setattr(sys, "platform", "win32")
    left = _flaky_replace(monkeypatch, 3)
    sink = FileSink("f", Config(dir=str(tmp_path)))
    sink.start()
    assert left == [0]
    sink.close()
    monkeypatch.undo()
    journal = (tmp_path / JOURNAL).read_bytes()
    assert journal.count(b"\n") == 1 and b'"seg":"archive-' in journal
    assert sorted(p.name for p in tmp_path.iterdir() if "tmp" in p.name) == []


def test_replace_gives_up_after_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"x")
    left = _flaky_replace(monkeypatch, 100)
    pauses: list[float] = []
    with pytest.raises(PermissionError):
        replace(src, dst, windows=True, sleep=pauses.append)
    assert 100 - left[0] == _atomic.REPLACE_ATTEMPTS
    assert len(pauses) == _atomic.REPLACE_ATTEMPTS - 1 and max(pauses) == 0.5
    # On POSIX a failure is reported at once.
    left[0] = 1
    with pytest.raises(PermissionError):
        replace(src, dst, windows=False, sleep=pauses.append)
    assert len(pauses) == _atomic.REPLACE_ATTEMPTS - 1


def test_failed_write_keeps_the_old_content_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
