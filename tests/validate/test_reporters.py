"""Report formats and options of ``obskit validate`` (in-process through click's runner)."""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from validate_helpers import Result, jl

from obskit.schema import RULES

Cli = Callable[..., Result]
CHECKOUT = str(Path("logs") / "checkout.log")


def test_text_lines_exact(logs: Path, cli: Cli) -> None:
    r = cli("logs/checkout.log")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0] == (
        "logs/checkout.log:2:52: OBS003 level: 'WARNING' is not one of DEBUG, INFO, WARN, ERROR"
        " (did you mean WARN?)"
    )
    assert lines[3] == "logs/checkout.log:5:1: OBS001: invalid JSON: invalid character"
    assert lines[4:] == [
        "checked 5 lines in 1 file(s): 1 valid, 4 invalid, 0 warning(s)",
        "  OBS001         1  line is not valid UTF-8 JSON",
        "  OBS003         1  level is not one of DEBUG, INFO, WARN, ERROR",
        "  OBS004         1  timestamp is not an RFC 3339 date-time with time zone",
        "  OBS007         1  span_id is not a W3C span id, or comes without trace_id",
        "  per service (valid / invalid):",
        f"    {'?':<32} {0:>9} / 1",
        f"    {'checkout-api':<32} {1:>9} / 3",
    ]


def test_text_quiet_prints_only_summary(logs: Path, cli: Cli) -> None:
    r = cli("-q", "logs")
    assert r.code == 1
    assert r.out.startswith("checked 8 lines in 2 file(s): 4 valid, 4 invalid")


def test_json_report(logs: Path, cli: Cli) -> None:
    r = cli("--format", "json", "logs")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["schema_version"] == "1"
    s = doc["summary"]
    assert (s["files"], s["lines"], s["valid"], s["invalid"]) == (2, 8, 4, 4)
    assert s["by_rule"] == {"OBS001": 1, "OBS003": 1, "OBS004": 1, "OBS007": 1}
    assert s["by_service"] == {"checkout-api": 1, "payments": 3}
    assert s["truncated"] is False
    assert doc["violations"][0] == {
        "path": CHECKOUT,
        "line": 2,
        "offset": len(jl()),
        "column": 52,
        "rule": "OBS003",
        "field": "level",
        "severity": "error",
        "message": "'WARNING' is not one of DEBUG, INFO, WARN, ERROR (did you mean WARN?)",
    }
    assert doc["io_errors"] == [] and doc["policy_violations"] == []


