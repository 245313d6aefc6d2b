"""Several processes of one service log at once into one folder: no line is lost or torn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from sdk_helpers import assert_valid, read_records

import obskit
from obskit.schema import StreamSummary, validate_stream
from obskit.sdk.segments import list_segments

WORKER = r"""
import logging, sys, obskit
obskit.configure(service="multi", log_dir=sys.argv[1], max_bytes=20000, keep_segments=0,
                 keep_bytes=0, queue_size=100000)
log = obskit.get_logger("worker")
std = logging.getLogger("worker.std")
for i in range(int(sys.argv[2])):
    if i % 2:
        log.info("structlog line", i=i, pad="x" * (i % 300))
    else:
        std.info("stdlib line", extra={"i": i, "pad": "y" * (i % 300)})
obskit.shutdown()
assert obskit.stats()["dropped"] == 0
"""


def test_concurrent_processes_write_whole_lines(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    n, procs = 2000, 4
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    running = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(folder), str(n)], env=env)
        for _ in range(procs)
    ]
    for p in running:
        assert p.wait(timeout=60) == 0
    segments = list_segments(folder, "multi")
    assert len({s.pid for s in segments}) == procs  # one set of segments per process
    lines: list[bytes] = []
    for seg in segments:
        data = seg.path.read_bytes()
        assert data.endswith(b"\n")
        lines.extend(data.splitlines())
    assert_valid(lines)
    for seg in segments:  # the streaming validator agrees, file by file
        summary = StreamSummary()
        with seg.path.open("rb") as fh:
            assert list(validate_stream(fh, summary=summary)) == []
        assert summary.invalid == 0 and summary.valid == summary.lines > 0
    per_pid: dict[int, list[int]] = {}
    for seg in segments:
        for line in seg.path.read_bytes().splitlines():
            per_pid.setdefault(seg.pid, []).append(orjson.loads(line)["i"])
    for got in per_pid.values():
        assert got == list(range(n))  # complete and in order within each process
    # the CLI agrees (run once as a real subprocess)
    res = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "validate", *map(str, folder.glob("*.log"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{n * procs} valid" in res.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_forked_workers_get_their_own_segments(sdk: Any, log_dir: Path) -> None:
    sdk(service="forky")
    log = obskit.get_logger("parent")
    log.info("before fork")
    obskit.flush()
    children = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                for i in range(200):
                    obskit.get_logger("child").info("from child", k=k, i=i)
                obskit.shutdown()
            except BaseException:
                code = 1
            os._exit(code)
        children.append(pid)
    log.info("parent still logging")
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    lines = read_records(log_dir)
    assert_valid(lines)
    recs = [orjson.loads(x) for x in lines]
    assert sum(r["message"] == "from child" for r in recs) == 600
    assert sum(r["message"] == "parent still logging" for r in recs) == 1
    assert sum(r["message"] == "before fork" for r in recs) == 1  # not duplicated by children
    assert len({s.pid for s in list_segments(log_dir, "forky")}) == 4
