"""Dialect conversion in the schema stage, line by line against the converter: what is
converted, counted and quarantined when a dialect file holds other lines too, when an
``auto`` file switches dialect mid-way, and when some lines take the converter's general
path (the stage's fast path declines them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
from enginehelp import line

from obskit._durations import dec_hook
from obskit.schema.dialects import BY_NAME, convert_line
from sidecar.config import SchemaConfig
from sidecar.metrics import Metrics
from sidecar.source.chunk import Chunk
from sidecar.transform.quarantine import DeadLetter
from sidecar.transform.stage import SchemaStage

TS = "2024-10-01T12:00:00.5Z"


def _stage(tmp: Path, dialect: str) -> tuple[SchemaStage, Metrics, DeadLetter]:
    dead = DeadLetter(tmp / "q", 1 << 30, 2)
    metrics = Metrics()
    schema = {"dialects": [{"include": ["*.log"], "dialect": dialect, "service": "orders"}]}
    cfg = msgspec.convert(schema, SchemaConfig, dec_hook=dec_hook)
    return SchemaStage(cfg, dead, metrics), metrics, dead


def _feed(stage: SchemaStage, *parts: list[bytes]) -> list[bytes]:
    out, pos = [], 0
    for lines in parts:
        data = b"\n".join(lines) + b"\n"
        out += stage.process(Chunk("k", "/logs/app.log", pos, pos + len(data), data)).lines
        pos += len(data)
    return out


def _quarantined(dead: DeadLetter) -> list[dict[str, Any]]:
    dead.flush(durable=False)
    return [orjson.loads(x) for x in dead.path.read_bytes().splitlines()]


def _converted(line: bytes, dialect: str) -> bytes:
    got = convert_line(line, BY_NAME[dialect], "orders")
    assert got is not None
    return got[0]


def _slog(n: int, level: str = "INFO") -> bytes:
    return orjson.dumps({"time": TS, "level": level, "msg": f"m{n}", "seq": n})


def test_a_dialect_file_with_other_lines_converts_and_counts_only_its_own(
    tmp_path: Path,
) -> None:
    stage, metrics, dead = _stage(tmp_path, "go-slog")
    v1 = line(9, service="billing")
    lines = [_slog(1), v1, b"not json at all", _slog(2, level="LOUD"), _slog(3, level="WARN+2")]
    out = _feed(stage, lines)
    # The v1 line goes through as it is; the converted ones exactly as the converter says.
    assert out == [_converted(lines[0], "go-slog"), v1, _converted(lines[4], "go-slog")]
    assert metrics.totals.converted == {"go-slog": 2}
    q = _quarantined(dead)
    # Offsets are where the lines start in the file, not in the converted text.
    assert [r["offset"] for r in q] == [len(lines[0]) + len(v1) + 2, sum(map(len, lines[:3])) + 3]
    assert sum(metrics.totals.quarantined.values()) == 2
    # The line that converted but still failed is quarantined as the service wrote it.
    assert q[1]["raw"] == lines[3].decode()
    assert "after conversion from go-slog" in str(q[1]["reasons"])


def test_an_auto_file_switching_dialect_mid_way_is_counted_per_dialect(tmp_path: Path) -> None:
    stage, metrics, dead = _stage(tmp_path, "auto")
    zap = [
        orjson.dumps({"level": "info", "ts": 1727784000.5 + n, "msg": f"z{n}"}) for n in range(2)
    ]
    logrus = [
        orjson.dumps({"level": "warning", "msg": f"l{n}", "time": TS, "traceId": "AB" * 16})
        for n in range(3)
    ]
    # The switch falls inside the first chunk and again inside the second.
    out = _feed(stage, [*zap, logrus[0]], [*logrus[1:], _slog(7)])
    assert len(out) == 6
    assert metrics.totals.converted == {"zap": 2, "logrus": 3, "go-slog": 1}
    assert [orjson.loads(x)["message"] for x in out] == ["z0", "z1", "l0", "l1", "l2", "m7"]
    assert orjson.loads(out[3])["trace_id"] == "ab" * 16
    assert not dead.path.exists() or not _quarantined(dead)


def test_lines_the_fast_path_declines_convert_as_the_converter_says(tmp_path: Path) -> None:
    stage, metrics, _ = _stage(tmp_path, "ecs")
    base = {"@timestamp": TS, "message": "m", "service": {"name": "orders"}}
    lines = [
        orjson.dumps({**base, "log.level": "info"}),
        orjson.dumps({**base, "log": {"level": "warn", "logger": "app"}}),  # nested: general path
        orjson.dumps({**base, "log.level": "fatal", "service": {"name": "orders", "v": 2}}),
        orjson.dumps({**base, "log.level": "info", "trace.id": "AB" * 16, "trace_id": 5}),
    ]
    out = _feed(stage, lines)
    assert out == [_converted(x, "ecs") for x in lines]
    assert metrics.totals.converted == {"ecs": 4}


def test_a_crash_after_converted_lines_holds_the_checkpoint_at_its_first_line(
    tmp_path: Path,
) -> None:
    stage, metrics, _ = _stage(tmp_path, "go-slog")
    head = _slog(1) + b"\n" + _slog(2) + b"\n"
    panic = (
        b"panic: runtime error: index out of range [5] with length 2\n\ngoroutine 1 [running]:\n"
    )
    data = head + panic
    got = stage.process(Chunk("k", "/logs/app.log", 0, len(data), data))
    assert len(got.lines) == 2 and metrics.totals.converted == {"go-slog": 2}
    # The crash is still open: the checkpoint waits at its first line, where the file has it.
    assert got.end == len(head)
    assert got.offsets == [0, len(_slog(1)) + 1]
