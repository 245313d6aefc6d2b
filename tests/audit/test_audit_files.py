"""Counting lines in real files: every encoding ``obskit trace`` reads, lines that cannot be
placed (counted apart, with file and line), and the bounded line reader."""

from __future__ import annotations

import codecs
import gzip
import random
from pathlib import Path

import orjson
import pytest
from audithelp import base_minute, line, spread, write

from obskit.audit.buckets import MINUTE_NS, BucketRange, Edges
from obskit.audit.files import NO_SERVICE, NO_TIMESTAMP, NOT_JSON, TOO_LONG, count_files
from obskit.schema import timestamp_ns
from obskit.schema.record import without_leap_second
from obskit.schema.rules import check_timestamp
from obskit.trace.model import TraceUsageError, format_ns

T0 = base_minute(60)


def rng(minutes: int = 5, edges: Edges = Edges.RIGHT_OPEN) -> BucketRange:
    return BucketRange(T0, T0 + minutes * MINUTE_NS, edges)


def test_every_encoding_counts_the_same(tmp_path: Path) -> None:
    lines = spread(T0, 3, 4)  # 12 lines, 4 per minute
    body = b"".join(x + b"\n" for x in lines)
    write(tmp_path / "plain.log", lines)
    write(tmp_path / "crlf.log", lines, crlf=True)
    (tmp_path / "bom.log").write_bytes(codecs.BOM_UTF8 + body)
    write(tmp_path / "rotated.log.gz", lines, gz=True)
    (tmp_path / "ps5.log").write_bytes(codecs.BOM_UTF16_LE + body.decode().encode("utf-16-le"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "no-final-newline.log").write_bytes(body.rstrip(b"\n"))
    (tmp_path / ".hidden.log").write_bytes(body)  # skipped, like obskit trace does
    (tmp_path / "state.db").write_bytes(body)  # skipped

    fc = count_files([tmp_path], [rng()])
    assert fc.files == 6
    assert fc.counts[Edges.RIGHT_OPEN] == {("checkout", T0 + m * MINUTE_NS): 24 for m in range(3)}
    per = fc.per_file[Edges.RIGHT_OPEN][("checkout", T0)]
    assert sorted(Path(p).name for p in per) == [
        "bom.log",
        "crlf.log",
        "no-final-newline.log",
        "plain.log",
        "ps5.log",
        "rotated.log.gz",
    ]
    assert set(per.values()) == {4}
    assert not fc.apart and fc.outside == 0 and fc.lines == 72
    assert fc.first_ns is not None and T0 < fc.first_ns < T0 + MINUTE_NS


def test_lines_that_cannot_be_placed_are_counted_apart_with_file_and_line(tmp_path: Path) -> None:
    good = line(T0 + 10**9)
    f = write(
        tmp_path / "app.log",
        [
            good,
            b"not json at all",
            b'["an", "array"]',
            b'{"timestamp":"2026-11-25 10:00:00","service":"checkout"}',
            b'{"timestamp":"2026-11-25T10:00:00Z","message":"no service"}',
            b'{"timestamp":"2026-11-25T10:00:00Z","service":42}',
            b"",
            b"   ",
            b"x" * 300,
            good,
        ],
    )
    fc = count_files([f], [rng()], max_line_bytes=200)
    assert fc.apart == {NOT_JSON: 2, NO_TIMESTAMP: 1, NO_SERVICE: 2, TOO_LONG: 1}
    assert fc.examples == [
        f"{f}:2: {NOT_JSON}",
        f"{f}:3: {NOT_JSON}",
        f"{f}:4: {NO_TIMESTAMP}",
        f"{f}:5: {NO_SERVICE}",
        f"{f}:6: {NO_SERVICE}",
        f"{f}:9: {TOO_LONG}",
    ]
    assert fc.counts[Edges.RIGHT_OPEN] == {("checkout", T0): 2}
    assert fc.lines == 10


def test_long_lines_across_small_blocks(tmp_path: Path) -> None:
    long_ok = line(T0 + 2 * 10**9, pad="y" * 5000)
    too_long = line(T0 + 3 * 10**9, pad="z" * 20_000)
    lines = [line(T0 + 10**9), long_ok, too_long, line(T0 + 4 * 10**9), long_ok]
    f = write(tmp_path / "a.log", lines)
    for block in (7, 64, 4096, 1 << 20):
        fc = count_files([f], [rng()], max_line_bytes=10_000, block_size=block)
        assert fc.counts[Edges.RIGHT_OPEN] == {("checkout", T0): 4}, block
        assert fc.apart == {TOO_LONG: 1}, block
        assert fc.examples == [f"{f}:3: {TOO_LONG}"], block
        assert fc.bytes_read == f.stat().st_size


def test_one_pass_counts_both_edge_conventions(tmp_path: Path) -> None:
    on_boundary = line(T0 + MINUTE_NS)  # exactly 1 minute after T0
    inside = line(T0 + MINUTE_NS + 1)
    f = write(tmp_path / "a.log", [on_boundary, inside])
    fc = count_files([f], [rng(edges=Edges.LEFT_OPEN), rng(edges=Edges.RIGHT_OPEN)])
    assert fc.counts[Edges.LEFT_OPEN] == {("checkout", T0): 1, ("checkout", T0 + MINUTE_NS): 1}
    assert fc.counts[Edges.RIGHT_OPEN] == {("checkout", T0 + MINUTE_NS): 2}


def test_service_filter_window_and_a_file_named_twice(tmp_path: Path) -> None:
    lines = spread(T0, 2, 3) + spread(T0, 2, 2, "payments") + [line(T0 - MINUTE_NS)]
    f = write(tmp_path / "logs" / "a.log", lines)
    fc = count_files([tmp_path / "logs", f], [rng(1)], services=["payments"])
    assert fc.files == 1
    assert fc.counts[Edges.RIGHT_OPEN] == {("payments", T0): 2}
    assert fc.other_services == 7  # checkout (the line before the window is one too)
    assert fc.outside == 2  # payments' second minute


def test_a_missing_path_is_a_usage_error_and_a_bad_gzip_a_warning(tmp_path: Path) -> None:
    with pytest.raises(TraceUsageError, match="no such file"):
        count_files([tmp_path / "nope"], [rng()])
    (tmp_path / "broken.log.gz").write_bytes(gzip.compress(line(T0 + 1) + b"\n")[:-12])
    write(tmp_path / "ok.log", [line(T0 + 1)])
    fc = count_files([tmp_path], [rng()])
    assert fc.counts[Edges.RIGHT_OPEN] == {("checkout", T0): 1}
    assert len(fc.warnings) == 1 and "broken.log.gz: cannot read" in fc.warnings[0]


def _reference(lines: list[bytes], r: BucketRange) -> dict[tuple[str, int], int]:
    """What the counts must be, computed the slow obvious way."""
    out: dict[tuple[str, int], int] = {}
    for raw in lines:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        ts, svc = obj.get("timestamp"), obj.get("service")
        if not isinstance(svc, str) or not svc or check_timestamp(ts) is not None:
            continue
        if r.edges is Edges.RIGHT_OPEN:
            ts = without_leap_second(ts)
        key = r.edges.key(timestamp_ns(ts))
        if key in r:
            out[(svc, key)] = out.get((svc, key), 0) + 1
    return out


def test_bulk_and_line_paths_agree_with_a_reference(tmp_path: Path) -> None:
    rnd = random.Random(11)
    t = timestamp_ns("2016-12-31T23:50:00Z")  # a leap second at the end of this day
    lines: list[bytes] = []
    for i in range(6000):
        ns = t + rnd.randrange(0, 20) * MINUTE_NS + rnd.choice([0, 0, 1, rnd.randrange(MINUTE_NS)])
        text = format_ns(ns, rnd.choice([0, 3, 9]))
        roll = rnd.random()
        if roll < 0.01:
            text = "2016-12-31T23:59:60.25Z"
        elif roll < 0.02:
            text = text[:-1] + "+01:00"
        elif roll < 0.025:
            text = "2016-12-31T25:00:00Z"
        rec = {"timestamp": text, "service": rnd.choice(["a", "b", "c"]), "i": i}
        raw = orjson.dumps(rec)
        if roll > 0.999:
            raw = b"junk " + raw
        lines.append(raw)
        if rnd.random() < 0.002:
            lines.append(b"")
    f = write(tmp_path / "mixed.log", lines, crlf=True)
    ranges = [
        BucketRange(t + 2 * MINUTE_NS, t + 15 * MINUTE_NS, Edges.LEFT_OPEN),
        BucketRange(t + 2 * MINUTE_NS, t + 15 * MINUTE_NS, Edges.RIGHT_OPEN),
    ]
    for block in (512, 64 * 1024, 1 << 20):
        fc = count_files([f], ranges, block_size=block)
        for r in ranges:
            assert fc.counts[r.edges] == _reference(lines, r), (block, r.edges)
        assert fc.lines == len(lines)
