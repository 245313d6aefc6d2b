"""The tailer's error boundary per file, its back-off, the folder's health and lost content,
driven in-process through the OS seam (``Files``) where a real fault cannot be produced (EIO,
EACCES as root) and with real files, links and folders where it can."""

from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path
from typing import BinaryIO

import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.faults import SourceEvent
from sidecar.source.osfile import PosixFiles, WindowsFiles, regular_only
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.deepfolders import unlistable_below
from tests.sidecar.source.tailhelp import FakeClock, Reader, numbers
from tests.sidecar.source.test_osfile_seam import FakeKernel32, FakeMsvcrt


def numbered(a: int, b: int) -> bytes:
    return b"".join(b"%08d line\n" % i for i in range(a, b))


class _FailingFile(io.FileIO):
    def __init__(self, fd: int, owner: FaultyFiles, name: str) -> None:
        super().__init__(fd, "rb", closefd=True)
        self._owner, self._name = owner, name

    def read(self, size: int = -1) -> bytes:
        # Like a bad block at byte ``after``: a read that reaches it fails.
        code = self._owner.faults.get(self._name)
        if code is not None and self._owner.op == "read":
            end = os.fstat(self.fileno()).st_size if size < 0 else self.tell() + size
            if end > self._owner.after:
                self._owner.attempts.append(self._name)
                raise OSError(code, os.strerror(code))
        return super().read(size)


class FaultyFiles(PosixFiles):
    """The POSIX layer, failing ``op`` ("open" or "read", the latter from byte ``after``) on
    the files named in ``faults`` (name -> errno) while they are listed there."""

    def __init__(self, op: str = "read", after: int = 0) -> None:
        self.faults: dict[str, int] = {}
        self.op = op
        self.after = after
        self.attempts: list[str] = []

    def open_read(self, path: str) -> BinaryIO:
        name = Path(path).name
        code = self.faults.get(name)
        if code is not None and self.op == "open":
            self.attempts.append(name)
            raise OSError(code, os.strerror(code), path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        return regular_only(_FailingFile(fd, self, name), path)


def events(t: Tailer, kind: str | None = None) -> list[SourceEvent]:
    return [e for e in t.warnings() if kind is None or e.kind == kind]


def test_eio_on_one_file_other_files_go_on_with_backoff(
    logdir: Path, store: CheckpointStore
) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, poll_interval=0.05)
    files = FaultyFiles("read", after=1500)  # past the first KiB: identified, then EIO
    files.faults["bad.log"] = errno.EIO
    (logdir / "bad.log").write_bytes(numbered(0, 200))
    (logdir / "good.log").write_bytes(numbered(1000, 1050))
    t = Tailer(st, store, clock=clock, files=files)
    r = Reader(t, store)
    r.poll()
    evs = t.warnings()
    (err,) = [e for e in evs if e.kind == "error"]
    assert err.level == "WARN" and err.reason == "EIO" and "bad.log" in err
    assert err.fields["path"].endswith("bad.log") and err.fields["errno"] == "EIO"
    assert numbers(r.lines) == list(range(1000, 1050))  # the healthy file, whole
    # Back-off: retried after 1 s, then 2 s, then 4 s (not at every poll); each attempt is
    # counted (an event without a level) but logged only once.
    tried_at = []
    for _ in range(80):
        clock.advance(0.1)
        before = len(files.attempts)
        r.poll()
        if len(files.attempts) > before:
            tried_at.append(round(clock.t - 1000, 1))
    assert tried_at == [1.0, 3.0, 7.0]
    repeats = events(t, "error")
    assert len(repeats) == 3 and all(e.level == "" and e.reason == "EIO" for e in repeats)
    with (logdir / "good.log").open("ab") as f:
        f.write(numbered(1050, 1060))
    r.poll()
    assert numbers(r.lines)[-10:] == list(range(1050, 1060))
    # The disk recovers: the file is read from where it was, and an INFO says so.
    del files.faults["bad.log"]
    clock.advance(8)
    r.poll()
    (ok,) = events(t, "recovered")
    assert ok.level == "INFO" and "bad.log" in ok
    assert sorted(numbers(r.lines)) == list(range(200)) + list(range(1000, 1060))
    t.close()


