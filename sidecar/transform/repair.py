"""Safe, documented repairs of invalid lines; everything else stays byte for byte.

Only these are repaired (each is unambiguous and loses nothing):

- ``OBS003`` a ``level`` that is a known alias or in the wrong case: ``WARNING`` -> ``WARN``,
  ``CRITICAL``/``FATAL``/``ERR`` -> ``ERROR``, ``TRACE`` -> ``DEBUG``, ``info`` -> ``INFO``;
- ``OBS006``/``OBS007`` an upper-case hex ``trace_id``/``span_id`` -> lower case;
- ``OBS009`` a missing ``service`` -> ``schema.service_default`` from the config.

The line is edited in place: the value of the top-level key is replaced, or ``"service"`` is
inserted right after ``{``; other keys, their order, spacing and duplicates are untouched, so
no key is ever duplicated or lost. The result is checked again with ``check_line``.
"""

from __future__ import annotations

import json
import re
from typing import Final

from obskit.schema import LEVELS, Policy, Record, Violation, check_line
from obskit.schema import rules as R

REPAIRABLE_RULES: Final = frozenset({R.LEVEL, R.TRACE_ID, R.SPAN_ID, R.MISSING})
_HEX: Final = {"trace_id": re.compile(r"[0-9a-f]{32}"), "span_id": re.compile(r"[0-9a-f]{16}")}
_DECODER: Final = json.JSONDecoder()
_WS: Final = " \t\r\n"


def _spans(text: str) -> dict[str, tuple[int, int, object]]:
    """Top-level keys -> (value start, value end, decoded value); first occurrence wins."""
    out: dict[str, tuple[int, int, object]] = {}
    i = text.index("{") + 1
    n = len(text)
    while i < n:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n or text[i] == "}":
            break
        if text[i] == ",":
            i += 1
            continue
        key, i = _DECODER.raw_decode(text, i)
        i = text.index(":", i) + 1
        while text[i] in _WS:
            i += 1
        value, end = _DECODER.raw_decode(text, i)
        if isinstance(key, str):
            out.setdefault(key, (i, end, value))
        i = end
    return out


def fix_level(value: object) -> str | None:
    """The allowed level ``value`` unambiguously means, or ``None``."""
    if not isinstance(value, str):
        return None
    up = value.strip().upper()
    if up in LEVELS:
        return up
    return R.LEVEL_ALIASES.get(up)


def repair_line(
    line: bytes, violations: list[Violation], service_default: str | None, policy: Policy
) -> tuple[bytes, Record, list[str]] | None:
    """The repaired line, its record and the rules fixed; ``None`` when any error is not
    safely repairable (the caller quarantines the line with the original violations)."""
    errors = [v for v in violations if v.severity == "error"]
    if not errors or any(v.rule not in REPAIRABLE_RULES for v in errors):
        return None
    try:
        text = line.decode("utf-8")
        spans = _spans(text)
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    edits: list[tuple[int, int, str]] = []
    fixed: list[str] = []
    for v in errors:
        if v.rule == R.LEVEL and v.field == "level" and "level" in spans:
            s, e, val = spans["level"]
            new = fix_level(val)
            if new is None:
                return None
            edits.append((s, e, json.dumps(new)))
        elif v.rule in (R.TRACE_ID, R.SPAN_ID) and v.field in _HEX and v.field in spans:
            s, e, val = spans[v.field]
            if not isinstance(val, str) or not _HEX[v.field].fullmatch(val.lower()):
                return None
            edits.append((s, e, json.dumps(val.lower())))
        elif v.rule == R.MISSING and v.field == "service" and service_default:
            pos = text.index("{") + 1
            edits.append((pos, pos, f'"service":{json.dumps(service_default)},'))
        else:
            return None
        fixed.append(v.rule)
    for s, e, new in sorted(edits, reverse=True):
        text = text[:s] + new + text[e:]
    out = text.encode("utf-8")
    record, _again = check_line(out, policy)
    if record is None:
        return None
    return out, record, fixed
