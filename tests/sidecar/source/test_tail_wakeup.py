"""Discovery: file-system events wake the poll early; polling alone still finds everything;
stop() wakes a waiting tailer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import Reader


def write_later(path: Path, data: bytes, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        path.write_bytes(data)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_fs_event_wakes_wait_long_before_poll_interval(
    logdir: Path, store: CheckpointStore
) -> None:
    st = SourceSettings(path=str(logdir), fs_events=True, poll_interval=60)
    t = Tailer(st, store)
    r = Reader(t, store)
    r.poll()
    assert t.fs_events_active
    w = write_later(logdir / "new.log", b"hello\n", 0.2)
    start = time.monotonic()
    t.wait(60)
    woke_after = time.monotonic() - start
    w.join()
    r.until(lambda: r.lines == [b"hello"], timeout=5)
    t.close()
    assert woke_after < 30, f"woke after {woke_after:.1f}s: the event did not wake the wait"


def test_polling_alone_finds_every_file(logdir: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, poll_interval=0.05)
    t = Tailer(st, store)
    assert not t.fs_events_active
    r = Reader(t, store)
    for i in range(20):
        (logdir / f"f{i}.log").write_bytes(b"line %d\n" % i)
        if i % 5 == 0:
            t.wait(1)
            r.poll()
    deadline = time.monotonic() + 5
    while len(r.lines) < 20 and time.monotonic() < deadline:
        t.wait(1)
        r.poll()
    assert sorted(r.lines) == sorted(b"line %d" % i for i in range(20))
    t.close()


def test_fs_events_on_a_folder_created_later(tmp_path: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(tmp_path / "later"), fs_events=True, poll_interval=0.05)
    t = Tailer(st, store)
    t.poll()
    assert not t.fs_events_active
    (tmp_path / "later").mkdir()
    t.poll()
    assert t.fs_events_active
    t.close()
    assert not t.fs_events_active


def test_stop_wakes_wait_from_another_thread(logdir: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, poll_interval=60)
    t = Tailer(st, store)
    t.poll()
    threading.Timer(0.1, t.stop).start()
    start = time.monotonic()
    t.wait(60)
    assert time.monotonic() - start < 30
    t.wait(60)  # stopped: returns at once
    t.close()


def test_folder_recreated_gets_a_new_watch(tmp_path: Path, store: CheckpointStore) -> None:
    import shutil

    folder = tmp_path / "logs"
    folder.mkdir()
    st = SourceSettings(path=str(folder), fs_events=True, poll_interval=60)
    t = Tailer(st, store)
    r = Reader(t, store)
    r.poll()
    shutil.rmtree(folder)
    r.poll()
    assert not t.fs_events_active
    folder.mkdir()
    r.poll()
    assert t.fs_events_active
    w = write_later(folder / "n.log", b"again\n", 0.2)
    start = time.monotonic()
    t.wait(60)
    woke_after = time.monotonic() - start
    w.join()
    r.until(lambda: r.lines == [b"again"], timeout=5)
    t.close()
    assert woke_after < 30


def test_own_opens_and_closes_do_not_wake_the_wait(logdir: Path, store: CheckpointStore) -> None:
    """The tailer opening (discovery) and closing (idle) files must not cost extra polls."""
    (logdir / "a.log").write_bytes(b"a\n")
    st = SourceSettings(path=str(logdir), fs_events=True, poll_interval=0.4, close_idle_after=0.1)
    t = Tailer(st, store)
    t.poll()  # opens a.log
    start = time.monotonic()
    t.wait(5)
    assert time.monotonic() - start >= 0.3
    time.sleep(0.15)
    t.poll()  # closes it (idle)
    assert not t.files()[0].open
    start = time.monotonic()
    t.wait(5)
    assert time.monotonic() - start >= 0.3
    t.close()
