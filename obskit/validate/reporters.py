"""Report formats for ``obskit validate``: text, json, junit, sarif, github."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Final

import msgspec

from obskit import __version__
from obskit._names import path_fields, safe_path
from obskit.schema import rules
from obskit.schema.stream import LineReport
from obskit.schema.violation import Violation
from obskit.validate.runner import RunResult

FORMATS = ("text", "json", "junit", "sarif", "github")


def text_line(path: str, rep: LineReport, v: Violation) -> str:
    """``path:line:column: OBS003 level: message``; column 1 when unknown, so that every
    line has the same shape for problem matchers and editors."""
    sev = "" if v.severity == "error" else " (warning)"
    return f"{safe_path(path)}:{rep.line}:{v.column or 1}: {v.format()}{sev}"


def _iter(res: RunResult) -> Iterator[tuple[str, LineReport, Violation]]:
    for fr in res.files:
        for rep in fr.reports:
            for v in rep.violations:
                yield fr.path, rep, v


def summary_lines(res: RunResult) -> list[str]:
    """The human summary printed after the violations."""
    t = res.total
    out = [
        f"checked {t.lines} lines in {res.file_count} file(s): {t.valid} valid, "
        f"{t.invalid} invalid, {t.warnings} warning(s)"
    ]
    for rule, n in sorted(t.by_rule.items()):
        out.append(f"  {rule} {n:>9}  {rules.RULES.get(rule, '')}")
    if t.by_service or t.invalid_by_service:
        out.append("  per service (valid / invalid):")
        for svc in sorted(set(t.by_service) | set(t.invalid_by_service)):
            out.append(f"    {svc:<32} {t.by_service[svc]:>9} / {t.invalid_by_service[svc]}")
    for v in res.policy_violations:
        out.append(f"policy: {v.format()}")
    if res.truncated:
        out.append("(more violations were found than --max-errors allows; counts are complete)")
    for fr in res.files:
        if fr.io_error:
            out.append(f"error: {fr.io_error}")
    return out


def render(res: RunResult, fmt: str) -> str:
    """The whole report in ``fmt`` (for text, the violations were streamed already)."""
    if fmt == "text":
        return "\n".join(summary_lines(res)) + "\n"
    if fmt == "github":
        return _github(res)
    if fmt == "json":
        return _json(res)
    if fmt == "junit":
        return _junit(res)
    if fmt == "sarif":
        return _sarif(res)
    raise ValueError(f"unknown format {fmt!r}")


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def _github(res: RunResult) -> str:
    out = []
    for path, rep, v in _iter(res):
        kind = "error" if v.severity == "error" else "warning"
        col = f",col={v.column}" if v.column else ""
        out.append(
            f"::{kind} file={_gh_escape(safe_path(path), True)},line={rep.line}{col},"
            f"title={v.rule}::{_gh_escape(v.format())}"
        )
    for v in res.policy_violations:
        out.append(f"::error title={v.rule}::{_gh_escape(v.format())}")
    for fr in res.files:
        if fr.io_error:
            out.append(f"::error::{_gh_escape(fr.io_error)}")
    out.extend(summary_lines(res))
    return "\n".join(out) + "\n"


def _json(res: RunResult) -> str:
    t = res.total
    doc = {
        "schema_version": rules.SCHEMA_VERSION,
        "summary": {
            "files": res.file_count,
            "lines": t.lines,
            "valid": t.valid,
            "invalid": t.invalid,
            "warnings": t.warnings,
            "by_rule": dict(sorted(t.by_rule.items())),
            "by_service": dict(sorted(t.by_service.items())),
            "invalid_by_service": dict(sorted(t.invalid_by_service.items())),
            "truncated": res.truncated,
        },
        "violations": [
            {
                **path_fields(path),
                "line": rep.line,
                "offset": rep.offset,
                "column": v.column,
                "rule": v.rule,
                "field": v.field,
                "severity": v.severity,
                "message": v.message,
            }
            for path, rep, v in _iter(res)
        ],
        "policy_violations": [
            {"rule": v.rule, "field": v.field, "message": v.message} for v in res.policy_violations
        ],
        "io_errors": [fr.io_error for fr in res.files if fr.io_error],
    }
    return msgspec.json.format(msgspec.json.encode(doc), indent=2).decode() + "\n"


# What XML 1.0 cannot hold at all, even escaped: shown as \uXXXX like other unprintables.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    """Text safe for an XML attribute or element (ElementTree escapes ``<&"`` itself)."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _junit(res: RunResult) -> str:
    import xml.etree.ElementTree as ET  # only this format needs it

    suites = ET.Element("testsuites", name="obskit validate")
    total_fail = 0
    for fr in res.files:
        s = fr.summary
        name = _xml(safe_path(fr.path))
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=name,
            tests="1",
            failures="1" if (s.invalid or s.file_error) else "0",
            errors="1" if fr.io_error else "0",
        )
        case = ET.SubElement(
            suite, "testcase", classname="obskit.validate", name=f"log schema v1: {name}"
        )
        if fr.io_error:
            ET.SubElement(case, "error", message=_xml(fr.io_error))
        elif s.invalid or s.file_error:
            total_fail += 1
            body = "\n".join(
                text_line(fr.path, rep, v) for rep in fr.reports for v in rep.violations
            )
            ET.SubElement(
                case,
                "failure",
                message=f"{s.invalid} of {s.lines} lines violate log schema v1",
                type="schema",
            ).text = _xml(body)
        ET.SubElement(case, "system-out").text = f"{s.lines} lines, {s.valid} valid"
    for v in res.policy_violations:
        suite = ET.SubElement(suites, "testsuite", name="policy", tests="1", failures="1")
        case = ET.SubElement(suite, "testcase", classname="obskit.policy", name=v.rule)
        ET.SubElement(case, "failure", message=_xml(v.format()), type="policy")
    suites.set("tests", str(len(res.files) + len(res.policy_violations)))
    suites.set("failures", str(total_fail + len(res.policy_violations)))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def sarif_uri(path: str) -> str:
    """A file name as a SARIF ``uri``: ``/`` separators, every byte outside the URI path
    characters percent-encoded (``#``, ``%``, spaces, non-ASCII, undecodable bytes: exact),
    an absolute path as a ``file:`` URI."""
    from urllib.parse import quote

    raw = os.fsencode(path).replace(b"\\", b"/")
    drive = re.match(rb"[A-Za-z]:/", raw)
    if drive or raw.startswith(b"/"):
        return "file://" + ("/" if drive else "") + quote(raw, safe="/:")
    # Relative: a ':' in the first segment would read as a scheme, so it is encoded too.
    return quote(raw, safe="/")


