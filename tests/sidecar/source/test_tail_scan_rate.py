"""While catching up on a backlog (polls back to back), the folder is scanned at most once
per poll interval or after a file-system event, and the open files are read on every poll;
a new file is still found promptly: within the poll interval without fs events, at once
with them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import sidecar.source.tailer as tailer_mod
from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import Reader

BACKLOG_LINES = 40_000  # 2 KiB per poll: far more polls than the test runs


def _catch_up_until_new_file_found(
    logdir: Path, store: CheckpointStore, st: SourceSettings, monkeypatch: pytest.MonkeyPatch
) -> tuple[float, int, int]:
    """Polls back to back on a backlog; creates new.log; returns (seconds until its line was
    read, folder scans meanwhile, backlog lines read by then)."""
    scans = [0]
    real_scan = tailer_mod.scan

    def counting_scan(*a: object, **k: object) -> object:
        scans[0] += 1
        return real_scan(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(tailer_mod, "scan", counting_scan)
    (logdir / "big.log").write_bytes(
        b"".join(b"%08d backlog line\n" % i for i in range(BACKLOG_LINES))
    )
    t = Tailer(st, store)
    r = Reader(t, store)
    for _ in range(5):
        r.poll(2048)
    assert t.fs_events_active == st.fs_events
    scans[0] = 0
    (logdir / "new.log").write_bytes(b"new file\n")
    start = time.monotonic()
    deadline = start + 10
    while b"new file" not in r.lines:
        assert time.monotonic() < deadline, "new.log not found in 10 s"
        r.poll(2048)
        time.sleep(0.002)  # the engine's own work between polls
    took = time.monotonic() - start
    read = len(r.lines) - 1
    t.close()
    assert read < BACKLOG_LINES, "the backlog ran out: the test proves nothing"
    return took, scans[0], read


def test_without_fs_events_scans_once_per_poll_interval_and_finds_new_file(
    logdir: Path, store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = SourceSettings(
        path=str(logdir),
        fs_events=False,
        poll_interval=0.5,
        max_line_bytes=1024,
        read_chunk_bytes=2048,
    )
    took, scans, read = _catch_up_until_new_file_found(logdir, store, st, monkeypatch)
    assert took <= 0.5 + 0.5, f"new file found after {took:.2f}s (poll interval 0.5s)"
    # Back-to-back polls would have scanned each time; at most one scan per interval here.
    assert scans <= 2, f"{scans} folder scans in {took:.2f}s"
    assert read > 50  # reading went on between scans


def test_with_fs_events_new_file_found_at_once_despite_long_poll_interval(
    logdir: Path, store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = SourceSettings(
        path=str(logdir),
        fs_events=True,
        poll_interval=60,
        max_line_bytes=1024,
        read_chunk_bytes=2048,
    )
    took, scans, _ = _catch_up_until_new_file_found(logdir, store, st, monkeypatch)
    assert took < 3, f"new file found after {took:.2f}s with fs events"
    assert 1 <= scans <= 3
