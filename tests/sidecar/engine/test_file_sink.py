"""The file sink on its own: archive format, rotation, crash recovery from its journal."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import pytest

from obskit.schema import check_line
from sidecar.sinks.base import Batch
from sidecar.sinks.file import Config, FileSink


def _batch(seq: int, key: str, start: int, n: int, size: int = 50) -> Batch:
    lines, recs, offsets = [], [], []
    for i in range(n):
        off = start + i * size
        ln = orjson.dumps(
            {
                "timestamp": "2024-10-01T12:00:00Z",
                "level": "INFO",
                "service": "svc",
                "message": f"m{off}",
            }
        )
        rec, _ = check_line(ln)
        assert rec is not None
        lines.append(ln)
        recs.append(rec)
        offsets.append(off)
    return Batch(
        seq,
        lines,
        recs,
        offsets=offsets,
        runs=[(0, key)],
        static={"host": "h1"},
        extents={key: (start, start + n * size)},
    )


def _messages(d: Path) -> list[str]:
    out = []
    for seg in sorted(d.glob("archive-*")):
        data = gzip.decompress(seg.read_bytes()) if seg.suffix == ".gz" else seg.read_bytes()
        out += [orjson.loads(x)["message"] for x in data.splitlines()]
    return out


def test_replayed_lines_after_restart_are_skipped(tmp_path: Path) -> None:
    s = FileSink("f", Config(dir=str(tmp_path)))
    s.start()
    s.send(_batch(1, "k", 0, 10))
    s.send(_batch(2, "k", 500, 10))
    s.close()
    s2 = FileSink("f", Config(dir=str(tmp_path)))
    s2.start()
    # Checkpoint was at 250: the engine re-reads from there.
    s2.send(_batch(1, "k", 250, 15))
    s2.send(_batch(2, "k", 1000, 5))
    s2.close()
    msgs = _messages(tmp_path)
    assert msgs == [f"m{o}" for o in range(0, 1250, 50)]
    assert s2.skipped_replayed == 15


def test_torn_write_is_cut_back_to_the_journal(tmp_path: Path) -> None:
    s = FileSink("f", Config(dir=str(tmp_path)))
    s.start()
    s.send(_batch(1, "k", 0, 4))
    s.close()
    seg = next(tmp_path.glob("archive-*.ndjson"))
    with open(seg, "ab") as fh:  # a crash in the middle of the next batch's write
        fh.write(b'{"timestamp":"2024-10-01T12:00:00Z","level":"IN')
    s2 = FileSink("f", Config(dir=str(tmp_path)))
    s2.start()
    s2.send(_batch(2, "k", 200, 2))
    s2.close()
    assert _messages(tmp_path) == ["m0", "m50", "m100", "m150", "m200", "m250"]


def test_rotation_gzip_and_retention(tmp_path: Path) -> None:
    s = FileSink("f", Config(dir=str(tmp_path), max_segment_bytes=4096, gzip=True, max_segments=3))
    s.start()
    for i in range(20):
        s.send(_batch(i, "k", i * 1000, 20))
    s.close()
    segs = sorted(tmp_path.glob("archive-*"))
    assert len(segs) == 3
    assert sum(p.suffix == ".gz" for p in segs) == 2
    msgs = _messages(tmp_path)
    assert msgs[-1] == f"m{19 * 1000 + 19 * 50}"
    assert msgs == sorted(msgs, key=lambda m: int(m[1:]))


def test_static_fields_never_duplicate_an_existing_key(tmp_path: Path) -> None:
    s = FileSink("f", Config(dir=str(tmp_path)))
    s.start()
    b = _batch(1, "k", 0, 2)
    b.lines[1] = b.lines[1][:-1] + b',"host":"mine"}'
    s.send(b)
    s.close()
    raw = next(tmp_path.glob("archive-*.ndjson")).read_bytes().splitlines()
    assert [orjson.loads(x)["host"] for x in raw] == ["h1", "mine"]
    assert raw[1].count(b'"host"') == 1


def test_a_failed_write_is_undone_so_the_retry_does_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sidecar.sinks.file as file_mod

    s = FileSink("f", Config(dir=str(tmp_path)))
    s.start()
    s.send(_batch(1, "k", 0, 3))
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the journal's fsync, after the data reached the segment
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(file_mod.os, "fsync", failing_fsync)
    b = _batch(2, "k", 150, 3)
    with pytest.raises(OSError):
        s.attempt(b, list(range(len(b))))  # one attempt; the delivery loop would retry
    monkeypatch.setattr(file_mod.os, "fsync", real_fsync)
    s.send(_batch(2, "k", 150, 3))  # the worker's retry
    s.close()
    assert _messages(tmp_path) == [f"m{o}" for o in range(0, 300, 50)]
    s2 = FileSink("f", Config(dir=str(tmp_path)))
    s2.start()
    s2.send(_batch(3, "k", 0, 6))  # a full replay after restart is skipped
    s2.close()
    assert _messages(tmp_path) == [f"m{o}" for o in range(0, 300, 50)]


def test_a_file_read_again_from_before_its_checkpoint_is_new_content(tmp_path: Path) -> None:
    # Archived up to 500; the checkpoint said 250; after the restart the tailer reads the
    # file from 0 (it was truncated and rewritten while the sidecar was away): not a replay.
    s = FileSink("f", Config(dir=str(tmp_path)))
    s.start()
    s.send(_batch(1, "k", 0, 10))
    s.close()
    s2 = FileSink("f", Config(dir=str(tmp_path)))
    s2.set_resume_points({"k": 250})
    s2.start()
    s2.send(_batch(1, "k", 0, 3))
    s2.close()
    assert _messages(tmp_path) == [f"m{o}" for o in range(0, 500, 50)] + ["m0", "m50", "m100"]
    s3 = FileSink("f", Config(dir=str(tmp_path)))
    s3.set_resume_points({"k": 150})
    s3.start()
    s3.send(_batch(1, "k", 150, 1))  # resuming at the checkpoint: a replay, skipped
    s3.close()
    assert len(_messages(tmp_path)) == 13
