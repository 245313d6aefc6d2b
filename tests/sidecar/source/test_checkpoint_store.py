"""The checkpoint store: durable content, corruption recovery, retention, ENOSPC, restart."""

from __future__ import annotations

import base64
import errno
import json
import os
from pathlib import Path

import pytest

from sidecar.checkpoint import CheckpointError, CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import FakeClock, Reader, numbers


def test_save_writes_checksummed_content_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cp.json"
    s = CheckpointStore(path, wall_clock=lambda: 1700000000.0)
    assert s.load() == []
    assert s.get("k") is None
    s.advance("k", 10, "/logs/a.log")
    s.advance("k", 5, "/logs/a.log")  # monotonic: ignored
    s.save()
    doc = json.loads(path.read_bytes())
    assert doc["version"] == 1 and doc["files"] == {
        "k": {"offset": 10, "path": "/logs/a.log", "seen": 1700000000.0}
    }
    assert len(doc["sha256"]) == 64 and doc["saved"] == 1700000000.0
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"]  # no temp left behind
    again = CheckpointStore(path)
    assert again.load() == [] and again.get("k") == 10 and again.last_saved == 1700000000.0


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated (torn write on a broken disk)
        lambda b: b.replace(b'"offset":10', b'"offset":99'),  # edited: checksum mismatch
        lambda b: b"\x00" * 40,
        lambda b: b'{"version":1,"saved":1,"files":{},"sha256":"x","extra":1}',
        lambda b: b"",
    ],
)
def test_corrupt_file_reported_moved_aside_and_store_starts_empty(
    tmp_path: Path, damage: object
) -> None:
    path = tmp_path / "cp.json"
    s = CheckpointStore(path)
    s.advance("k", 10, "a.log")
    s.save()
    bad = damage(path.read_bytes())  # type: ignore[operator]
    path.write_bytes(bad)
    s2 = CheckpointStore(path, wall_clock=lambda: 1234.0)
    (warning,) = s2.load()
    assert str(path) in warning and "moved aside" in warning
    assert s2.get("k") is None and len(s2) == 0
    assert (tmp_path / "cp.json.corrupt-1234").read_bytes() == bad
    s2.advance("k2", 1, "b.log")
    s2.save()  # and it works again
    s3 = CheckpointStore(path)
    assert s3.load() == [] and s3.get("k2") == 1


def test_retention_forgets_only_long_gone_files(tmp_path: Path) -> None:
    now = [1000.0]
    s = CheckpointStore(tmp_path / "cp.json", retention=100, wall_clock=lambda: now[0])
    s.advance("live", 1, "a")
    s.advance("gone", 1, "b")
    now[0] += 90
    assert s.forget_gone(["live"]) == []
    now[0] += 20  # "gone" unseen for 110 s > 100; "live" is refreshed while it exists
    assert s.forget_gone(["live"]) == ["gone"]
    now[0] += 500
    assert s.forget_gone(["live"]) == []
    assert s.get("live") == 1 and s.get("gone") is None


def test_enospc_leaves_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cp.json"
    s = CheckpointStore(path)
    s.advance("k", 10, "a.log")
    s.save()
    before = path.read_bytes()
    s.advance("k", 20, "a.log")
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(CheckpointError, match="No space left") as ei:
        s.save()
    assert str(path) in str(ei.value)
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]
    s.save()  # space is back: the newer offset is saved
    again = CheckpointStore(path)
    again.load()
    assert again.get("k") == 20


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data)[:7]))
    s = CheckpointStore(tmp_path / "cp.json")
    s.advance("k" * 50, 123456, "p" * 100)
    s.save()
    monkeypatch.undo()
    again = CheckpointStore(tmp_path / "cp.json")
    assert again.load() == [] and again.get("k" * 50) == 123456


def test_stale_temp_from_a_crash_is_cleaned(tmp_path: Path) -> None:
    (tmp_path / ".cp.json.tmp-999").write_bytes(b"half")
    s = CheckpointStore(tmp_path / "cp.json")
    assert s.load() == []
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_raises_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    s = CheckpointStore(blocker / "cp.json")  # parent is a file
    s.advance("k", 1, "a")
    with pytest.raises(CheckpointError, match=str(blocker / "cp.json").replace("\\", "\\\\")):
        s.save()


def test_restart_resumes_exactly_without_repeating_or_skipping(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    cp = tmp_path / "cp.json"
    st = SourceSettings(path=str(logs), fs_events=False, read_chunk_bytes=300, max_line_bytes=100)
    log = logs / "app.log"
    log.write_bytes(b"".join(b"%08d first\n" % i for i in range(50)))
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st, s1)
    chunks = t1.poll(max_bytes=400)  # reads part of the file only
    got1 = [ln for c in chunks for ln in c.data[:-1].split(b"\n")]
    # Acknowledge only the first chunk (the rest was in flight when we were killed).
    s1.advance(chunks[0].file_key, chunks[0].end, chunks[0].path)
    acked = chunks[0].data.count(b"\n")
    s1.save()
    t1.close()
    with log.open("ab") as f:
        f.write(b"".join(b"%08d later\n" % i for i in range(50, 80)))
    s2 = CheckpointStore(cp)
    assert s2.load() == []
    t2 = Tailer(st, s2)
    r = Reader(t2, s2)
    r.until(lambda: len(r.lines) >= 80 - acked, timeout=5)
    assert numbers(got1[:acked] + r.lines) == list(range(80))
    t2.close()


