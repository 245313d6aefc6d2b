"""One sidecar per state folder: a second ``obskit-sidecar run`` on the same ``checkpoint.dir``
(or the same archive folder) exits 2 with one line naming the folder and the holder's PID,
writes nothing there, and the archive holds every line once. After ``kill -9`` the OS releases
the lock. The Windows branch is driven through the OS seam."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.statelock import (
    LOCK_FILE,
    WINDOWS_LOCK_OFFSET,
    FolderLocked,
    WindowsLocks,
    lock_folders,
)
from tests.receivers.loki import LokiReceiver
from tests.sidecar.engine.enginehelp import (  # noqa: F401 - the sidecars fixture
    SIDECAR,
    Sidecar,
    archived,
    line,
    sidecars_fixture,
    wait_for,
    write_config,
)


def _logs(tmp: Path, name: str, lines: int) -> None:
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    with open(tmp / "logs" / name, "ab") as f:
        f.write(b"".join(line(i, service=name.split(".")[0]) + b"\n" for i in range(lines)))


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder`` with its size, mtime and content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


def _started(tmp: Path) -> Sidecar:
    cfg = tmp / "sidecar.yaml"
    side = Sidecar(cfg, tmp)
    side.address()
    return side


def _run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIDECAR, "run", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _one_error_line(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    lines = [x for x in res.stdout.splitlines() if x.strip()]
    assert len(lines) == 1 and not res.stderr.strip(), res.stdout + res.stderr
    rec: dict[str, Any] = orjson.loads(lines[0])
    assert rec["level"] == "ERROR"
    return rec


def _per_seq(tmp: Path) -> Counter[tuple[str, int]]:
    return Counter((r["service"], r["seq"]) for r in archived(tmp))


def test_two_instances_same_state_dir_exactly_one_runs(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    _logs(tmp_path, "a.log", 3000)
    _logs(tmp_path, "b.log", 2000)
    cmd = [*SIDECAR, "run", "--config", str(cfg), "--exit-on-idle", "1"]
    # Started together: whichever locks first runs, the other exits 2 before writing.
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [(r.returncode, r.stdout[-2000:], r.stderr[-2000:]) for r in results]
    loser = next(r for r in results if r.returncode == 2)
    winner = procs[[r.returncode for r in results].index(0)]
    rec = _one_error_line(loser)
    state = tmp_path / "state"
    assert str(state) in rec["message"] and f"pid {winner.pid}" in rec["message"]
    assert rec["holder_pid"] == winner.pid and rec["folder"] == str(state)

    per_seq = _per_seq(tmp_path)
    assert set(per_seq.values()) == {1}
    assert sum(1 for s, _ in per_seq if s == "a") == 3000
    assert sum(1 for s, _ in per_seq if s == "b") == 2000


def test_second_instance_writes_nothing_and_the_first_keeps_shipping(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    cfg = write_config(tmp_path)
    _logs(tmp_path, "a.log", 500)
    first = _started(tmp_path)
    sidecars.append(first)
    wait_for(lambda: len(archived(tmp_path)) == 500, what="first batch archived")
    wait_for((tmp_path / "state" / "checkpoints.json").exists, what="a checkpoint saved")
    before_state = _snapshot(tmp_path / "state")
    before_archive = _snapshot(tmp_path / "archive")

    res = _run(cfg)
    assert res.returncode == 2
    rec = _one_error_line(res)
    assert f"checkpoint.dir {tmp_path / 'state'} is in use" in rec["message"]
    assert f"pid {first.proc.pid}" in rec["message"]
    # The first instance may have saved a checkpoint meanwhile; the loser wrote nothing.
    after_state = _snapshot(tmp_path / "state")
    assert after_state[LOCK_FILE] == before_state[LOCK_FILE]
    assert set(after_state) == set(before_state)
    assert _snapshot(tmp_path / "archive") == before_archive

    _logs(tmp_path, "b.log", 700)
    wait_for(lambda: len(archived(tmp_path)) == 1200, what="more lines archived")
    assert first.signal(signal.SIGTERM) == 0
    per_seq = _per_seq(tmp_path)
    assert len(per_seq) == 1200 and set(per_seq.values()) == {1}


def test_lock_released_by_the_os_after_kill9(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    cfg = write_config(tmp_path)
    _logs(tmp_path, "a.log", 2000)
    first = _started(tmp_path)
    sidecars.append(first)
    wait_for(lambda: len(archived(tmp_path)) > 0, what="some lines archived")
    first.kill()  # SIGKILL: no shutdown code runs
    _logs(tmp_path, "b.log", 1000)
    res = _run(cfg, "--exit-on-idle", "0.5")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    per_seq = _per_seq(tmp_path)
    assert len(per_seq) == 3000 and set(per_seq.values()) == {1}


def test_shared_archive_dir_with_different_state_dirs_second_exits_2(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    archive = tmp_path / "archive"
    a = write_config(
        tmp_path / "a", sinks=[{"name": "archive", "type": "file", "dir": str(archive)}]
    )
    b = write_config(tmp_path / "b", sinks=[{"name": "arch", "type": "file", "dir": str(archive)}])
    _logs(tmp_path / "a", "a.log", 300)
    _logs(tmp_path / "b", "b.log", 300)
    first = Sidecar(a, tmp_path / "a")
    sidecars.append(first)
    first.address()
    before = _snapshot(archive)
    res = _run(b, "--exit-on-idle", "0.5")
    assert res.returncode == 2
    rec = _one_error_line(res)
    assert f"sink 'arch' dir {archive} is in use" in rec["message"], rec
    assert rec["holder_pid"] == first.proc.pid
    assert not (tmp_path / "b" / "state" / "checkpoints.json").exists()
    now = _snapshot(archive)
    assert now[LOCK_FILE] == before[LOCK_FILE]
    assert first.signal(signal.SIGTERM) == 0
    recs = [r for seg in sorted(archive.glob("archive-*.ndjson")) for r in _records(seg)]
    assert Counter(r["service"] for r in recs) == {"a": 300}


def _records(seg: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in seg.read_bytes().splitlines() if x]


def test_one_folder_under_two_settings_is_locked_once(tmp_path: Path) -> None:
    # The archive inside the state folder itself: one lock, not a conflict with itself.
    state = tmp_path / "state"
    held = lock_folders([("checkpoint.dir", state), ("sink 'x' dir", state / ".." / "state")])
    try:
        assert len(held.fds) == 1
        rec = orjson.loads((state / LOCK_FILE).read_bytes())
        assert rec["pid"] == os.getpid() and rec["host"]
        with pytest.raises(FolderLocked) as ei:
            lock_folders([("quarantine.dir", tmp_path / "q"), ("checkpoint.dir", state)])
        assert ei.value.holder["pid"] == os.getpid()
        # What it took before meeting the held folder was released again.
        lock_folders([("quarantine.dir", tmp_path / "q")]).release()
    finally:
        held.release()
    lock_folders([("checkpoint.dir", state)]).release()


class FakeMsvcrt:
    """``msvcrt.locking`` with Windows semantics over real files: byte ranges per open file,
    a locked range refused to every other open file (``EACCES``, as the CRT reports it)."""

    LK_UNLCK, LK_LOCK, LK_NBLCK = 0, 1, 2

    def __init__(self) -> None:
        self.held: dict[tuple[int, int, int], int] = {}
        self.calls: list[tuple[int, int, int]] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, pos)
        self.calls.append((mode, pos, nbytes))
        owner = self.held.get(key)
        if mode == self.LK_NBLCK:
            if owner is not None:
                raise OSError(errno.EACCES, "Permission denied")
            self.held[key] = fd
        elif mode == self.LK_UNLCK:
            if owner != fd:
                raise OSError(errno.EACCES, "Permission denied")
            del self.held[key]
        else:
            raise AssertionError("the sidecar must never wait for a lock")


def test_windows_branch_through_the_seam(tmp_path: Path) -> None:
    fake = FakeMsvcrt()
    win = WindowsLocks(fake)
    state = tmp_path / "state"
    held = lock_folders([("checkpoint.dir", state)], win)
    content = (state / LOCK_FILE).read_bytes()
    # The locked byte lies past the holder record, which other processes must read.
    assert fake.calls == [(FakeMsvcrt.LK_NBLCK, WINDOWS_LOCK_OFFSET, 1)]
    assert len(content) < WINDOWS_LOCK_OFFSET and orjson.loads(content)["pid"] == os.getpid()
    with pytest.raises(FolderLocked) as ei:
        lock_folders([("checkpoint.dir", state)], win)
    assert ei.value.holder["pid"] == os.getpid()
    assert f"checkpoint.dir {state} is in use" in str(ei.value)
    held.release()
    assert fake.calls[-1] == (FakeMsvcrt.LK_UNLCK, WINDOWS_LOCK_OFFSET, 1) and not fake.held
    again = lock_folders([("checkpoint.dir", state)], win)
    assert len(fake.held) == 1
    again.release()


def test_windows_lock_error_other_than_a_conflict_is_raised(tmp_path: Path) -> None:
    class Broken(FakeMsvcrt):
        def locking(self, fd: int, mode: int, nbytes: int) -> None:
            raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError) as ei:
        lock_folders([("checkpoint.dir", tmp_path / "s")], WindowsLocks(Broken()))
    assert ei.value.errno == errno.EBADF


def test_lock_held_until_the_holder_exits(tmp_path: Path) -> None:
    # Another real process (not a thread of ours): flock is per open file, across processes.
    state = tmp_path / "state"
    code = (
        "import sys, time; from pathlib import Path; from sidecar.statelock import lock_folders;"
        f"h = lock_folders([('checkpoint.dir', Path({str(state)!r}))]);"
        "print('locked', flush=True); sys.stdin.readline()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLocked) as ei:
            lock_folders([("checkpoint.dir", state)])
        assert ei.value.holder["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            lock_folders([("checkpoint.dir", state)]).release()
            break
        except FolderLocked:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_spool_drain_beside_the_running_sidecar_exits_2(
    tmp_path: Path, sidecars: list[Sidecar], loki: LokiReceiver
) -> None:
    # A drain of the spool the running sidecar writes would send its lines twice.
    loki.fail_next(100000, status=503)  # keep the spool filled while both run
    cfg = write_config(tmp_path, sinks=[{"name": "loki", "type": "loki", "url": loki.url}])
    _logs(tmp_path, "a.log", 200)
    side = _started(tmp_path)
    sidecars.append(side)
    spool = tmp_path / "state" / "spool" / "loki"
    before = _snapshot(spool)
    res = subprocess.run(
        [*SIDECAR, "spool", "drain", "--config", str(cfg), "--sink", "loki", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert f"is in use by another obskit-sidecar (pid {side.proc.pid}" in res.stderr
    assert _snapshot(spool)[LOCK_FILE] == before[LOCK_FILE]