def _sarif(res: RunResult) -> str:
    rule_ids = sorted(rules.RULES)
    results = []
    for path, rep, v in _iter(res):
        region: dict[str, int] = {"startLine": rep.line}
        if v.column:
            region["startColumn"] = v.column
        results.append(
            {
                "ruleId": v.rule,
                "ruleIndex": rule_ids.index(v.rule),
                "level": "error" if v.severity == "error" else "warning",
                "message": {"text": v.format()},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": sarif_uri(path)},
                            "region": region,
                        }
                    }
                ],
            }
        )
    for v in res.policy_violations:
        policy_result: dict[str, object] = {
            "ruleId": v.rule,
            "ruleIndex": rule_ids.index(v.rule),
            "level": "error",
            "message": {"text": v.format()},
        }
        if res.files:
            # GitHub code scanning rejects a result without a location: a run-wide finding is
            # pinned to line 1 of the first input.
            first = sarif_uri(res.files[0].path)
            policy_result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": first},
                        "region": {"startLine": 1},
                    }
                }
            ]
        results.append(policy_result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "obskit validate",
                        "version": __version__,
                        "informationUri": "https://github.com/obskit/obskit/blob/main/docs/schema.md",
                        "rules": [
                            {
                                "id": rid,
                                "shortDescription": {"text": rules.RULES[rid]},
                                "helpUri": "https://github.com/obskit/obskit/blob/main/docs/"
                                f"schema.md#{rid.lower()}",
                            }
                            for rid in rule_ids
                        ],
                    }
                },
                "results": results,
                "invocations": [_invocation(res)],
            }
        ],
    }
    return msgspec.json.format(msgspec.json.encode(doc), indent=2).decode() + "\n"


def _invocation(res: RunResult) -> dict[str, object]:
    """The run itself: whether every input was read, and a notification per one that was not
    (SARIF results are about lines; an unreadable file has none)."""
    notes: list[dict[str, object]] = []
    for fr in res.files:
        if fr.io_error:
            notes.append(
                {
                    "level": "error",
                    "message": {"text": fr.io_error},
                    "locations": [
                        {"physicalLocation": {"artifactLocation": {"uri": sarif_uri(fr.path)}}}
                    ],
                }
            )
    return {"executionSuccessful": not notes, "toolExecutionNotifications": notes}
