"""Bounded memory: a large backlog waits on disk, not in the sidecar's RSS."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from enginehelp import Sidecar, line, wait_for, write_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _hwm_kib(pid: int) -> int:
    for raw in Path(f"/proc/{pid}/status").read_text().splitlines():
        if raw.startswith("VmHWM:"):
            return int(raw.split()[1])
    raise AssertionError("no VmHWM")


def _peak_rss_mib(tmp: Path, lines: int, sidecars: list[Sidecar]) -> float:
    pad = "x" * 200
    log = tmp / "logs" / "big.log"
    cfg = write_config(
        tmp,
        memory={"max_inflight_bytes": "8MiB"},
        sinks=[{"name": "archive", "type": "file", "dir": str(tmp / "archive"), "fsync": False}],
    )
    with open(log, "wb") as fh:
        for start in range(0, lines, 10000):
            fh.write(
                b"".join(line(i, pad=pad) + b"\n" for i in range(start, min(lines, start + 10000)))
            )
    size = log.stat().st_size
    s = Sidecar(cfg, tmp)
    sidecars.append(s)
    cp = tmp / "state" / "checkpoints.json"

    def done() -> bool:
        # Until the whole file is acknowledged (the archive has every byte of it).
        archived = sum(p.stat().st_size for p in (tmp / "archive").glob("archive-*"))
        return archived >= size

    wait_for(done, timeout=120, what="backlog archived")
    peak = _hwm_kib(s.proc.pid) / 1024
    assert s.signal(signal.SIGTERM) == 0
    assert cp.exists()
    return peak


def test_large_backlog_does_not_grow_rss(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    small = _peak_rss_mib(tmp_path / "small", 2_000, sidecars)
    big = _peak_rss_mib(tmp_path / "big", 250_000, sidecars)  # ~80 MB waiting on disk
    backlog_mib = os.path.getsize(tmp_path / "big" / "logs" / "big.log") / 2**20
    assert backlog_mib > 70
    # In-flight data is bounded at 8 MiB (+ one read, one batch being written): the backlog
    # stays on disk. Growth is far below the backlog, and the total stays under 100 MiB.
    print(f"peak RSS small backlog {small:.0f} MiB, big backlog {big:.0f} MiB")
    assert big - small < 40, (small, big)
    assert big < 100, big
