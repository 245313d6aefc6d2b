"""Faults in the log folder, driven into the real sidecar process (issue 12 item 2, issue 13
item 4). Each test asserts that the healthy files' lines all arrive (exact counts by sequence
number), that the WARN names the file and the cause, and that the metric moves.

Real faults where the OS produces them for root too: a symlink loop (ELOOP), a FIFO (ENXIO), a
file name that is not UTF-8, a sub-folder path longer than PATH_MAX (ENAMETOOLONG), a missing
or looping source folder, deletion and truncation. EIO, EACCES and EISDIR are injected through
the source's ``Files`` seam in the real process (``faulty_files.py``): a failing disk cannot
be made without FUSE, and ``chmod 000`` does not stop root.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.deepfolders import unlistable_below
from tests.receivers.loki import Limits, LokiReceiver
from tests.sidecar.engine.enginehelp import (
    Sidecar,
    archived,
    line,
    quarantined,
    run_once,
    sidecars_fixture,  # noqa: F401
    wait_for,
    write_config,
)

FAULTY = [sys.executable, str(Path(__file__).with_name("faulty_files.py"))]


def injected(tmp: Path, name: str, op: str, code: str, at: int = 0) -> tuple[Path, dict[str, str]]:
    """The flag file and the environment for ``faulty_files.py``: ``op`` on the file ``name``
    fails with ``code`` (reads from byte ``at``) while the flag exists."""
    flag = tmp / "fault.flag"
    flag.touch()
    spec = json.dumps({name: [op, code, at]})
    return flag, {"OBSKIT_FAULT_FILES": spec, "OBSKIT_FAULT_FLAG": str(flag)}


def lines(a: int, b: int, **extra: Any) -> bytes:
    return b"".join(line(i, **extra) + b"\n" for i in range(a, b))


def metric(base: str, name: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for ln in text.splitlines():
        if ln.startswith(name + " "):
            return float(ln.rsplit(" ", 1)[1])
    return 0.0


def warns(records: list[dict[str, Any]], kind: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r.get("component") == "source"
        and r.get("level") in ("WARN", "WARNING")
        and (kind is None or r.get("kind") == kind)
    ]


def seqs(tmp: Path) -> Counter[int]:
    return Counter(int(r["seq"]) for r in archived(tmp))


def start(cfg: Path, tmp: Path, sidecars: list[Sidecar], **kw: Any) -> tuple[Sidecar, str]:
    s = Sidecar(cfg, tmp, **kw)
    sidecars.append(s)
    return s, "http://" + s.address()


def ship_beside_fault(
    cfg: Path, tmp: Path, sidecars: list[Sidecar], healthy: int, reason: str, **kw: Any
) -> dict[str, Any]:
    """Run the sidecar until the ``healthy`` numbered lines (0..healthy-1) already in the
    folder arrive and ``obskit_sidecar_source_errors_total{reason}`` moved; stop it; check
    each line arrived once; return the one source WARN."""
    s, base = start(cfg, tmp, sidecars, **kw)
    metric_name = f'obskit_sidecar_source_errors_total{{reason="{reason}"}}'
    wait_for(lambda: len(archived(tmp)) >= healthy, what="the healthy lines")
    wait_for(lambda: metric(base, metric_name) >= 1, what=f"the {reason} metric")
    assert s.signal(signal.SIGTERM) == 0
    assert seqs(tmp) == Counter(range(healthy))
    (w,) = warns(s.logs(), "error")
    assert w["errno"] == reason
    return w


# -- faults of one file or entry ------------------------------------------------------------


def test_symlink_loop_in_the_log_folder(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    os.symlink("self.log", logs / "self.log")  # ln -s self.log self.log: exited 1 before
    (logs / "app.log").write_bytes(lines(0, 500))
    w = ship_beside_fault(cfg, tmp_path, sidecars, 500, "ELOOP")
    assert w["path"] == str(logs / "self.log") and w["op"] == "stat"
    assert "symbolic links" in w["message"] and "self.log" in w["message"]


def test_file_name_that_is_not_utf8(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    """Exited 1 at every start and never wrote checkpoints.json before: now read, kept
    exactly in the checkpoints (read once across restarts), escaped in messages."""
    cfg = write_config(tmp_path)
    logs = os.fsencode(tmp_path / "logs")
    bad = os.path.join(logs, b"caf\xe9.log")
    with open(bad, "wb") as f:
        f.write(lines(0, 300) + b'{"not": "schema v1"}\n')  # one line for the quarantine
    with open(os.path.join(logs, b"good.log"), "wb") as f:
        f.write(lines(1000, 1300))
    res = run_once(cfg, idle=0.3)
    assert res.returncode == 0, res.stdout + res.stderr
    assert seqs(tmp_path) == Counter([*range(300), *range(1000, 1300)])
    doc = json.loads((tmp_path / "state" / "checkpoints.json").read_bytes().decode("utf-8"))
    (entry,) = [e for e in doc["files"].values() if "path_b64" in e]
    assert base64.b64decode(entry["path_b64"]) == bad
    assert entry["path"].endswith("caf\\xe9.log") and entry["offset"] == os.path.getsize(bad)
    (q,) = quarantined(tmp_path)
    assert base64.b64decode(q["file_b64"]) == bad and q["file"].endswith("caf\\xe9.log")
    # A restart resumes from the checkpoints: nothing read twice, the new lines read.
    with open(bad, "ab") as f:
        f.write(lines(300, 320))
    res = run_once(cfg, idle=0.3)
    assert res.returncode == 0, res.stdout + res.stderr
    assert seqs(tmp_path) == Counter([*range(320), *range(1000, 1300)])


def test_fifo_in_the_log_folder(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    os.mkfifo(logs / "pipe.log")  # opening it for reading would block forever
    (logs / "app.log").write_bytes(lines(0, 200))
    w = ship_beside_fault(cfg, tmp_path, sidecars, 200, "ENXIO")
    assert "pipe.log" in w["message"] and "FIFO" in w["message"]


def test_sub_folder_that_cannot_be_listed(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    """A sub-folder whose path is longer than PATH_MAX (ENAMETOOLONG, for root too)."""
    cfg = write_config(tmp_path, source={"recursive": True})
    logs = tmp_path / "logs"
    unlistable_below(logs / "deep")
    (logs / "app.log").write_bytes(lines(0, 100))
    (logs / "deep" / "b.log").write_bytes(lines(100, 200))
    w = ship_beside_fault(cfg, tmp_path, sidecars, 200, "ENAMETOOLONG")
    assert w["op"] == "list" and w["path"].startswith(str(logs / "deep"))
    shutil.rmtree(logs / "deep", ignore_errors=True)


def test_io_error_while_reading_one_file(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    """EIO on one file's reads past its first KiB (a bad block): the other file is shipped
    whole meanwhile; when the disk recovers the file is read from where it was."""
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    flag, env = injected(tmp_path, "bad.log", "read", "EIO", at=2048)
    (logs / "bad.log").write_bytes(lines(0, 300))
    (logs / "good.log").write_bytes(lines(1000, 1300))
    s, base = start(cfg, tmp_path, sidecars, command=FAULTY, env=env)
    wait_for(lambda: len(archived(tmp_path)) >= 300, what="the healthy file")
    wait_for(lambda: bool(warns(s.logs(), "error")), what="the EIO warning")
    assert metric(base, 'obskit_sidecar_source_errors_total{reason="EIO"}') >= 1
    assert seqs(tmp_path) == Counter(range(1000, 1300))
    flag.unlink()  # the disk recovers
    wait_for(lambda: len(archived(tmp_path)) >= 600, what="the file after recovery")
    assert s.signal(signal.SIGTERM) == 0
    assert seqs(tmp_path) == Counter([*range(300), *range(1000, 1300)])
    (w,) = warns(s.logs(), "error")  # once, however many retries
    assert w["errno"] == "EIO" and w["path"] == str(logs / "bad.log") and w["op"] == "read"
    assert "Input/output error" in w["message"]
    back = [r for r in s.logs() if r.get("kind") == "recovered"]
    assert len(back) == 1 and "bad.log" in back[0]["message"]


@pytest.mark.parametrize("code", ["EACCES", "EISDIR"])
def test_open_refused_on_one_file(tmp_path: Path, sidecars: list[Sidecar], code: str) -> None:
    """EACCES (permissions; root is never refused for real) and EISDIR (a folder put in the
    file's place between the scan and the open), through the Files seam."""
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    _flag, env = injected(tmp_path, "locked.log", "open", code)
    (logs / "locked.log").write_bytes(lines(10_000, 10_050))
    (logs / "good.log").write_bytes(lines(0, 200))
    w = ship_beside_fault(cfg, tmp_path, sidecars, 200, code, command=FAULTY, env=env)
    assert w["path"] == str(logs / "locked.log") and w["op"] == "open"


# -- the source folder ------------------------------------------------------------------------


def test_source_folder_missing_then_created(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    logs.rmdir()  # the default /app/logs without its volume, or a typo in source.path
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: bool(warns(s.logs(), "folder_missing")), what="the missing-folder warning")
    time.sleep(0.5)  # several scans: still one warning
    assert metric(base, 'obskit_sidecar_source_warnings_total{kind="folder_missing"}') == 1
    logs.mkdir()
    (logs / "app.log").write_bytes(lines(0, 100))
    wait_for(lambda: len(archived(tmp_path)) >= 100, what="lines of the folder once created")
    assert s.signal(signal.SIGTERM) == 0
    assert seqs(tmp_path) == Counter(range(100))
    (w,) = warns(s.logs(), "folder_missing")
    assert w["path"] == str(logs) and "does not exist" in w["message"]
    back = [r for r in s.logs() if r.get("kind") == "recovered"]
    assert len(back) == 1 and str(logs) in back[0]["message"]


def test_source_folder_unreadable_mid_run(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    """The folder is swapped for a symlink loop (ELOOP: unreadable, even for root) while the
    sidecar runs, then restored: one WARN, one INFO, nothing reported lost, every line read."""
    cfg = write_config(tmp_path)
    logs = tmp_path / "logs"
    (logs / "app.log").write_bytes(lines(0, 100))
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: len(archived(tmp_path)) >= 100, what="the first lines")
    logs.rename(tmp_path / "aside")
    os.symlink("logs", logs)
    wait_for(
        lambda: metric(base, 'obskit_sidecar_source_errors_total{reason="ELOOP"}') == 1,
        what="the folder error",
    )
    time.sleep(0.5)
    logs.unlink()
    (tmp_path / "aside").rename(logs)
    with (logs / "app.log").open("ab") as f:
        f.write(lines(100, 150))
    wait_for(lambda: len(archived(tmp_path)) >= 150, what="lines after the folder is back")
    assert metric(base, 'obskit_sidecar_source_errors_total{reason="ELOOP"}') == 1
    assert metric(base, "obskit_sidecar_source_lost_bytes_total") == 0
    assert s.signal(signal.SIGTERM) == 0
    assert seqs(tmp_path) == Counter(range(150))
    (w,) = warns(s.logs(), "error")
    assert w["errno"] == "ELOOP" and "cannot read source folder" in w["message"]


# -- lost content: never silent -----------------------------------------------------------------


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    rx = LokiReceiver(Limits(reject_old_samples=False)).start()
    try:
        yield rx
    finally:
        rx.stop()


def loki_config(tmp: Path, rx: LokiReceiver, **sections: Any) -> Path:
    """A Loki sink without its spool: these tests are about what the files alone can keep
    (with the spool on, the lines would be safe in it before the files go)."""
    sink = {
        "name": "loki",
        "type": "loki",
        "url": rx.url,
        "timeout": "2s",
        "retry": {"initial": 0.05, "max": 0.2},
        "spool": False,
    }
    return write_config(tmp, sinks=[sink], shutdown_timeout="1s", **sections)


def loki_seqs(rx: LokiReceiver) -> Counter[int]:
    return Counter(int(orjson.loads(x)["seq"]) for x in rx.lines())


def test_file_deleted_with_unacknowledged_lines_reported_at_stop(
    tmp_path: Path, sidecars: list[Sidecar], loki: LokiReceiver
) -> None:
    """Loki is down; the sidecar has read a file whose service then deletes it. At SIGTERM
    those lines can never be read again: the exact bytes and lines are reported lost, and
    the next start does not report them twice."""
    cfg = loki_config(tmp_path, loki, source={"rotate_wait": "1h", "poll_interval": "100ms"})
    logs = tmp_path / "logs"
    loki.outage(3600)
    (logs / "gone.log").write_bytes(lines(0, 250))
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: metric(base, "obskit_sidecar_lines_read_total") >= 250, what="lines read")
    (logs / "gone.log").unlink()
    time.sleep(0.3)  # a scan sees it gone (its handle is kept to read it to its end)
    assert s.signal(signal.SIGTERM) == 0
    (w,) = warns(s.logs(), "lost")
    size = len(lines(0, 250))
    assert (w["bytes"], w["lines"]) == (size, 250) and w["path"] == str(logs / "gone.log")
    assert f"lost {size} bytes (250 lines)" in w["message"]
    # Settled in the checkpoints: a restart does not report it again.
    store = CheckpointStore(tmp_path / "state" / "checkpoints.json")
    assert store.load() == []
    tailer = Tailer(SourceSettings(path=str(logs), fs_events=False), store)
    tailer.poll()
    assert tailer.lost.bytes == 0 and [e for e in tailer.warnings() if e.kind == "lost"] == []
    tailer.close()


