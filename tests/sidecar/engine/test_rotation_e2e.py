"""Rotation under heavy writing, through the real process into the file sink: no line lost,
none repeated."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from enginehelp import Sidecar, archived, line, wait_for, write_config


def _write_with_rotations(log: Path, total: int, every: int, kind: str) -> None:
    fh = open(log, "ab", buffering=0)  # noqa: SIM115
    k = 0
    try:
        for start in range(0, total, 100):
            fh.write(b"".join(line(i) + b"\n" for i in range(start, min(total, start + 100))))
            if (start + 100) % every == 0 and start + 100 < total:
                k += 1
                rotated = log.with_name(f"{log.name}.{k}")
                if kind == "rename":
                    fh.close()
                    os.rename(log, rotated)
                    fh = open(log, "ab", buffering=0)  # noqa: SIM115
                else:  # copy+truncate: the writer keeps its handle, as logrotate's copytruncate
                    shutil.copyfile(log, rotated)
                    os.truncate(log, 0)
                    fh.seek(0)
            time.sleep(0.002)
    finally:
        fh.close()


@pytest.mark.parametrize("kind", ["rename", "copytruncate"])
def test_rotation_while_writing_loses_and_repeats_nothing(
    tmp_path: Path, sidecars: list[Sidecar], kind: str
) -> None:
    cfg = write_config(tmp_path, source={"poll_interval": "50ms", "rotate_wait": "2s"})
    log = tmp_path / "logs" / "app.log"
    log.write_bytes(b"")
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    s.address()
    total = 20000
    _write_with_rotations(log, total, 2500, kind)
    wait_for(lambda: len(archived(tmp_path)) >= total, timeout=60, what="all lines archived")
    time.sleep(0.5)  # a late duplicate would show up here
    assert s.signal(signal.SIGTERM) == 0
    seqs = Counter(r["seq"] for r in archived(tmp_path))
    missing = set(range(total)) - set(seqs)
    repeated = {k: n for k, n in seqs.items() if n > 1}
    assert not missing and not repeated, (len(missing), len(repeated))
