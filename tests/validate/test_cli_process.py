"""``obskit validate`` as a real process: exit codes 0/1/2, stdin, streams."""

from __future__ import annotations

import gzip
from pathlib import Path

from validate_helpers import jl, run_process


def test_exit_0_when_all_valid(logs: Path) -> None:
    r = run_process(str(logs / "payments.log"), cwd=logs.parent)
    assert r.code == 0, r
    assert r.out == (
        "checked 3 lines in 1 file(s): 3 valid, 0 invalid, 0 warning(s)\n"
        "  per service (valid / invalid):\n"
        f"    {'payments':<32} {3:>9} / 0\n"
    )
    assert r.err == ""


def test_exit_1_with_violations_in_text_format(logs: Path) -> None:
    r = run_process("logs", cwd=logs.parent)
    assert r.code == 1
    path = str(Path("logs") / "checkout.log")
    assert r.out.splitlines()[:5] == [
        f"{path}:2:52: OBS003 level: 'WARNING' is not one of DEBUG, INFO, WARN, ERROR"
        " (did you mean WARN?)",
        f"{path}:3:15: OBS004 timestamp: '2024-05-01 12:30:00' is not RFC 3339"
        " (YYYY-MM-DDThh:mm:ss[.fffffffff]Z|±hh:mm)",
        f"{path}:4:98: OBS007 span_id: span_id without trace_id",
        f"{path}:5:1: OBS001: invalid JSON: invalid character",
        "checked 8 lines in 2 file(s): 4 valid, 4 invalid, 0 warning(s)",
    ]


def test_exit_2_missing_file(logs: Path) -> None:
    r = run_process("nothere.log", cwd=logs.parent)
    assert r.code == 2
    assert r.out == ""
    assert r.err == "obskit validate: error: nothere.log: no such file or directory\n"


def test_exit_2_bad_policy_file_is_a_usage_error(logs: Path) -> None:
    (logs.parent / "obskit.toml").write_text("required_fields = 'env'\n")
    r = run_process("logs", cwd=logs.parent)
    assert r.code == 2
    assert "obskit.toml: required_fields must be a list of strings" in r.err
    assert r.out == ""


def test_exit_2_missing_config_option_file(logs: Path) -> None:
    r = run_process("--config", "nope.toml", "logs", cwd=logs.parent)
    assert r.code == 2 and "nope.toml: cannot read policy" in r.err


def test_exit_2_unreadable_input_truncated_gzip(logs: Path) -> None:
    data = gzip.compress(jl().encode() * 5000)
    (logs / "old.log.gz").write_bytes(data[: len(data) // 2])
    r = run_process("logs", cwd=logs.parent)
    assert r.code == 2  # I/O errors win over violations
    assert "old.log.gz: truncated gzip stream" in r.out


def test_exit_2_usage_errors(logs: Path) -> None:
    assert run_process(cwd=logs.parent).code == 2
    assert run_process("--format", "xml", "logs", cwd=logs.parent).code == 2
    r = run_process("--max-line-bytes", "4", "logs", cwd=logs.parent)
    assert r.code == 2 and "max_line_bytes must be at least 16" in r.err


def test_stdin_dash(logs: Path) -> None:
    r = run_process("-", cwd=logs.parent, stdin=(jl() + jl(level="info")).encode())
    assert r.code == 1
    assert r.out.startswith("-:2:52: OBS003 level: 'info' is not one of")
    r = run_process("-", cwd=logs.parent, stdin=jl().encode() * 100)
    assert r.code == 0 and "100 valid" in r.out


def test_stdin_utf16_and_gzip(logs: Path) -> None:
    raw = (jl() * 3).replace("\n", "\r\n").encode("utf-16")
    r = run_process("-", cwd=logs.parent, stdin=raw)
    assert r.code == 1 and "OBS013" in r.out
    assert run_process("--accept-utf16", "-", cwd=logs.parent, stdin=raw).code == 0
    gz = gzip.compress(jl().encode() * 3)
    assert run_process("-", cwd=logs.parent, stdin=gz).code == 0


def test_utf16_file_error_then_accept(logs: Path) -> None:
    (logs / "ps.log").write_bytes((jl() * 2).replace("\n", "\r\n").encode("utf-16"))
    r = run_process(str(logs / "ps.log"), cwd=logs.parent)
    assert r.code == 1
    assert r.out.splitlines()[0] == (
        f"{logs / 'ps.log'}:1:1: OBS013: file is UTF-16-LE (Windows PowerShell 5 writes this"
        " with '>' and Out-File); write UTF-8 instead (Out-File -Encoding utf8, or PowerShell"
        " 7), or pass --accept-utf16"
    )
    assert run_process("--accept-utf16", str(logs / "ps.log"), cwd=logs.parent).code == 0


def test_exit_2_negative_max_errors(logs: Path) -> None:
    r = run_process("--max-errors", "-1", "logs", cwd=logs.parent)
    assert r.code == 2 and "--max-errors" in r.err


def test_exit_2_when_folders_hold_no_log_files(tmp_path: Path) -> None:
    # A CI step pointed at an empty or wrong folder must fail, not pass with 0 lines.
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "notes.txt").write_text("x\n")
    r = run_process("logs", cwd=tmp_path)
    assert r.code == 2
    assert r.err.startswith("obskit validate: error: no log files found in logs (file patterns:")
    assert run_process("--glob", "*.txt", "logs", cwd=tmp_path).code == 1
