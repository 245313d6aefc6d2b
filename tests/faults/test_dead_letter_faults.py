"""The dead-letter file when its folder fails: ENOSPC while flushing (injected through the
writer's OS seam, and on a real full tmpfs), the folder removed or read-only, descriptors
exhausted. Every failing flush raises an OSError naming the file; no entry is lost, torn or
written twice; a later flush succeeds by itself. And the real sidecar, its dead-letter flush
failing mid-run with ENOSPC: every invalid line ends up quarantined exactly once."""

from __future__ import annotations

import errno
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from fsfaults import (
    CHAOS_LAUNCHER,
    FullDisk,
    fill,
    problems,
    run_python,
    skip_unless_modes_apply,
    small_tmpfs,
)

from sidecar.transform.quarantine import CURRENT, DeadLetter
from tests.sidecar.engine.enginehelp import Sidecar, archived, line, wait_for, write_config


def _put(dl: DeadLetter, start: int, n: int, pad: int = 0) -> None:
    for i in range(start, start + n):
        dl.write(
            b'{"service":"svc","level":"LOUD","n":%d,"pad":"%s"}' % (i, b"x" * pad),
            file="/logs/a.log",
            file_key="k",
            offset=i * 100,
            reasons=[{"rule": "OBS003", "field": "level", "message": "m", "column": 1}],
        )


def _numbers(folder: Path) -> list[int]:
    """``n`` of every entry in the dead-letter files, oldest file first; every line must be
    a whole entry (nothing torn)."""
    out = []
    files = sorted(folder.glob("quarantine-*.ndjson"))
    if (folder / CURRENT).exists():
        files.append(folder / CURRENT)
    for p in files:
        data = p.read_bytes()
        assert not data or data.endswith(b"\n"), (p, data[-80:])
        for raw in data.splitlines():
            out.append(orjson.loads(orjson.loads(raw)["raw"])["n"])
    return out


@pytest.mark.parametrize(
    ("full", "partial"),
    [({"write"}, False), ({"write"}, True), ({"fsync"}, False)],
    ids=["write", "short-write", "fsync"],
)
def test_enospc_while_flushing_keeps_every_entry_once(
    tmp_path: Path, full: set[str], partial: bool
) -> None:
    disk = FullDisk()
    dl = DeadLetter(tmp_path, max_bytes=1 << 20, max_files=3, io=disk)
    _put(dl, 0, 50)
    dl.flush()
    _put(dl, 50, 50)
    disk.full, disk.partial = full, partial
    for _ in range(3):  # every retry while full fails the same clear way
        with pytest.raises(OSError) as ei:
            dl.flush()
        assert ei.value.errno == errno.ENOSPC
        assert ei.value.filename == str(tmp_path / CURRENT)
        assert _numbers(tmp_path) == list(range(50))  # durable ones only, none torn
        assert dl.unsynced == 50
    _put(dl, 100, 20)  # accepted meanwhile
    disk.full = set()
    dl.flush()
    assert _numbers(tmp_path) == list(range(120))
    assert dl.unsynced == 0
    dl.close()
    assert disk.failures >= 3


def test_enospc_across_a_rotation_keeps_every_entry_once(tmp_path: Path) -> None:
    disk = FullDisk()
    dl = DeadLetter(tmp_path, max_bytes=4096, max_files=100, io=disk)
    _put(dl, 0, 10, pad=100)
    dl.flush()
    _put(dl, 10, 40, pad=100)  # several files' worth
    disk.full = {"fsync"}
    with pytest.raises(OSError) as ei:
        dl.flush()
    assert ei.value.errno == errno.ENOSPC
    got = _numbers(tmp_path)
    assert got == list(range(len(got)))  # what is there is durable, in order, once
    disk.full = set()
    dl.flush()
    assert _numbers(tmp_path) == list(range(50))
    dl.close()


