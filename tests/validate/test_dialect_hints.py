"""``obskit validate`` on logs written in a JSON dialect or holding crash output: the hint
names the dialect and the exact fix (rename, or the sidecar rule); verdicts never change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from validate_helpers import jl, run_process

DATA = Path(__file__).resolve().parents[1] / "data"
SLOG = DATA / "dialects" / "go-slog.log"
HINT = (
    "looks like Go log/slog: rename time -> timestamp, msg -> message; add service; "
    'or let the sidecar convert it with schema.dialects: [{include: ["orders.log"], '
    "dialect: go-slog, service: <name>}]"
)


def _orders(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copyfile(SLOG, logs / "orders.log")
    return logs


def test_first_dialect_violation_of_a_file_carries_the_hint(tmp_path: Path) -> None:
    _orders(tmp_path)
    r = run_process("logs", cwd=tmp_path)
    assert r.code == 1
    path = str(Path("logs") / "orders.log")
    lines = r.out.splitlines()
    assert lines[0] == f"{path}:1:1: OBS009 timestamp: required field is missing; {HINT}"
    assert lines[1] == f"{path}:1:1: OBS009 service: required field is missing"
    assert sum("looks like" in ln for ln in lines) == 1
    assert "checked 9 lines in 1 file(s): 0 valid, 9 invalid" in r.out


def test_with_dialect_every_such_line_carries_its_own_hint(tmp_path: Path) -> None:
    _orders(tmp_path)
    r = run_process("--dialect", "auto", "--format", "json", "logs", cwd=tmp_path)
    assert r.code == 1  # still not schema v1: the hint is advice, not a pass
    hinted = [v for v in json.loads(r.out)["violations"] if "looks like" in v["message"]]
    assert [v["line"] for v in hinted] == list(range(1, 10))
    by_line = {v["line"]: v["message"] for v in hinted}
    assert "level INFO+2 -> INFO" in by_line[5]
    # Lines that name their service need no "add service"; a traceparent is mapped.
    assert by_line[8].endswith("dialect: go-slog}]") and "add service" not in by_line[8]
    assert "traceparent -> trace_id/span_id" in by_line[9]


def test_a_named_dialect_hints_only_its_own_lines(tmp_path: Path) -> None:
    _orders(tmp_path)
    r = run_process("--dialect", "zap", "logs", cwd=tmp_path)
    assert r.code == 1
    assert "looks like" not in r.out


def test_each_dialect_is_recognised(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for f in sorted((DATA / "dialects").glob("*.log")):
        shutil.copyfile(f, logs / f.name)
    r = run_process("logs", cwd=tmp_path)
    titles = {
        "ecs-java.log": "Elastic Common Schema (ECS)",
        "ecs.log": "Elastic Common Schema (ECS)",
        "go-slog.log": "Go log/slog",
        "logrus.log": "Go logrus",
        "python-json.log": "python-json-logger",
        "serilog.log": "Serilog CLEF",
        "structlog.log": "Python structlog",
        "zap.log": "Go zap",
    }
    hints = [ln for ln in r.out.splitlines() if "looks like" in ln]
    assert len(hints) == len(titles)
    for ln in hints:
        name = Path(ln.split(":", 1)[0]).name
        assert f"looks like {titles[name]}:" in ln, ln
        assert f'include: ["{name}"]' in ln


def test_a_line_still_invalid_after_conversion_gets_no_hint(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(
        '{"time":"yesterday","level":"INFO","msg":"m","service":"a"}\n'
        '{"time":"2026-01-01T00:00:00Z","level":"LOUD","msg":"m","service":"a"}\n'
    )
    r = run_process("--dialect", "go-slog", "a.log", cwd=tmp_path)
    assert r.code == 1 and "looks like" not in r.out


def test_schema_v1_lines_are_untouched(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(jl() * 3 + jl(level="WARNING"))
    r = run_process("--dialect", "auto", "a.log", cwd=tmp_path)
    assert r.code == 1
    assert r.out.splitlines()[0].endswith("(did you mean WARN?)")


def test_crash_output_is_named(tmp_path: Path) -> None:
    crashes = {
        "go-panic.txt": "a Go panic",
        "python-traceback.txt": "a Python traceback",
        "dotnet-unhandled.txt": "a .NET unhandled exception",
        "java-exception.txt": "a Java stack trace",
    }
    for name in crashes:
        text = (DATA / "crash" / name).read_bytes()
        (tmp_path / f"{name}.log").write_bytes(jl().encode() + text + jl().encode())
    r = run_process(".", cwd=tmp_path)
    assert r.code == 1
    for name, title in crashes.items():
        first = [ln for ln in r.out.splitlines() if ln.startswith(f"{name}.log:2:1:")]
        assert first == [
            f"{name}.log:2:1: OBS001: invalid JSON: invalid character; looks like {title}; "
            "the sidecar groups it into one record"
        ]


def test_hints_are_the_same_whatever_the_workers(tmp_path: Path) -> None:
    """A file cut into byte ranges for several workers: the first dialect line of the file,
    and only it, carries the hint, exactly as with one process (hints are added where the
    reports are put back in order)."""
    from concurrent.futures import ProcessPoolExecutor

    from obskit.schema.policy import Policy
    from obskit.validate.reporters import render
    from obskit.validate.runner import run_validation

    big = tmp_path / "orders.log"
    lines = SLOG.read_bytes().splitlines(keepends=True)
    big.write_bytes(b"".join(lines * 300))
    one = run_validation([str(big)], Policy(), jobs=1)
    with ProcessPoolExecutor(2) as pool:
        many = run_validation(
            [str(big)], Policy(), jobs=2, range_bytes=4096, executor=pool, dialect=None
        )
    assert render(many, "text") == render(one, "text")
    hinted = [r for f in many.files for r in f.reports if "looks like" in r.violations[0].message]
    assert [r.line for r in hinted] == [1]