def test_file_deleted_while_the_sidecar_was_down(
    tmp_path: Path, sidecars: list[Sidecar], loki: LokiReceiver
) -> None:
    """kill -9 while Loki is down, then the file is deleted: the next start finds its
    checkpoint (offset and last size) without the file and counts the unacknowledged bytes
    in /metrics (their line count is unknown: they were never read by this process)."""
    cfg = loki_config(tmp_path, loki)
    logs = tmp_path / "logs"
    loki.outage(3600)
    (logs / "gone.log").write_bytes(lines(0, 400))
    (logs / "kept.log").write_bytes(lines(1000, 1100))
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: metric(base, "obskit_sidecar_lines_read_total") >= 500, what="lines read")
    cp = tmp_path / "state" / "checkpoints.json"
    size = len(lines(0, 400))

    def sizes_saved() -> bool:
        try:
            doc = json.loads(cp.read_bytes())
        except (OSError, ValueError):
            return False
        return any(e.get("size") == size for e in doc["files"].values())

    wait_for(sizes_saved, what="the checkpoint with the file's size")
    s.kill()
    (logs / "gone.log").unlink()
    loki.clear_faults()
    s2, base2 = start(cfg, tmp_path, sidecars)
    wait_for(lambda: len(loki.lines()) >= 100, what="the kept file")
    wait_for(
        lambda: metric(base2, "obskit_sidecar_source_lost_bytes_total") == size,
        what="the lost bytes",
    )
    assert metric(base2, "obskit_sidecar_source_lost_lines_total") == 0
    assert s2.signal(signal.SIGTERM) == 0
    assert loki_seqs(loki) == Counter(range(1000, 1100))
    (w,) = warns(s2.logs(), "lost")
    assert w["bytes"] == size and w["lines"] is None and w["path"] == str(logs / "gone.log")
    assert "line count unknown" in w["message"] and "away" in w["message"]