def test_full_real_tmpfs_then_space_returns(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        qdir = disk / "quarantine"
        dl = DeadLetter(qdir, max_bytes=1 << 20, max_files=3)
        _put(dl, 0, 20)
        dl.flush()
        ballast = fill(disk)
        _put(dl, 20, 300, pad=200)  # ~90 KB: cannot fit
        with pytest.raises(OSError) as ei:
            dl.flush()
        assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(qdir / CURRENT)
        assert _numbers(qdir) == list(range(20))
        ballast.unlink()
        dl.flush()
        assert _numbers(qdir) == list(range(320))
        dl.close()


def test_folder_removed_then_blocked_then_back(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    dl = DeadLetter(qdir, max_bytes=1 << 20, max_files=3)
    _put(dl, 0, 30)
    dl.flush()
    shutil.rmtree(qdir)  # an operator removes the folder (and the entries in it)
    qdir.write_text("not a folder")  # ...and something takes its place for a while
    _put(dl, 30, 30)
    with pytest.raises(OSError) as ei:
        dl.flush()
    assert str(qdir) in str(ei.value)
    assert dl.unsynced == 30
    qdir.unlink()
    dl.flush()  # no restart: the folder and the file are made again
    assert _numbers(qdir) == list(range(30, 60))
    _put(dl, 60, 5)
    dl.close()
    assert _numbers(qdir) == list(range(30, 65))


def test_folder_removed_between_write_and_fsync(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    dl = DeadLetter(qdir, max_bytes=1 << 20, max_files=3)
    _put(dl, 0, 10)
    dl.flush()
    _put(dl, 10, 10)
    dl.flush(durable=False)  # in the file, not yet on disk
    shutil.rmtree(qdir)
    dl.flush()  # not "durable" in a deleted file: written again to a new one
    assert _numbers(qdir) == list(range(10, 20))
    dl.close()
    assert _numbers(qdir) == list(range(10, 20))


def test_no_entry_no_file(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path / "q", max_bytes=1 << 20, max_files=3)
    dl.flush()
    dl.close()
    assert not (tmp_path / "q").exists()


def test_folder_read_only_then_writable(tmp_path: Path) -> None:
    skip_unless_modes_apply(tmp_path)
    qdir = tmp_path / "q"
    qdir.mkdir()
    # In a child that file modes apply to even as root: the live file is gone and the folder
    # read-only, so the flush cannot create it; after chmod back the next flush succeeds.
    code = f"""
import errno, json, os
from pathlib import Path
from sidecar.transform.quarantine import DeadLetter
q = Path({str(qdir)!r})
dl = DeadLetter(q, max_bytes=1 << 20, max_files=3)
def put(a, b):
    for i in range(a, b):
        dl.write(b'{{"n":%d}}' % i, file=None, file_key=None, offset=i, reasons=[])
put(0, 10); dl.flush()
(q / "quarantine.ndjson").unlink()
q.chmod(0o500)
put(10, 20)
try:
    dl.flush(); err = None
except OSError as exc:
    err = [exc.errno, exc.filename]
q.chmod(0o700)
dl.flush(); dl.close()
print(json.dumps({{"err": err}}))
"""
    out = run_python(code, unprivileged=True)
    assert out["err"] == [errno.EACCES, str(qdir / CURRENT)]
    data = (qdir / CURRENT).read_bytes().splitlines()
    assert [orjson.loads(orjson.loads(x)["raw"])["n"] for x in data] == list(range(10, 20))


def test_descriptors_exhausted_then_released(tmp_path: Path) -> None:
    qdir = tmp_path / "q"
    code = f"""
import json, os
from pathlib import Path
from sidecar.transform.quarantine import DeadLetter
from tests.faults.fsfaults import exhaust_descriptors
dl = DeadLetter(Path({str(qdir)!r}), max_bytes=1 << 20, max_files=3)
for i in range(25):
    dl.write(b'{{"n":%d}}' % i, file=None, file_key=None, offset=i, reasons=[])
held = exhaust_descriptors()
try:
    dl.flush(); err = None
except OSError as exc:
    err = [exc.errno, exc.filename]
for fd in held[:8]:
    os.close(fd)
dl.flush(); dl.close()
print(json.dumps({{"err": err}}))
"""
    out = run_python(code, nofile=64)
    assert out["err"] == [errno.EMFILE, str(qdir / CURRENT)]
    assert len((qdir / CURRENT).read_bytes().splitlines()) == 25


def test_write_refuses_new_entries_once_max_pending_waits(tmp_path: Path) -> None:
    disk = FullDisk()
    dl = DeadLetter(tmp_path, max_bytes=1 << 20, max_files=3, io=disk, max_pending=4096)
    disk.full = {"open"}
    accepted = 0
    with pytest.raises(OSError) as ei:
        for i in range(1000):
            _put(dl, i, 1)
            accepted += 1
    assert ei.value.errno == errno.ENOSPC and accepted < 1000
    assert dl.unsynced == accepted  # the refused entry was not kept (the caller has it)
    disk.full = set()
    dl.close()
    assert _numbers(tmp_path) == list(range(accepted))


def _quarantined_seqs(state: Path, running: bool = True) -> Counter[int]:
    """The seqs in the dead-letter files. While the sidecar runs, a line it is writing at that
    moment may be seen in part: only whole lines count then. Once it has stopped, every line
    must be whole."""
    seqs: Counter[int] = Counter()
    for p in sorted((state / "quarantine").glob("quarantine*.ndjson")):
        *whole, tail = p.read_bytes().split(b"\n")
        assert running or not tail, f"{p}: torn last line {tail[:80]!r}"
        for raw in whole:
            entry: dict[str, Any] = orjson.loads(raw)
            seqs[orjson.loads(entry["raw"])["seq"]] += 1
    return seqs


def _lines(n0: int, n: int) -> bytes:
    # Every 5th line breaks the schema (a made-up level): quarantined.
    out = []
    for i in range(n0, n0 + n):
        out.append(line(i, level="LOUD") if i % 5 == 0 else line(i))
    return b"".join(x + b"\n" for x in out)


def test_real_sidecar_dead_letter_flush_enospc_mid_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    state = tmp_path / "state"
    flag = tmp_path / "disk-full.flag"
    env = {"OBSKIT_CHAOS_ENOSPC_FLAG": str(flag), "OBSKIT_CHAOS_ENOSPC_DIR": str(state)}
    log = tmp_path / "logs" / "a.log"
    log.write_bytes(_lines(0, 500))
    side = Sidecar(cfg, tmp_path, env=env, command=CHAOS_LAUNCHER)
    try:
        wait_for(lambda: sum(_quarantined_seqs(state).values()) == 100, what="first entries")
        flag.touch()  # the state volume is full: fsync of the dead-letter file fails
        with open(log, "ab") as f:
            f.write(_lines(500, 500))
        wait_for(
            lambda: any("ENOSPC" in str(e) or "No space left" in str(e) for e in problems(side)),
            what="a disk-full error",
        )
        assert side.proc.poll() is None, side.out_path.read_text()[-3000:]
        err = next(e for e in problems(side) if "No space left" in str(e))
        assert str(state) in str(err), err
        got = _quarantined_seqs(state)
        assert max(got.values()) == 1  # nothing twice, nothing torn (parsed above)
        flag.unlink()  # space is back: no restart
        wait_for(lambda: sum(_quarantined_seqs(state).values()) == 200, what="every entry")
        assert side.signal(signal.SIGTERM) == 0, side.out_path.read_text()[-3000:]
    finally:
        side.close()
    assert _quarantined_seqs(state, running=False) == Counter(range(0, 1000, 5))
    valid = Counter(r["seq"] for r in archived(tmp_path))
    assert valid == Counter(i for i in range(1000) if i % 5)


def test_real_sidecar_stopped_while_full_exits_1_and_a_restart_loses_nothing(
    tmp_path: Path,
) -> None:
    # Same fault, and the process is stopped while the disk is still full: it exits (no
    # hang), and a restart with space back quarantines every invalid line (none lost).
    cfg = write_config(tmp_path)
    state = tmp_path / "state"
    flag = tmp_path / "disk-full.flag"
    env = {"OBSKIT_CHAOS_ENOSPC_FLAG": str(flag), "OBSKIT_CHAOS_ENOSPC_DIR": str(state)}
    (tmp_path / "logs" / "a.log").write_bytes(_lines(0, 300))
    side = Sidecar(cfg, tmp_path, env=env, command=CHAOS_LAUNCHER)
    try:
        wait_for(lambda: sum(_quarantined_seqs(state).values()) == 60, what="first entries")
        flag.touch()
        with open(tmp_path / "logs" / "a.log", "ab") as f:
            f.write(_lines(300, 300))
        wait_for(lambda: any("No space left" in str(e) for e in problems(side)), what="an error")
        side.proc.send_signal(signal.SIGTERM)
        # Exit 1 (the orchestrator restarts it) with the cause; the checkpoint never passed
        # the entries that could not be made durable.
        assert side.proc.wait(timeout=60) == 1
    finally:
        side.close()
    last = [e for e in problems(side) if "stopped by" in str(e.get("message"))]
    assert last and str(state / "quarantine" / CURRENT) in last[0]["message"], (
        side.out_path.read_text()
    )
    flag.unlink()
    again = Sidecar(cfg, tmp_path, "--exit-on-idle", "0.5")
    try:
        assert again.proc.wait(timeout=90) == 0, again.out_path.read_text()[-3000:]
    finally:
        again.close()
    got = _quarantined_seqs(state, running=False)
    assert set(got) == set(range(0, 600, 5))
