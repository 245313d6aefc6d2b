"""Bounded memory: a large backlog read to the end by a real process does not grow its RSS
with the file size (nothing past the read position is buffered)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from sidecar.checkpoint import CheckpointStore
    from sidecar.source.settings import SourceSettings
    from sidecar.source.tailer import Tailer

    def status(field):
        # VmHWM is per address space (reset by exec), unlike ru_maxrss which a forked
        # child inherits from its parent.
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith(field + ":"):
                return int(ln.split()[1])

    folder, size = Path(sys.argv[1]), int(sys.argv[2])
    store = CheckpointStore(folder.parent / "cp.json")
    store.load()
    t = Tailer(SourceSettings(path=str(folder), fs_events=False), store)
    before = status("VmRSS")
    end = lines = 0
    for _ in range(100000):
        chunks = t.poll(4 << 20)
        for d in t.discovered():
            store.record(d)
        for c in chunks:
            end = max(end, c.end)
            lines += c.data.count(b"\\n")
            store.advance(c.file_key, c.end, c.path)
        if end >= size:
            break
    after = status("VmHWM")
    print(json.dumps({"before_kib": before, "after_kib": after, "lines": lines, "end": end}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_backlog_of_150_mb_does_not_grow_rss(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    line = (
        b'{"timestamp":"2026-11-25T20:00:00Z","level":"INFO","service":"s","message":"'
        + (b"x" * 120)
        + b'"}\n'
    )
    block = line * 10_000
    with open(folder / "big.log", "wb") as f:
        for _ in range(75):  # ~150 MB
            f.write(block)
    size = (folder / "big.log").stat().st_size
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(size)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    r = json.loads(out.stdout)
    assert r["end"] == size and r["lines"] == 750_000
    grown_mib = (r["after_kib"] - r["before_kib"]) / 1024
    # Reading holds one poll's worth of blocks (a few MiB), never the file (~150 MiB).
    assert grown_mib < 40, f"RSS grew by {grown_mib:.0f} MiB reading a {size >> 20} MiB file"