def test_windows_open_errors_stay_with_their_file(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    """The Windows branch: CreateFileW failing for one file (access denied, an unresolvable
    link) warns with the mapped errno; the other file is read."""

    class PickyKernel32(FakeKernel32):
        def CreateFileW(self, *args: object) -> int:
            name = Path(str(args[0])).name
            code = {"denied.log": 5, "loop.log": 1921}.get(name)
            if code is not None:
                self.last_error = code
                return -1
            return super().CreateFileW(*args)

    for name in ("denied.log", "loop.log", "fine.log"):
        (logdir / name).write_bytes(numbered(0, 3))
    t = Tailer(settings, store, files=WindowsFiles(kernel32=PickyKernel32(), msvcrt=FakeMsvcrt()))
    r = Reader(t, store)
    r.poll()
    assert len(r.lines) == 3
    errs = sorted((Path(e.fields["path"]).name, e.reason) for e in events(t, "error"))
    assert errs == [("denied.log", "EACCES"), ("loop.log", "ELOOP")]
    t.close()


def test_scan_survives_a_symlink_loop_an_unlistable_folder_and_a_fifo(
    logdir: Path, store: CheckpointStore
) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, recursive=True)
    os.symlink("self.log", logdir / "self.log")  # ln -s self.log self.log
    if hasattr(os, "mkfifo"):
        os.mkfifo(logdir / "pipe.log")
    deep = unlistable_below(logdir / "deep")  # ENAMETOOLONG below it, even for root
    (deep / "ok.log").write_bytes(numbered(10, 12))
    (logdir / "app.log").write_bytes(numbered(0, 10))
    t = Tailer(st, store)
    r = Reader(t, store)
    r.poll()
    assert sorted(numbers(r.lines)) == list(range(12))
    errs = {(Path(e.fields["path"]).name[:10], e.reason, e.fields["op"]) for e in events(t)}
    expected = {("self.log", "ELOOP", "stat"), ("d" * 10, "ENAMETOOLONG", "list")}
    if hasattr(os, "mkfifo"):
        expected.add(("pipe.log", "ENXIO", "open"))
    assert errs == expected
    shutil.rmtree(deep, ignore_errors=True)
    t.close()


