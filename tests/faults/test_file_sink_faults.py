"""The file sink when its archive folder fails: removed (and something else in its place for
a while), read-only at a rotation, descriptors exhausted, ENOSPC at each write of a batch.
The batch fails with an error naming the file, the sink stays consistent, and the retry
succeeds by itself once the problem clears, with no restart: every line archived exactly once
(counted by sequence number), also across a restart afterwards."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fsfaults import (
    FullDisk,
    attempt,
    drop_root_file_powers,
    fill,
    numbered_batch,
    problems,
    run_python,
    skip_unless_modes_apply,
    small_tmpfs,
)

from sidecar.sinks.file import JOURNAL, Config, FileSink
from tests.sidecar.engine.enginehelp import Sidecar, line, wait_for, write_config


def _seqs(folder: Path) -> Counter[int]:
    """Sequence numbers archived in ``folder``; every line must be a whole record."""
    got: Counter[int] = Counter()
    for seg in sorted(folder.glob("archive-*.ndjson")):
        data = seg.read_bytes()
        assert not data or data.endswith(b"\n"), (seg, data[-80:])
        for raw in data.splitlines():
            rec: dict[str, Any] = orjson.loads(raw)
            got[rec["seq"]] += 1
    return got


def _restart_and_replay(folder: Path, upto: int) -> None:
    # A restart replays everything from offset 0: the journal says it is all archived.
    s = FileSink("f", Config(dir=str(folder)))
    s.set_resume_points({"k": 0})
    s.start()
    s.send(numbered_batch(99, 0, upto))
    s.close()


@pytest.mark.parametrize(
    ("full", "partial"),
    [
        ({"write"}, False),
        ({"write"}, True),
        ({"fsync"}, False),
        ({"open"}, False),  # the rotation's new segment
    ],
    ids=["write", "short-write", "fsync", "rotation-open"],
)
def test_enospc_at_each_write_of_a_batch(tmp_path: Path, full: set[str], partial: bool) -> None:
    disk = FullDisk()
    s = FileSink("f", Config(dir=str(tmp_path), max_segment_bytes=4096), io=disk)
    s.start()
    s.send(numbered_batch(1, 0, 20))
    disk.full, disk.partial = full, partial
    for _ in range(3):  # each retry while full fails the same clear way
        with pytest.raises(OSError) as ei:
            attempt(s, numbered_batch(2, 20, 20))
        assert ei.value.errno == errno.ENOSPC and str(tmp_path) in str(ei.value)
        assert _seqs(tmp_path) == Counter(range(20))
    disk.full = set()
    attempt(s, numbered_batch(2, 20, 20))  # the delivery loop's retry, once space is back
    s.send(numbered_batch(3, 40, 20))
    s.close()
    assert _seqs(tmp_path) == Counter(range(60))
    _restart_and_replay(tmp_path, 60)
    assert _seqs(tmp_path) == Counter(range(60))


def test_journal_write_fails_after_the_segment_write(tmp_path: Path) -> None:
    # The journal's own fsync fails (its data write went through): both files are cut back.
    class JournalFull(FullDisk):
        def fsync(self, fd: int) -> None:
            if "journal" in self.full and os.readlink(f"/proc/self/fd/{fd}").endswith(JOURNAL):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            super().fsync(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell the journal's descriptor")
    disk = JournalFull()
    s = FileSink("f", Config(dir=str(tmp_path)), io=disk)
    s.start()
    s.send(numbered_batch(1, 0, 10))
    disk.full = {"journal"}
    with pytest.raises(OSError) as ei:
        attempt(s, numbered_batch(2, 10, 10))
    assert ei.value.filename == str(tmp_path / JOURNAL)
    assert _seqs(tmp_path) == Counter(range(10))
    disk.full = set()
    attempt(s, numbered_batch(2, 10, 10))
    s.close()
    _restart_and_replay(tmp_path, 20)
    assert _seqs(tmp_path) == Counter(range(20))


def test_real_tmpfs_full_then_space_returns(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "512k") as disk:
        arch = disk / "archive"
        s = FileSink("f", Config(dir=str(arch), max_segment_bytes=16384))
        s.start()
        s.send(numbered_batch(1, 0, 50))
        ballast = fill(disk)
        for _ in range(2):
            with pytest.raises(OSError) as ei:
                attempt(s, numbered_batch(2, 50, 400))
            assert ei.value.errno == errno.ENOSPC
        assert _seqs(arch) == Counter(range(50))
        ballast.unlink()
        attempt(s, numbered_batch(2, 50, 400))
        s.close()
        assert _seqs(arch) == Counter(range(450))
        _restart_and_replay(arch, 450)
        assert _seqs(arch) == Counter(range(450))


def test_folder_removed_and_blocked_then_back_in_process(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    s = FileSink("f", Config(dir=str(arch)))
    s.start()
    s.send(numbered_batch(1, 0, 30))
    shutil.rmtree(arch)  # removed with what it held (by an operator)
    arch.write_text("in the way")
    with pytest.raises(OSError) as ei:
        attempt(s, numbered_batch(2, 30, 30))
    assert str(arch) in str(ei.value)
    arch.unlink()
    attempt(s, numbered_batch(2, 30, 30))  # the retry: a new segment and journal, no restart
    s.close()
    assert _seqs(arch) == Counter(range(30, 60))
    _restart_and_replay(arch, 60)
    assert _seqs(arch) == Counter(range(30, 60))


def test_descriptors_exhausted_at_a_rotation(tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    code = f"""
import json, os
from pathlib import Path
from sidecar.sinks.file import Config, FileSink
from tests.faults.fsfaults import attempt, exhaust_descriptors, numbered_batch
s = FileSink("f", Config(dir={str(arch)!r}, max_segment_bytes=4096))
s.start()
s.send(numbered_batch(1, 0, 20))
held = exhaust_descriptors()
errs = []
for _ in range(3):
    try:
        attempt(s, numbered_batch(2, 20, 20))
    except OSError as exc:
        errs.append(exc.errno)
