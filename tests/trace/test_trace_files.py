"""Local files backend and the model: real files on disk, every encoding the brief names."""

from __future__ import annotations

import codecs
import gzip
import itertools
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_helpers import OTHER, TRACE, line, record

from obskit.trace.files import scan_blocks, search_files
from obskit.trace.model import (
    Entry,
    TraceUsageError,
    Window,
    merge,
    parse_duration_ns,
    parse_time_ns,
    parse_trace_id,
)
from obskit.trace.render import escape, format_offset

T0 = 1_795_600_800_000_000_000  # 2026-11-25T10:00:00Z
WIDE = Window(T0 - 10**13, T0 + 10**13)


# --- trace ids, windows --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "want"),
    [
        (TRACE, TRACE),
        (TRACE.upper(), TRACE),
        (f"  {TRACE}\n", TRACE),
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"00-{TRACE.upper()}-00F067AA0BA902B7-00", TRACE),
    ],
)
def test_trace_id_forms(arg: str, want: str) -> None:
    assert parse_trace_id(arg) == want


@pytest.mark.parametrize(
    "arg",
    [
        "0" * 32,
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        TRACE[:-1],
        TRACE + "0",
        "g" * 32,
        "",
        f"ff-{TRACE}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7",
        "x-y-z",
    ],
)
def test_bad_trace_ids_are_usage_errors(arg: str) -> None:
    with pytest.raises(TraceUsageError) as exc:
        parse_trace_id(arg)
    assert "trace id" in str(exc.value) or "traceparent" in str(exc.value)


def test_durations_and_times() -> None:
    assert parse_duration_ns("24h") == 24 * 3600 * 10**9
    assert parse_duration_ns("1h30m") == 5400 * 10**9
    assert parse_duration_ns("7d") == 7 * 86400 * 10**9
    for bad in ("", "24", "h", "-1h", "1y", "0s"):
        with pytest.raises(TraceUsageError):
            parse_duration_ns(bad)
    assert parse_time_ns("2026-11-25t10:00:00z", "--from") == T0
    assert parse_time_ns("2026-11-25 11:00:00+01:00", "--from") == T0
    with pytest.raises(TraceUsageError, match="--to"):
        parse_time_ns("yesterday", "--to")


def test_window_shards_cover_exactly() -> None:
    w = Window.build(None, "2026-11-18T10:00:00Z", "2026-11-25T10:00:00Z")
    shards = w.shards(6 * 3600 * 10**9)
    assert len(shards) == 28
    assert shards[0].start_ns == w.start_ns and shards[-1].end_ns == w.end_ns
    assert all(a.end_ns == b.start_ns for a, b in itertools.pairwise(shards))
    with pytest.raises(TraceUsageError, match="not both"):
        Window.build("1h", "2026-11-18T10:00:00Z", None)
    with pytest.raises(TraceUsageError, match="empty"):
        Window.build(None, "2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z")
    now = Window.build(None, None, None, now_ns=T0)
    assert now.end_ns - now.start_ns == 24 * 3600 * 10**9


def test_merge_orders_and_deduplicates() -> None:
    def e(ts: int, msg: str, src: str, raw: str = "") -> Entry:
        return Entry(ts, "", "svc", "INFO", msg, "00f067aa0ba902b7", src, raw)

    a = [e(3, "c", "loki"), e(1, "a", "loki")]
    b = [e(1, "a", "es"), e(2, "b", "es"), e(5, "z", "es", raw="same"), e(6, "y", "f", "same")]
    out = merge([a, b])
    assert [x.message for x in out] == ["a", "b", "c", "z"]
    assert out[0].source == "loki"  # the first backend's copy is kept


def test_escape_makes_injection_visible() -> None:
    assert escape("ok\x1b[2J\r\nfake\tx\x00\u202eevil") == (
        "ok\\x1b[2J\\r\\nfake\\tx\\x00\\u202eevil"
    )
    assert format_offset(0) == "+0.000s"
    assert format_offset(65_120_000_000) == "+1m05.120s"
    assert format_offset(3_723_000_000_000) == "+1h02m03.000s"


# --- files -----------------------------------------------------------------------------------


def _lines(n: int, every: int, start: int = T0) -> tuple[list[str], int]:
    """n lines, every ``every``-th one of the trace; returns (lines, trace line count)."""
    out, hits = [], 0
    for i in range(n):
        mine = i % every == 0
        hits += mine
        out.append(
            line(record(start + i * 1000, trace_id=TRACE if mine else OTHER, message=f"line {i}"))
        )
    return out, hits


