"""Reading: complete lines only, partial-line timeout, over-long lines, BOM, CRLF, UTF-16,
start_at, budgets and bounded memory."""

from __future__ import annotations

import codecs
import itertools
from pathlib import Path

import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import FakeClock, Reader, lines_of


def make(settings: SourceSettings, store: CheckpointStore, **kw: object) -> tuple[Tailer, Reader]:
    t = Tailer(settings, store, **kw)  # type: ignore[arg-type]
    return t, Reader(t, store)


def test_only_complete_lines_then_the_rest(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "a.log"
    log.write_bytes(b'{"n":1}\n{"n":2}\n{"n":')
    t, r = make(settings, store)
    (c,) = r.poll()
    assert (c.start, c.end, c.data) == (0, 16, b'{"n":1}\n{"n":2}\n')
    assert c.line_offsets(c.data[:-1].split(b"\n")) == [0, 8]
    assert r.poll() == []  # the partial line waits
    with log.open("ab") as f:
        f.write(b"3}\n")
    (c,) = r.poll()
    assert (c.start, c.end, c.data, c.flushed_partial) == (16, 24, b'{"n":3}\n', False)
    t.close()


def test_partial_line_flushed_after_timeout_flagged(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, partial_line_timeout=5.0)
    log = logdir / "a.log"
    log.write_bytes(b"one\ntwo")
    t, r = make(st, store, clock=clock)
    assert lines_of(r.poll()) == [b"one"]
    clock.advance(4.9)
    assert r.poll() == []
    clock.advance(0.2)
    (c,) = r.poll()
    assert c.flushed_partial and c.data == b"two\n" and (c.start, c.end) == (4, 7)
    with log.open("ab") as f:
        f.write(b"three\n")
    (c,) = r.poll()
    assert c.data == b"three\n" and not c.flushed_partial
    t.close()


def test_partial_timeout_restarts_when_the_line_grows(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, partial_line_timeout=5.0)
    log = logdir / "a.log"
    log.write_bytes(b"x\npar")
    t, r = make(st, store, clock=clock)
    r.poll()
    clock.advance(4)
    with log.open("ab") as f:
        f.write(b"tial")  # still being written: the timer starts again
    assert r.poll() == []
    clock.advance(4)
    assert r.poll() == []
    clock.advance(1.5)
    (c,) = r.poll()
    assert c.data == b"partial\n" and c.flushed_partial
    t.close()


def test_no_timeout_means_never_flushed(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, partial_line_timeout=None)
    (logdir / "a.log").write_bytes(b"x\npartial")
    t, r = make(st, store, clock=clock)
    r.poll()
    clock.advance(1e6)
    assert r.poll() == []
    t.close()


def test_file_without_any_newline_flushed_after_timeout(
    logdir: Path, store: CheckpointStore
) -> None:
    clock = FakeClock()
    st = SourceSettings(path=str(logdir), fs_events=False, partial_line_timeout=2.0)
    (logdir / "a.log").write_bytes(b"only")
    t, r = make(st, store, clock=clock)
    assert r.poll() == []
    clock.advance(2.5)
    (c,) = r.poll()
    assert c.data == b"only\n" and c.flushed_partial
    t.close()


def test_too_long_lines_reported_whole_never_split(logdir: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, max_line_bytes=100, read_chunk_bytes=256)
    long1 = b"A" * 101
    long2 = b"B" * 5000  # spans many reads: streamed past, only the head kept
    body = b"ok1\n" + long1 + b"\nok2\n" + long2 + b"\n" + b"C" * 100 + b"\nok3\n"
    (logdir / "a.log").write_bytes(body)
    t, r = make(st, store)
    r.until(lambda: b"ok3" in r.lines, timeout=5)
    assert r.lines == [b"ok1", b"ok2", b"C" * 100, b"ok3"]
    tl = [x for c in r.chunks for x in c.too_long]
    assert [(x.offset, x.length) for x in tl] == [(4, 101), (110, 5000)]
    assert tl[0].head == long1 and tl[1].head == b"B" * 256
    # Chunks tile the file exactly: the engine can checkpoint past a quarantined line.
    ends = [(c.start, c.end) for c in r.chunks]
    assert ends[0][0] == 0 and ends[-1][1] == len(body)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    t.close()


def test_too_long_line_still_being_written(logdir: Path, store: CheckpointStore) -> None:
    clock = FakeClock()
    st = SourceSettings(
        path=str(logdir),
        fs_events=False,
        max_line_bytes=100,
        read_chunk_bytes=128,
        partial_line_timeout=3,
    )
    log = logdir / "a.log"
    log.write_bytes(b"a\n" + b"L" * 300)
    t, r = make(st, store, clock=clock)
    r.poll()
    assert r.lines == [b"a"]
    with log.open("ab") as f:
        f.write(b"L" * 300 + b"\nb\n")
    r.poll()
    assert r.lines == [b"a", b"b"]
    (tl,) = [x for c in r.chunks for x in c.too_long]
    assert (tl.offset, tl.length) == (2, 600)
    # A long line that never ends is flushed (flagged) after the timeout.
    with log.open("ab") as f:
        f.write(b"M" * 400)
    r.poll()
    clock.advance(3.5)
    r.poll()
    last = r.chunks[-1]
    assert last.flushed_partial and last.too_long[0].length == 400 and last.end == 605 + 400
    t.close()


def test_bom_dropped_crlf_kept(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    (logdir / "a.log").write_bytes(codecs.BOM_UTF8 + b'{"a":1}\r\n{"b":2}\r\n')
    t, r = make(settings, store)
    (c,) = r.poll()
    assert c.start == 3 and c.data == b'{"a":1}\r\n{"b":2}\r\n'
    assert c.line_offsets(c.data[:-1].split(b"\n")) == [3, 12]
    t.close()


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_transcoded_with_disk_offsets(
    codec: str, logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    text = '{"m":"é"}\r\n{"m":"ok ✓"}\n{"m":"𝄞"}\n'
    (logdir / "ps.log").write_bytes(bom + text.encode(codec) + '{"m":"pa'.encode(codec))
    t, r = make(settings, store)
    (c,) = r.poll()
    assert c.data == text.encode("utf-8")
    first = len(bom)
    second = first + len('{"m":"é"}\r\n'.encode(codec))
    third = second + len('{"m":"ok ✓"}\n'.encode(codec))
    assert c.offsets == [first, second, third]
    assert c.start == first and c.end == len(bom) + len(text.encode(codec))
    t.close()


def test_start_at_end_skips_existing_but_reads_new_files(
    logdir: Path, store: CheckpointStore
) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, start_at="end")
    (logdir / "old.log").write_bytes(b"old1\nold2\nhalf")
    t, r = make(st, store)
    assert r.poll() == []
    with (logdir / "old.log").open("ab") as f:
        f.write(b"-done\nnew\n")
    (logdir / "later.log").write_bytes(b"later1\n")
    r.poll()
    assert sorted(r.lines) == [b"half-done", b"later1", b"new"]
    t.close()


def test_budget_bounds_each_poll_and_wait_skips_when_backlog(
    logdir: Path, store: CheckpointStore
) -> None:
    st = SourceSettings(
        path=str(logdir),
        fs_events=False,
        read_chunk_bytes=1 << 16,
        max_line_bytes=1024,
        poll_interval=30,
    )
    line = b"x" * 99 + b"\n"
    (logdir / "big.log").write_bytes(line * 20_000)  # 2 MB
    t, r = make(st, store)
    sizes = []
    for _ in range(100):
        got = r.poll(max_bytes=200_000)
        if not got:
            break
        sizes.append(sum(len(c.data) for c in got))
        if len(r.lines) < 20_000:
            t.wait(30)  # returns at once while a backlog remains (else this takes minutes)
    assert max(sizes) <= 200_000 + 1025
    assert len(r.lines) == 20_000 and len(sizes) >= 10
    t.close()


def test_include_exclude_and_recursive(logdir: Path, store: CheckpointStore) -> None:
    for name in ["a.log", "a.log.1", "a.log.2024-10-01", "a.log.2.gz", "notes.txt", "b.LOG"]:
        (logdir / name).write_bytes(name.encode() + b"\n")
    (logdir / "sub").mkdir()
    (logdir / "sub" / "c.log").write_bytes(b"c.log\n")
    t, r = make(SourceSettings(path=str(logdir), fs_events=False), store)
    r.poll()
    assert sorted(r.lines) == [b"a.log", b"a.log.1", b"a.log.2024-10-01"]
    t.close()
    st = SourceSettings(path=str(logdir), fs_events=False, recursive=True, exclude=["a.log.*"])
    t, r = make(st, CheckpointStore(logdir.parent / "other.json"))
    r.poll()
    assert sorted(r.lines) == [b"a.log", b"c.log"]
    t.close()
    # A pattern with "/" selects by the path relative to the folder.
    (logdir / "sub" / "deeper").mkdir()
    (logdir / "sub" / "deeper" / "d.log").write_bytes(b"d.log\n")
    st = SourceSettings(path=str(logdir), fs_events=False, recursive=True, include=["sub/*.log"])
    t, r = make(st, CheckpointStore(logdir.parent / "third.json"))
    r.poll()
    assert r.lines == [b"c.log"]
    t.close()


def test_missing_folder_is_not_an_error(tmp_path: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(tmp_path / "later"), fs_events=False)
    t, r = make(st, store)
    assert r.poll() == []
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "x.log").write_bytes(b"hi\n")
    assert lines_of(r.poll()) == [b"hi"]
    t.close()


def test_gzip_and_utf32_files_warned_not_read(logdir: Path, store: CheckpointStore) -> None:
    st = SourceSettings(path=str(logdir), fs_events=False, exclude=[])
    (logdir / "z.log").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20 + b"\n")
    (logdir / "w.log").write_bytes("hi\n".encode("utf-32"))
    t, r = make(st, store)
    assert r.poll() == []
    w = t.warnings()
    assert any("z.log" in m and "gzip" in m for m in w)
    assert any("w.log" in m and "UTF-32" in m for m in w)
    r.poll()
    assert t.warnings() == []  # each reported once
    t.close()


@pytest.mark.parametrize("follow", [True, False])
def test_symlinked_files_read_only_when_following_symlinks(
    logdir: Path, store: CheckpointStore, tmp_path: Path, follow: bool
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b'{"n":"outside"}\n')
    (logdir / "a.log").write_bytes(b'{"n":"inside"}\n')
    try:
        (logdir / "b.log").symlink_to(outside)
    except OSError as exc:  # pragma: no cover - Windows without the symlink privilege
        pytest.skip(f"cannot create a symlink here: {exc}")
    settings = SourceSettings(
        path=str(logdir), fs_events=False, poll_interval=0.05, follow_symlinks=follow
    )
    t, r = make(settings, store)
    data = b"".join(c.data for c in r.poll())
    t.close()
    assert b'"inside"' in data
    assert (b'"outside"' in data) is follow
