"""Every rotation scheme under heavy writing by a real writer process: no line lost or
repeated. (A file must live past one poll to be read: the writer keeps 8 generations.)"""

from __future__ import annotations

import collections
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import Reader, numbers, start_writer

TOTAL = 20_000


def assert_exactly_once(got: list[int], total: int) -> None:
    dups = [n for n, c in collections.Counter(got).items() if c > 1]
    missing = sorted(set(range(total)) - set(got))
    assert not dups, f"{len(dups)} lines repeated, e.g. {dups[:5]}"
    assert not missing, f"{len(missing)} lines lost, e.g. {missing[:5]}"
    assert len(got) == total


@pytest.mark.parametrize(
    ("scheme", "per_file"),
    [("segments", 1500), ("rename", 1500), ("copytruncate", 1500), ("delete", 2500)],
)
def test_rotation_under_heavy_writing(
    scheme: str, per_file: int, logdir: Path, store: CheckpointStore
) -> None:
    settings = SourceSettings(
        path=str(logdir), fs_events=False, rotate_wait=0.2, partial_line_timeout=None
    )
    tailer = Tailer(settings, store)
    reader = Reader(tailer, store)
    proc = start_writer(scheme, logdir, TOTAL, per_file)
    try:
        reader.until(lambda: proc.poll() is not None, timeout=60, pause=0.001)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        reader.until(lambda: len(reader.lines) >= TOTAL, timeout=20)
        time.sleep(0.05)
        reader.poll()
    finally:
        if proc.poll() is None:
            proc.kill()
        tailer.close()
    assert_exactly_once(numbers(reader.lines), TOTAL)
    # Every file that is gone from disk had its handle released (after rotate_wait).
    deadline = time.monotonic() + 10
    while any(f.gone for f in tailer.files()) and time.monotonic() < deadline:
        time.sleep(0.05)
        reader.poll()
    assert not any(f.gone for f in tailer.files())