for fd in held[:8]:
    os.close(fd)
s.send(numbered_batch(2, 20, 20))
s.send(numbered_batch(3, 40, 20))
s.close()
print(json.dumps({{"errs": errs}}))
"""
    out = run_python(code, nofile=64)
    assert out["errs"] == [errno.EMFILE] * 3
    assert _seqs(arch) == Counter(range(60))
    assert len(list(arch.glob("archive-*.ndjson"))) >= 3  # it did rotate afterwards


def _archived(folder: Path) -> Counter[int]:
    got: Counter[int] = Counter()
    for seg in sorted(folder.glob("archive-*.ndjson")):
        data = seg.read_bytes()
        for raw in data[: data.rfind(b"\n") + 1].splitlines():
            got[orjson.loads(raw)["seq"]] += 1
    return got


def _append(log: Path, start: int, n: int) -> None:
    with open(log, "ab") as f:
        f.write(b"".join(line(i) + b"\n" for i in range(start, start + n)))


def test_real_sidecar_archive_folder_removed_then_blocked_then_back(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    arch = tmp_path / "archive"
    log = tmp_path / "logs" / "a.log"
    _append(log, 0, 400)
    side = Sidecar(cfg, tmp_path)
    try:
        wait_for(lambda: sum(_archived(arch).values()) == 400, what="first lines archived")
        pid = side.proc.pid
        shutil.rmtree(arch)
        arch.write_text("in the way")
        _append(log, 400, 300)
        wait_for(
            lambda: any(str(arch) in str(e) for e in problems(side)), what="an error naming it"
        )
        assert side.proc.poll() is None
        arch.unlink()  # the folder can be made again: the sink's retry does, no restart
        wait_for(lambda: sum(_archived(arch).values()) == 300, what="the lines after the removal")
        _append(log, 700, 300)
        wait_for(lambda: sum(_archived(arch).values()) == 600, what="later lines")
        assert side.proc.pid == pid and side.signal(signal.SIGTERM) == 0, side.out_path.read_text()[
            -3000:
        ]
    finally:
        side.close()
    assert _archived(arch) == Counter(range(400, 1000))


def test_real_sidecar_archive_folder_read_only_at_a_rotation(tmp_path: Path) -> None:
    skip_unless_modes_apply(tmp_path)
    arch = tmp_path / "archive"
    cfg = write_config(
        tmp_path,
        sinks=[{"name": "archive", "type": "file", "dir": str(arch), "max_segment_bytes": 4096}],
    )
    log = tmp_path / "logs" / "a.log"
    _append(log, 0, 200)
    side = Sidecar(cfg, tmp_path, preexec_fn=drop_root_file_powers)
    try:
        wait_for(lambda: sum(_archived(arch).values()) == 200, what="first lines archived")
        arch.chmod(0o500)  # no new segment can be created: every rotation fails
        _append(log, 200, 300)
        wait_for(
            lambda: any("Permission denied" in str(e) for e in problems(side)),
            what="EACCES logged",
        )
        assert side.proc.poll() is None
        before = sum(_archived(arch).values())
        arch.chmod(0o755)
        wait_for(lambda: sum(_archived(arch).values()) == 500, what="every line, after chmod back")
        assert side.signal(signal.SIGTERM) == 0, side.out_path.read_text()[-3000:]
    finally:
        arch.chmod(0o755)
        side.close()
    assert before < 500
    assert _archived(arch) == Counter(range(500))
    assert len(list(arch.glob("archive-*.ndjson"))) >= 2  # a rotation succeeded after