def test_truncation_that_overtakes_the_reader(
    tmp_path: Path, sidecars: list[Sidecar], loki: LokiReceiver
) -> None:
    """Loki is down and reading has paused at the memory limit; the file is truncated (no
    copy kept) and written again. The bytes the sidecar had not read are lost: exactly the
    file's old size minus the lines delivered from it."""
    cfg = loki_config(tmp_path, loki, memory={"max_inflight_bytes": "64KiB"})
    log = tmp_path / "logs" / "app.log"
    loki.outage(3600)
    old = lines(0, 20_000)
    log.write_bytes(old)
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: metric(base, "obskit_sidecar_lines_read_total") > 0, what="reading")
    time.sleep(0.5)  # paused: the memory limit is reached
    assert metric(base, "obskit_sidecar_lines_read_total") < 20_000
    with open(log, "r+b") as f:
        f.truncate(0)
    with open(log, "ab") as f:
        f.write(lines(50_000, 50_100))
    loki.clear_faults()
    wait_for(lambda: 50_099 in loki_seqs(loki), what="the new lines")
    got = loki_seqs(loki)
    delivered_old = [n for n in got if n < 20_000]
    lost = len(old) - sum(len(line(n)) + 1 for n in delivered_old)
    assert 0 < lost < len(old)
    wait_for(
        lambda: metric(base, "obskit_sidecar_source_lost_bytes_total") == lost,
        what="the lost bytes",
    )
    assert s.signal(signal.SIGTERM) == 0
    assert max(got.values()) == 1 and sorted(delivered_old) == list(range(len(delivered_old)))
    assert sorted(n for n in got if n >= 50_000) == list(range(50_000, 50_100))
    (w,) = warns(s.logs(), "lost")
    assert w["bytes"] == lost and "truncated" in w["message"] and w["path"] == str(log)