def test_junit_report(logs: Path, cli: Cli) -> None:
    r = cli("--format", "junit", "logs")
    assert r.code == 1
    root = ET.fromstring(r.out.encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {CHECKOUT, str(Path("logs") / "payments.log")}
    fail = suites[CHECKOUT].find("testcase/failure")
    assert fail is not None and fail.get("message") == "4 of 5 lines violate log schema v1"
    assert fail.text is not None and f"{CHECKOUT}:2:52: OBS003 level:" in fail.text
    assert suites[str(Path("logs") / "payments.log")].find("testcase/failure") is None


def test_junit_io_error_is_an_error_element(logs: Path, cli: Cli) -> None:
    data = gzip.compress(jl().encode() * 5000)
    (logs / "cut.log.gz").write_bytes(data[:-100])
    r = cli("--format", "junit", "logs/cut.log.gz")
    assert r.code == 2
    err = ET.fromstring(r.out.encode()).find("testsuite/testcase/error")
    assert err is not None and "truncated gzip stream" in (err.get("message") or "")
    assert "truncated gzip stream" in r.err


def test_sarif_report(logs: Path, cli: Cli) -> None:
    r = cli("--format", "sarif", "logs")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["version"] == "2.1.0"
    assert doc["$schema"].endswith("sarif-2.1.0.json")
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == sorted(RULES)
    res = run["results"]
    assert [x["ruleId"] for x in res] == ["OBS003", "OBS004", "OBS007", "OBS001"]
    first = res[0]
    assert ids[first["ruleIndex"]] == "OBS003"
    assert first["level"] == "error"
    assert first["message"]["text"].startswith("OBS003 level: 'WARNING'")
    loc = first["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "logs/checkout.log"
    assert loc["region"] == {"startLine": 2, "startColumn": 52}


def test_github_annotations(logs: Path, cli: Cli) -> None:
    r = cli("--format", "github", "logs/checkout.log")
    assert r.code == 1
    lines = r.out.splitlines()
    assert lines[0] == (
        "::error file=logs/checkout.log,line=2,col=52,title=OBS003::OBS003 level: 'WARNING' is "
        "not one of DEBUG, INFO, WARN, ERROR (did you mean WARN?)"
    )
    assert lines[3] == (
        "::error file=logs/checkout.log,line=5,col=1,title=OBS001::OBS001: invalid JSON: "
        "invalid character"
    )
    assert lines[4].startswith("checked 5 lines")


def test_github_escapes_file_property_and_message(tmp_path: Path, cli: Cli) -> None:
    p = tmp_path / "a,b:c%.log"
    p.write_text(jl(message=1))
    r = cli("--format", "github", str(p))
    first = r.out.splitlines()[0]
    assert "a%2Cb%3Ac%25.log,line=1," in first
    assert first.endswith("::OBS008 message: must be a string, got number 1")


def test_warnings_do_not_fail_and_are_marked(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "obskit.toml").write_text("warn_duplicate_keys = true\n")
    raw = jl()[:-2] + ', "user": 1, "user": 2}'
    (tmp_path / "a.log").write_text(raw + "\n")
    r = cli("--config", str(tmp_path / "obskit.toml"), str(tmp_path / "a.log"))
    assert r.code == 0
    first, second = raw.index('"user"') + 1, raw.rindex('"user"') + 1
    assert r.out.splitlines()[0] == (
        f"{tmp_path / 'a.log'}:1:{second}: OBS101 user: appears twice (first at column {first})"
        " (warning)"
    )
    assert "1 valid, 0 invalid, 1 warning(s)" in r.out
    r = cli(
        "--config", str(tmp_path / "obskit.toml"), "--format", "github", str(tmp_path / "a.log")
    )
    assert r.out.startswith("::warning file=")


def test_max_errors(logs: Path, cli: Cli) -> None:
    r = cli("--max-errors", "2", "logs")
    assert r.code == 1
    lines = r.out.splitlines()
    assert [ln for ln in lines if ": OBS" in ln] == lines[:2]
    assert "checked 8 lines in 2 file(s): 4 valid, 4 invalid, 0 warning(s)" in lines
    assert lines[-1] == (
        "(more violations were found than --max-errors allows; counts are complete)"
    )
    doc = json.loads(cli("--format", "json", "--max-errors", "1", "logs").out)
    assert len(doc["violations"]) == 1 and doc["summary"]["truncated"] is True
    assert doc["summary"]["invalid"] == 4


def test_output_file_gets_report_and_summary_goes_to_stderr(logs: Path, cli: Cli) -> None:
    r = cli("--format", "junit", "--output", "report.xml", "logs")
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("checked 8 lines")
    ET.parse("report.xml")
    r = cli("--output", "report.txt", "logs")
    text = Path("report.txt").read_text(encoding="utf-8")
    assert text.startswith(f"{CHECKOUT}:2:52: OBS003") and "checked 8 lines" in text


def test_directories_are_walked_recursively_with_default_globs(logs: Path, cli: Cli) -> None:
    sub = logs / "2024" / "05"
    sub.mkdir(parents=True)
    (sub / "old.log.gz").write_bytes(gzip.compress(jl(level="bad").encode()))
    (sub / "notes.txt").write_text("not a log\n")
    (sub / "app.jsonl").write_text(jl())
    doc = json.loads(cli("--format", "json", "logs").out)
    paths = {v["path"] for v in doc["violations"]}
    assert paths == {CHECKOUT, str(sub / "old.log.gz").replace(str(logs.parent) + "/", "")}
    assert doc["summary"]["files"] == 4  # checkout, payments, app.jsonl, old.log.gz


def test_glob_selects_files(logs: Path, cli: Cli) -> None:
    (logs / "x.txt").write_text(jl(level="nope"))
    r = cli("--glob", "pay*.log", "logs")
    assert r.code == 0 and "checked 3 lines in 1 file(s)" in r.out
    r = cli("--glob", "*.txt", "--glob", "pay*", "logs")
    assert r.code == 1 and "in 2 file(s)" in r.out and "x.txt:1:" in r.out


def test_allow_blank(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "a.log").write_text(jl() + "\n   \n" + jl())
    r = cli(str(tmp_path / "a.log"))
    assert r.code == 1 and ":2:1: OBS012: blank line" in r.out and ":3:1: OBS012" in r.out
    assert cli("--allow-blank", str(tmp_path / "a.log")).code == 0


def test_max_line_bytes_option(tmp_path: Path, cli: Cli) -> None:
    raw = jl(message="x" * 500)
    (tmp_path / "a.log").write_text(raw)
    assert cli(str(tmp_path / "a.log")).code == 0
    r = cli("--max-line-bytes", "300", str(tmp_path / "a.log"))
    assert r.code == 1
    assert f"OBS011: line is {len(raw) - 1} bytes, more than the maximum 300" in r.out


def test_policy_from_obskit_toml(logs: Path, cli: Cli) -> None:
    (logs.parent / "obskit.toml").write_text(
        'required_fields = ["env"]\nallowed_services = ["checkout-api"]\n'
        "[trace_coverage]\nmin_fraction = 0.9\nmin_level = 'INFO'\n"
    )
    (logs / "payments.log").write_text(jl(env="prod", service="payments") + jl(env="prod"))
    (logs / "checkout.log").write_text(jl(env="prod", drop=["trace_id", "span_id"]) + jl())
    r = cli("logs")
    assert r.code == 1
    out = r.out.splitlines()
    assert f"{CHECKOUT}:2:1: OBS020 env: required by policy but missing" in out
    assert any("OBS021 service: 'payments' is not in the allowed services" in ln for ln in out)
    # Coverage counts valid lines only: 1 of the 2 valid lines carries trace_id.
    assert out[-1] == (
        "policy: OBS022 trace_id: 50.0% of 2 lines at INFO or above carry trace_id; "
        "the policy asks for at least 90.0%"
    )


def test_trace_coverage_met_and_level_floor(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "obskit.toml").write_text(
        "[trace_coverage]\nmin_fraction = 1.0\nmin_level = 'WARN'\n"
    )
    (tmp_path / "a.log").write_text(
        jl(level="DEBUG", drop=["trace_id", "span_id"]) + jl(level="ERROR")
    )
    r = cli(str(tmp_path / "a.log"))
    assert r.code == 0, r.out
    (tmp_path / "a.log").write_text(jl(level="WARN", trace_id=None, span_id=None))
    r = cli("--format", "json", str(tmp_path / "a.log"))
    assert r.code == 1
    assert json.loads(r.out)["policy_violations"][0]["rule"] == "OBS022"


def test_policy_in_pyproject_and_max_line_bytes(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.obskit]\nmax_line_bytes = 100\n")
    (tmp_path / "a.log").write_text(jl())
    r = cli("a.log")
    assert r.code == 1 and "OBS011" in r.out
    assert cli("--max-line-bytes", "1000", "a.log").code == 0  # the option wins


def test_bad_policy_is_usage_error(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.obskit]\nallow_blank = 'yes'\n")
    (tmp_path / "a.log").write_text(jl())
    r = cli("a.log")
    assert r.code == 2
    assert "[tool.obskit]: allow_blank must be true or false, got 'yes'" in r.err


def test_offending_values_shown_safely(tmp_path: Path, cli: Cli) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J" + "A" * 300
    (tmp_path / "a.log").write_text(jl(level=evil, message="secret-token-123"))
    raw = '{"timestamp":"x","service":"\x1b[31mevil\u202e","message":1,,}\n'
    (tmp_path / "b.log").write_text(raw)
    for fmt in ("text", "github", "json", "junit", "sarif"):
        r = cli("--format", fmt, str(tmp_path / "a.log"), str(tmp_path / "b.log"))
        assert r.code == 1
        assert "\x1b" not in r.out and "\x07" not in r.out and "\u202e" not in r.out, fmt
        assert "secret-token-123" not in r.out, fmt  # never the whole line
        assert "A" * 100 not in r.out, fmt  # truncated
    r = cli(str(tmp_path / "a.log"), str(tmp_path / "b.log"))
    assert "'\\x1b]0;pwned\\x07\\x1b[2JAAAA" in r.out and "…' is not one of" in r.out
    assert "\\u001b[31mevil\\u202e" in r.out  # the per-service summary, from an invalid line


def test_text_line_always_has_a_column(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "a.log").write_text(jl(drop=["message"]) + '{"message": "x\n')
    assert cli("a.log").out.splitlines()[:2] == [
        "a.log:1:1: OBS009 message: required field is missing",
        "a.log:2:1: OBS001: invalid JSON: unexpected end of line (unterminated string, object"
        " or array)",
    ]


def test_policy_violation_in_sarif_has_a_location_and_counts_in_junit(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "obskit.toml").write_text("[trace_coverage]\nmin_fraction = 0.5\n")
    (tmp_path / "a.log").write_text(jl(drop=["trace_id", "span_id"]))
    doc = json.loads(cli("--format", "sarif", "a.log").out)
    (res,) = doc["runs"][0]["results"]
    assert res["ruleId"] == "OBS022"
    loc = res["locations"][0]["physicalLocation"]  # GitHub rejects results without one
    assert loc == {"artifactLocation": {"uri": "a.log"}, "region": {"startLine": 1}}
    root = ET.fromstring(cli("--format", "junit", "a.log").out.encode())
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    assert root.find("testsuite[@name='policy']/testcase/failure") is not None


def test_file_names_with_control_characters_are_escaped(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a\x1b[2J.log").write_text(jl(level="x"))
    for fmt in ("text", "github"):
        r = cli("--format", fmt, "logs")
        assert r.code == 1
        assert "\x1b" not in r.out and "a\\u001b[2J.log" in r.out, fmt