def test_health_and_one_warning_per_folder_state(tmp_path: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    folder = tmp_path / "logs"
    st = SourceSettings(path=str(folder), fs_events=False)
    t = Tailer(st, store, clock=clock)
    assert t.health() == []  # not scanned yet
    for _ in range(3):
        t.poll()
    (w,) = t.warnings()
    assert w.kind == "folder_missing" and str(folder) in w and w.level == "WARN"
    assert t.health() == [f"source folder {folder} does not exist"]
    folder.mkdir()
    (folder / "a.log").write_bytes(numbered(0, 2))
    got = t.poll()
    assert sum(c.data.count(b"\n") for c in got) == 2
    assert [e.kind for e in t.warnings()] == ["recovered"] and t.health() == []
    # Replaced by a symlink loop mid-run: unreadable (ELOOP), once.
    shutil.rmtree(folder)
    os.symlink(folder.name, folder)
    t.poll()
    t.poll()
    (w,) = t.warnings()
    assert w.kind == "error" and w.reason == "ELOOP"
    assert t.health() == [f"source folder {folder} cannot be read (ELOOP)"]
    assert t.lost.bytes == 0  # the file it held is not "lost" while the folder is unreadable
    t.close()


def _lost(t: Tailer) -> list[SourceEvent]:
    return [e for e in t.warnings() if e.kind == "lost"]


def test_truncation_overtaking_the_reader_is_lost_unless_a_copy_holds_it(
    logdir: Path, store: CheckpointStore
) -> None:
    st = SourceSettings(
        path=str(logdir), fs_events=False, read_chunk_bytes=1024, max_line_bytes=100
    )
    log = logdir / "app.log"
    log.write_bytes(numbered(0, 400))  # 400 lines of 14 bytes
    t = Tailer(st, store)
    r = Reader(t, store)
    r.poll(max_bytes=1400)  # reads about 100 lines
    read = len(r.lines)
    assert 0 < read < 400
    # copy+truncate with a copy: the copy carries the rest, nothing is lost.
    shutil.copyfile(log, logdir / "app.log.1")
    os.truncate(log, 0)
    r.poll(max_bytes=1 << 20)
    r.poll(max_bytes=1 << 20)
    assert _lost(t) == [] and sorted(numbers(r.lines)) == list(range(400))
    # truncation without a copy (the copy compressed away at once): the unread rest is lost.
    (logdir / "app.log.1").unlink()
    log.write_bytes(numbered(1000, 1400))
    r.poll(max_bytes=1400)
    r.poll(max_bytes=0)
    read2 = len(r.lines) - 400
    os.truncate(log, 0)
    r.poll(max_bytes=0)
    r.poll(max_bytes=0)  # settled at the scan after the truncation was seen
    (ev,) = _lost(t)
    assert ev.lost_bytes == (400 - read2) * 14 and ev.lost_lines is None
    assert "app.log" in ev and "truncated" in ev and t.lost.bytes == ev.lost_bytes
    t.close()


def test_gone_before_it_could_be_reopened_is_lost(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, close_idle_after=1)
    files = FaultyFiles("open")
    log = logdir / "app.log"
    log.write_bytes(numbered(0, 10))
    t = Tailer(st, store, clock=clock, files=files)
    r = Reader(t, store)
    r.poll()
    clock.advance(2)
    r.poll()  # idle: handle closed
    assert not t.files()[0].open
    files.faults["app.log"] = errno.EACCES  # cannot be reopened...
    with log.open("ab") as f:
        f.write(numbered(10, 15))
    r.poll()
    assert [e.reason for e in events(t, "error")] == ["EACCES"]
    log.unlink()  # ...and is deleted before it can
    r.poll()
    r.poll()
    (ev,) = _lost(t)
    assert ev.lost_bytes == 5 * 14 and "gone" in ev
    t.close()


def test_gone_files_unacknowledged_at_close_are_reported(
    logdir: Path, store: CheckpointStore
) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, rotate_wait=5)
    (logdir / "held.log").write_bytes(numbered(0, 30))
    (logdir / "released.log").write_bytes(numbered(100, 120))
    (logdir / "kept.log").write_bytes(numbered(200, 210))
    t = Tailer(st, store, clock=clock)
    r = Reader(t, store, ack=False)  # the sink is down: nothing acknowledged
    r.poll()
    assert len(r.lines) == 60
    (logdir / "released.log").unlink()
    r.poll()
    clock.advance(6)
    r.poll()  # released.log: read to its end and quiet for rotate_wait: handle released
    (logdir / "held.log").unlink()
    r.poll()
    assert {Path(f.path).name for f in t.files()} == {"held.log", "kept.log"}
    t.close()
    lost = sorted((Path(e.fields["path"]).name, e.lost_bytes, e.lost_lines) for e in _lost(t))
    # held.log's lines are counted through its handle; released.log's handle is gone.
    assert lost == [("held.log", 30 * 14, 30), ("released.log", 20 * 14, None)]
    # Settled in the checkpoints (the engine records these): not reported again at start.
    for d in t.discovered():
        store.record(d)
    t2 = Tailer(st, store, clock=clock)
    t2.poll()
    assert _lost(t2) == []
    t2.close()