def test_folder_recursive_gz_and_encodings(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "old" / "deeper").mkdir(parents=True)
    plain, n1 = _lines(300, 7)
    (logs / "app.log").write_text("\n".join(plain) + "\n", encoding="utf-8")
    gz, n2 = _lines(300, 5, T0 + 10**9)
    with gzip.open(logs / "old" / "app.log.1.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(gz) + "\n")
    crlf, n3 = _lines(50, 3, T0 + 2 * 10**9)
    (logs / "old" / "deeper" / "bom.log").write_bytes(
        codecs.BOM_UTF8 + ("\r\n".join(crlf) + "\r\n").encode()
    )
    u16, n4 = _lines(40, 2, T0 + 3 * 10**9)
    (logs / "ps5.log").write_text("\r\n".join(u16) + "\r\n", encoding="utf-16")  # LE with BOM
    u16be, n5 = _lines(20, 4, T0 + 4 * 10**9)
    (logs / "be.log").write_bytes(codecs.BOM_UTF16_BE + "\n".join(u16be).encode("utf-16-be"))
    (logs / ".hidden.log").write_text(line(record(T0)) + "\n")
    (logs / "positions.db").write_text(line(record(T0)) + "\n")

    found = search_files([logs], TRACE, WIDE)
    assert found.files == 5
    assert len(found.entries) == n1 + n2 + n3 + n4 + n5
    assert all(e.fields["trace_id"] == TRACE for e in found.entries)
    assert not found.warnings
    bom = [e for e in found.entries if e.source.startswith(str(logs / "old" / "deeper"))]
    assert bom[0].source.endswith("bom.log:1") and bom[1].source.endswith("bom.log:4")
    assert not any(e.raw.endswith("\r") for e in found.entries)


@pytest.mark.parametrize("block", [64, 100, 333, 4096, 1 << 20])
def test_lines_across_block_borders(tmp_path: Path, block: int) -> None:
    lines, n = _lines(500, 3)
    p = tmp_path / "a.log"
    p.write_text("\n".join(lines), encoding="utf-8")  # no final newline either
    found = search_files([p], TRACE, WIDE, block_size=block)
    assert len(found.entries) == n
    numbers = [int(e.source.rsplit(":", 1)[1]) for e in found.entries]
    assert numbers == list(range(1, 501, 3))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([b"x", b"ab" + TRACE.encode() + b"cd", b"", TRACE.encode(), b"zz" * 40]),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=200),
)
def test_scan_blocks_agrees_with_splitlines(parts: list[bytes], block: int) -> None:
    data = b"\n".join(parts)
    blocks = iter([data[i : i + block] for i in range(0, len(data), block)])
    got: list[tuple[bytes, int]] = []
    scan_blocks(blocks, TRACE.encode(), lambda ln, no: got.append((ln, no)))
    want = [(ln, i + 1) for i, ln in enumerate(data.split(b"\n")) if TRACE.encode() in ln]
    assert got == want


def test_window_other_traces_and_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "mixed.log"
    rows = [
        line(record(T0, message="inside")),
        line(record(T0 - 10**15, message="long ago")),
        line(record(T0, trace_id=OTHER, message=f"mentions {TRACE} in text")),
        f"plain text mentioning {TRACE}",
        line(record(T0 + 1, level="WARNING", message="bad level but still shown")),
    ]
    p.write_text("\n".join(rows) + "\n")
    found = search_files([p], TRACE, Window(T0 - 10**12, T0 + 10**12))
    assert [e.message for e in found.entries] == ["inside", "bad level but still shown"]
    assert found.entries[1].problems and "OBS003" in found.entries[1].problems[0]
    assert found.outside_window == 1
    assert found.broken == [f"{p}:4: mentions the trace id but is not shown: not JSON"]
    assert found.warnings == []


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    lines, n = _lines(2000, 10)
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    p = tmp_path / "cut.log.gz"
    p.write_bytes(data[: len(data) * 3 // 4])
    found = search_files([p], TRACE, WIDE, block_size=4096)
    assert 0 < len(found.entries) < n
    assert found.warnings and "cut.log.gz: cannot read" in found.warnings[0]


def test_missing_path_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(TraceUsageError, match="no such file"):
        search_files([tmp_path / "nope"], TRACE, WIDE)


def test_sidecar_file_sink_archive(tmp_path: Path) -> None:
    """What the sidecar's file sink writes (rotated NDJSON segments, older ones gzipped, a
    hidden journal, static fields appended) is searched as is."""
    import orjson

    from obskit.schema import check_line
    from sidecar.sinks.base import Batch
    from sidecar.sinks.file import Config, FileSink

    sink = FileSink("f", Config(dir=str(tmp_path), max_segment_bytes=4096, gzip=True))
    sink.start()
    want = []
    for b in range(20):
        lines, recs, offsets = [], [], []
        for i in range(15):
            n = b * 15 + i
            mine = n % 4 == 0
            ln = orjson.dumps(
                record(T0 + n * 10**6, trace_id=TRACE if mine else OTHER, message=f"s{n}")
            )
            rec, _ = check_line(ln)
            assert rec is not None
            lines.append(ln)
            recs.append(rec)
            offsets.append(n * 100)
            if mine:
                want.append(f"s{n}")
        sink.send(
            Batch(
                b,
                lines,
                recs,
                offsets=offsets,
                runs=[(0, "k")],
                static={"host": "web-1"},
                extents={"k": (b * 1500, b * 1500 + 1500)},
            )
        )
    sink.close()
    assert any(p.suffix == ".gz" for p in tmp_path.iterdir())
    assert (tmp_path / ".file-sink.journal").exists()
    found = search_files([tmp_path], TRACE, WIDE)
    assert sorted(e.message for e in found.entries) == sorted(want)
    assert all(e.fields["host"] == "web-1" for e in found.entries)
    assert not found.warnings


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_special_files_in_a_folder_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.log")  # opening it for reading would block forever
    (tmp_path / "app.log").write_text(line(record(T0)) + "\n")
    found = search_files([tmp_path], TRACE, WIDE)
    assert found.files == 1 and len(found.entries) == 1