def _deleted_handles(pid: int) -> list[str]:
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.endswith(" (deleted)") and "/logs/" in target:
                out.append(target)
    return out


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_deleted_file_is_not_held_open_while_reading_is_paused(
    tmp_path: Path, sidecars: list[Sidecar], loki: LokiReceiver
) -> None:
    """Loki is down, there is no spool, reading has paused at the memory limit; the service
    rotates and deletes its file. After rotate_wait the sidecar lets the deleted file go
    (no handle keeps its name "delete pending" on Windows, or its space here), reporting
    exactly the bytes it never read; the rest ships once Loki is back."""
    cfg = loki_config(
        tmp_path,
        loki,
        memory={"max_inflight_bytes": "64KiB"},
        source={"rotate_wait": "1s", "poll_interval": "100ms"},
    )
    log = tmp_path / "logs" / "app.log"
    loki.outage(3600)
    old = lines(0, 20_000)
    log.write_bytes(old)
    s, base = start(cfg, tmp_path, sidecars)
    wait_for(lambda: metric(base, "obskit_sidecar_lines_read_total") > 0, what="reading")
    time.sleep(0.5)  # paused at the memory limit
    read_before = metric(base, "obskit_sidecar_lines_read_total")
    assert read_before < 20_000
    os.replace(log, log.with_suffix(".log.1"))
    log.with_suffix(".log.1").unlink()
    log.write_bytes(lines(50_000, 50_100))
    wait_for(lambda: metric(base, "obskit_sidecar_source_lost_bytes_total") > 0, what="the loss")
    wait_for(lambda: not _deleted_handles(s.proc.pid), 5, "the deleted file's handle to close")
    loki.clear_faults()
    wait_for(lambda: 50_099 in loki_seqs(loki), what="the new file")
    got = loki_seqs(loki)
    delivered_old = sorted(n for n in got if n < 20_000)
    lost = len(old) - sum(len(line(n)) + 1 for n in delivered_old)
    assert metric(base, "obskit_sidecar_source_lost_bytes_total") == lost
    assert delivered_old == list(range(len(delivered_old)))  # the lines read before: all
    assert s.signal(signal.SIGTERM) == 0
    (w,) = warns(s.logs(), "lost")
    assert w["bytes"] == lost and "deleted before it was read" in w["message"]