def test_gone_while_away_is_reported_at_start_unless_a_copy_holds_it(
    tmp_path: Path, logdir: Path
) -> None:
    cp = tmp_path / "cp.json"
    st = SourceSettings(path=str(logdir), fs_events=False)
    (logdir / "a.log").write_bytes(numbered(0, 50))
    (logdir / "b.log").write_bytes(numbered(100, 150))
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st, s1)
    chunks = t1.poll()
    for d in t1.discovered():
        s1.record(d)
    for c in chunks:  # 10 lines of each acknowledged before a kill -9
        s1.advance(c.file_key, c.start + 10 * 14, c.path)
    s1.forget_gone(
        {f.file_key: f.size for f in t1.files()}, {f.file_key: f.size for f in t1.files()}
    )
    s1.save()
    # While the sidecar is down: a.log is deleted; b.log moved away with a copy kept.
    (logdir / "a.log").unlink()
    shutil.copyfile(logdir / "b.log", logdir / "b.log.1")
    (logdir / "b.log").unlink()
    s2 = CheckpointStore(cp)
    s2.load()
    t2 = Tailer(st, s2)
    r = Reader(t2, s2)
    r.poll()
    (ev,) = _lost(t2)
    assert ev.lost_bytes == 40 * 14 and "a.log" in ev and "away" in ev
    assert sorted(numbers(r.lines)) == list(range(110, 150))  # b's rest, from its copy
    t2.close()


def test_folder_missing_at_start_does_not_make_every_file_lost(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    cp = tmp_path / "cp.json"
    st = SourceSettings(path=str(logdir), fs_events=False)
    (logdir / "a.log").write_bytes(numbered(0, 50))
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st, s1)
    t1.poll()
    for d in t1.discovered():
        s1.record(d)
    s1.forget_gone([f.file_key for f in t1.files()], {f.file_key: f.size for f in t1.files()})
    s1.save()
    t1.close()
    logdir.rename(tmp_path / "away")  # the volume is not mounted yet at the next start
    s2 = CheckpointStore(cp)
    s2.load()
    t2 = Tailer(st, s2)
    t2.poll()
    assert [e.kind for e in t2.warnings()] == ["folder_missing"]
    (tmp_path / "away").rename(logdir)
    r = Reader(t2, s2)
    r.poll()
    assert _lost(t2) == [] and len(r.lines) == 50
    t2.close()


@pytest.mark.parametrize("name", [b"caf\xe9.log", b"tab\tand\x1b[31m.log"])
def test_odd_names_are_read_and_shown_escaped(
    logdir: Path, store: CheckpointStore, settings: SourceSettings, name: bytes
) -> None:
    path = os.path.join(os.fsencode(logdir), name)
    with open(path, "wb") as f:
        f.write(numbered(0, 5))
    loop = name[:-4] + b"-loop.log"
    os.symlink(loop, os.path.join(os.fsencode(logdir), loop))  # a loop, named alike
    t = Tailer(settings, store)
    r = Reader(t, store)
    r.poll()
    assert numbers(r.lines) == list(range(5))
    (st,) = t.files()
    assert os.fsencode(st.path) == path  # the exact name
    shown = [e.fields["path"] for e in events(t, "error")]
    assert shown and all(s.isprintable() and "\x1b" not in s for s in shown)
    t.close()


def test_windows_delete_pending_file_is_skipped_quietly(
    logdir: Path, store: CheckpointStore, settings: SourceSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows a file deleted while a handle is open stays listed ("delete pending") and
    os.stat reports it from its directory entry, without a file index (st_ino 0): neither a
    file to follow nor an error to report."""
    from sidecar.source import paths

    (logdir / "pending.log").write_bytes(numbered(0, 3))
    (logdir / "live.log").write_bytes(numbered(10, 13))
    real = paths.stat_path

    def stat_path(path: str) -> os.stat_result | None:
        st = real(path)
        if st is not None and path.endswith("pending.log"):
            return os.stat_result((st.st_mode, 0, *tuple(st)[2:]))
        return st

    monkeypatch.setattr(paths, "stat_path", stat_path)
    monkeypatch.setattr(paths.sys, "platform", "win32")
    res = paths.scan(settings, paths.PathMatcher(settings.include, settings.exclude))
    assert [Path(s.path).name for s in res.found.values()] == ["live.log"]
    assert res.problems == [] and res.special == []