def test_rename_create_keeps_identity_and_offset(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(b"00000000 a\n00000001 b\n")
    tailer = Tailer(settings, store)
    r = Reader(tailer, store)
    r.poll()
    (key,) = {f.file_key for f in tailer.files()}
    with log.open("ab") as f:
        f.write(b"00000002 c\n")
    os.rename(log, logdir / "app.log.1")
    log.write_bytes(b"00000003 d\n")
    r.poll()
    by_path = {Path(f.path).name: f for f in tailer.files()}
    assert by_path["app.log.1"].file_key == key
    assert by_path["app.log"].file_key != key
    assert numbers(r.lines) == [0, 1, 2, 3]  # older generation first (by mtime)
    tailer.close()


def test_file_that_shrinks_is_read_again_from_start(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(b"".join(b"%08d old\n" % i for i in range(100)))
    tailer = Tailer(settings, store)
    r = Reader(tailer, store)
    r.poll()
    assert len(r.lines) == 100
    # Shrinks to fewer bytes than were read: new content from 0.
    log.write_bytes(b"00000100 new\n00000101 new\n")
    r.poll()
    assert numbers(r.lines[100:]) == [100, 101]
    # Truncated and rewritten past the old size between two polls: caught by the head check.
    log.write_bytes(b"".join(b"%08d again\n" % i for i in range(102, 400)))
    r.poll()
    assert numbers(r.lines) == list(range(400))
    tailer.close()


def test_shrink_under_heavy_writing(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    """A writer thread truncates its file after each burst was read (handshake): what comes
    after the truncation is read once, from 0."""
    log = logdir / "app.log"
    tailer = Tailer(settings, store)
    r = Reader(tailer, store)
    total = 6000
    read_all = threading.Event()
    expected: list[int] = []

    def write() -> None:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        n = 0
        for _burst in range(6):
            for _ in range(20):
                os.write(fd, b"".join(b"%08d s\n" % i for i in range(n, n + 50)))
                expected.extend(range(n, n + 50))
                n += 50
            read_all.clear()
            read_all.wait(20)
            os.truncate(log, 0)
        os.close(fd)

    t = threading.Thread(target=write)
    t.start()
    deadline = time.monotonic() + 30
    while t.is_alive() and time.monotonic() < deadline:
        r.poll()
        if len(r.lines) == len(expected):
            read_all.set()
        time.sleep(0.001)
    t.join(5)
    assert not t.is_alive()
    assert_exactly_once(numbers(r.lines), total)
    tailer.close()


def test_file_shorter_than_fingerprint_keeps_identity_as_it_grows(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(b"00000000 short")  # no complete first line: nothing to identify yet
    tailer = Tailer(settings, store)
    r = Reader(tailer, store)
    assert r.poll() == [] and tailer.files() == []
    with log.open("ab") as f:
        f.write(b"\n")
    r.poll()
    (first,) = tailer.files()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    for i in range(1, 3000):  # grows far past fingerprint_bytes under writing
        os.write(fd, b"%08d grow\n" % i)
        if i % 100 == 0:
            r.poll()
    os.close(fd)
    r.poll()
    (now,) = tailer.files()
    assert now.file_key == first.file_key
    assert numbers(r.lines) == list(range(3000))
    tailer.close()
    # A restarted tailer computes the same identity and resumes at the end.
    store.save()
    again = CheckpointStore(store.path)
    assert again.load() == []
    t2 = Tailer(settings, again)
    assert t2.poll() == []
    assert t2.files()[0].file_key == first.file_key
    t2.close()


def test_file_created_and_deleted_between_polls_is_not_seen(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    """Documented limit: without a poll (or an fs event) during its life, a file is unseen."""
    tailer = Tailer(settings, store)
    r = Reader(tailer, store)
    r.poll()
    p = logdir / "brief.log"
    p.write_bytes(b"00000000 gone\n")
    p.unlink()
    r.poll()
    assert r.lines == [] and tailer.files() == []
    # Had it lived through one poll, deletion right after would not lose it.
    p.write_bytes(b"00000001 kept\n")
    tailer.poll()  # discovered (and read): the handle keeps it readable after unlink
    p.unlink()
    tailer.close()


def test_same_first_line_in_two_files_is_not_taken_for_a_copy(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    header = b"00000000 service started\n"
    (logdir / "a.log").write_bytes(header + b"".join(b"%08d a\n" % i for i in range(1, 150)))
    t = Tailer(settings, store)
    r = Reader(t, store)
    r.poll()
    (logdir / "b.log").write_bytes(header + b"".join(b"%08d b\n" % i for i in range(1, 260)))
    r.poll()
    a_key, b_key = sorted((Path(f.path).name, f.file_key) for f in t.files())
    assert a_key[1].split("-")[0] == b_key[1].split("-")[0]  # same fingerprint...
    assert len(r.lines) == 150 + 260  # ...but b.log is read whole: not a copy of a.log
    # b.log is now read further than a.log: a.log must not jump to b.log's position.
    with (logdir / "a.log").open("ab") as f:
        f.write(b"".join(b"%08d a\n" % i for i in range(150, 155)))
    r.poll()
    assert r.lines[-5:] == [b"%08d a" % i for i in range(150, 155)]
    assert len(r.lines) == 150 + 260 + 5
    t.close()


def test_copy_of_a_short_file_made_before_its_first_poll_is_read_once(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(b"00000000 a\n")
    t = Tailer(settings, store)
    r = Reader(t, store)
    r.poll()
    with log.open("ab") as f:
        f.write(b"00000001 a\n")
    shutil.copyfile(log, logdir / "app.log.1")
    os.truncate(log, 0)
    r.poll()
    log.write_bytes(b"00000002 b\n")
    r.poll()
    assert sorted(numbers(r.lines)) == [0, 1, 2]
    t.close()