def test_copy_found_after_restart_continues_from_original_checkpoint(tmp_path: Path) -> None:
    """copy+truncate while the sidecar was down: the copy is recognised by fingerprint."""
    logs = tmp_path / "logs"
    logs.mkdir()
    st = SourceSettings(path=str(logs), fs_events=False)
    cp = tmp_path / "cp.json"
    log = logs / "app.log"
    log.write_bytes(b"".join(b"%08d a\n" % i for i in range(10)))
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st, s1)
    Reader(t1, s1).poll()
    s1.save()
    t1.close()
    with log.open("ab") as f:
        f.write(b"".join(b"%08d a\n" % i for i in range(10, 15)))
    (logs / "app.log.1").write_bytes(log.read_bytes())
    log.write_bytes(b"".join(b"%08d b\n" % i for i in range(15, 18)))
    s2 = CheckpointStore(cp)
    s2.load()
    t2 = Tailer(st, s2)
    r = Reader(t2, s2)
    r.poll()
    assert sorted(numbers(r.lines)) == list(range(10, 18))
    t2.close()


def test_checkpoint_age_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    s = CheckpointStore(tmp_path / "cp.json", wall_clock=clock)
    assert s.last_saved is None
    s.save()
    assert s.last_saved == clock.t
    clock.advance(5)
    s.save()  # nothing changed: no rewrite, but the saved state is current
    assert s.last_saved == clock.t


def test_resume_by_fingerprint_when_inodes_change(tmp_path: Path) -> None:
    """Logs moved to another volume (or a share with unstable file ids): new inodes, same
    content. The checkpoint is found through the first line and first bytes."""
    old = tmp_path / "old"
    old.mkdir()
    st_old = SourceSettings(path=str(old), fs_events=False)
    (old / "app.log").write_bytes(b"".join(b"%08d x\n" % i for i in range(30)))
    cp = tmp_path / "cp.json"
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st_old, s1)
    Reader(t1, s1).poll()
    s1.save()
    t1.close()
    new = tmp_path / "new"
    new.mkdir()
    (new / "app.log").write_bytes((old / "app.log").read_bytes() + b"00000030 x\n")
    s2 = CheckpointStore(cp)
    s2.load()
    t2 = Tailer(SourceSettings(path=str(new), fs_events=False), s2)
    r = Reader(t2, s2)
    r.poll()
    assert numbers(r.lines) == [30]
    t2.close()


def test_windows_replace_retries_a_briefly_locked_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows an antivirus holding checkpoints.json makes os.replace fail for a moment."""
    import sys

    from sidecar import checkpoint as cp_mod

    monkeypatch.setattr(sys, "platform", "win32")
    real_replace = os.replace
    failures = [2]

    def flaky(src: object, dst: object) -> None:
        if failures[0]:
            failures[0] -= 1
            raise PermissionError(13, "The process cannot access the file")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(cp_mod.os, "replace", flaky)
    s = CheckpointStore(tmp_path / "cp.json")
    s.advance("k", 7, "a.log")
    s.save()
    assert failures == [0]
    monkeypatch.undo()
    again = CheckpointStore(tmp_path / "cp.json")
    assert again.load() == [] and again.get("k") == 7


def test_after_restart_a_new_file_sharing_only_the_header_line_is_read_whole(
    tmp_path: Path,
) -> None:
    """IIS-style logs start every file with the same line: after a restart, a file without a
    checkpoint must not inherit another file's offset through that shared first line."""
    logs = tmp_path / "logs"
    logs.mkdir()
    st = SourceSettings(path=str(logs), fs_events=False)
    header = b"#Software: Microsoft Internet Information Services 10.0\n"
    (logs / "u_ex1.log").write_bytes(header + b"".join(b"%08d one\n" % i for i in range(200)))
    cp = tmp_path / "cp.json"
    s1 = CheckpointStore(cp)
    s1.load()
    t1 = Tailer(st, s1)
    Reader(t1, s1).poll()
    s1.save()
    t1.close()
    (key,) = s1.file_keys()
    assert s1.head_of(key) is not None  # the first KiB's digest is stored with the offset
    (logs / "u_ex2.log").write_bytes(header + b"".join(b"%08d two\n" % i for i in range(50)))
    s2 = CheckpointStore(cp)
    s2.load()
    t2 = Tailer(st, s2)
    r = Reader(t2, s2)
    r.poll()
    assert len(r.lines) == 51 and r.lines[0] == header[:-1]
    t2.close()


@pytest.mark.parametrize("name", [b"caf\xe9.log", b"\xff\xfe.log", b"ok-\xc3\xa9t\xc3\xa9.log"])
def test_file_names_that_are_not_utf8_are_kept_exactly(tmp_path: Path, name: bytes) -> None:
    """A name with bytes that are not UTF-8 used to make every save fail (the sidecar exited
    1 at each start): it is stored as escaped text plus its exact bytes, and loads back."""
    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
    cp = tmp_path / "cp.json"
    s = CheckpointStore(cp)
    s.advance("k", 10, path)
    s.save()
    raw = cp.read_bytes()
    doc = json.loads(raw.decode("utf-8"))  # valid UTF-8 JSON
    entry = doc["files"]["k"]
    if name.startswith(b"ok-"):
        assert entry["path"] == path and "path_b64" not in entry
    else:
        assert entry["path"].isprintable() and "\\x" in entry["path"]
        assert base64.b64decode(entry["path_b64"]) == os.fsencode(path)
    again = CheckpointStore(cp)
    assert again.load() == []
    assert again.path_of("k") == path and again.known("k") is not None
    assert again.known("k").path == path  # type: ignore[union-attr]
    again.advance("k", 10, path)
    assert not again.dirty  # same path: nothing to rewrite
