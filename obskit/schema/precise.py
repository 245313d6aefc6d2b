"""The precise path: check one line and explain every violation (rule id, field, column).

This is the reference implementation of schema v1 over a line; :mod:`obskit.schema.batch`
is a faster way to reach the same verdicts on whole chunks.
"""

from __future__ import annotations

import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Final

import msgspec

from obskit.schema import rules
from obskit.schema.policy import Policy
from obskit.schema.record import Record
from obskit.schema.violation import Violation

DEFAULT_POLICY: Final = Policy()
_BOM: Final = b"\xef\xbb\xbf"


class _Loose(msgspec.Struct, gc=False):
    """Schema fields as raw JSON, so each can be checked and explained on its own."""

    timestamp: msgspec.Raw = msgspec.Raw(b"")
    level: msgspec.Raw = msgspec.Raw(b"")
    service: msgspec.Raw = msgspec.Raw(b"")
    trace_id: msgspec.Raw = msgspec.Raw(b"")
    span_id: msgspec.Raw = msgspec.Raw(b"")
    message: msgspec.Raw = msgspec.Raw(b"")


_LOOSE_DEC: Final = msgspec.json.Decoder(_Loose)
_ANY_DEC: Final = msgspec.json.Decoder()
RECORD_DEC: Final = msgspec.json.Decoder(Record)
BYTE_POS: Final = re.compile(r"\(byte (\d+)\)")
_LONE_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# A \u escape inside an object key: the only way to spell a schema key twice differently.
ESCAPED_KEY: Final = re.compile(rb'\\u[0-9a-fA-F]{4}(?:[^"\\\n]|\\.)*"[ \t\r]*:')
KEY_NEEDLES: Final = {f: f'"{f}"'.encode() for f in rules.SCHEMA_FIELDS}


# --- the precise path -------------------------------------------------------------------------


def check_line(
    line: bytes, policy: Policy = DEFAULT_POLICY
) -> tuple[Record | None, list[Violation]]:
    """Validate one line (without its newline) and explain every violation.

    Returns the decoded :class:`Record` when the line has no error (warnings may still be
    listed), else ``None`` and the violations.
    """
    if len(line) > policy.max_line_bytes:
        return None, [
            Violation(
                rules.LINE_TOO_LONG,
                None,
                f"line is {len(line)} bytes, more than the maximum {policy.max_line_bytes}",
                1,
            )
        ]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.strip(b" \t\r"):
        if policy.allow_blank:
            return None, []
        return None, [Violation(rules.BLANK_LINE, None, "blank line", 1)]
    if line.startswith(_BOM):
        return None, [
            Violation(
                rules.JSON_INVALID,
                None,
                "UTF-8 byte-order mark in the middle of the file (files were concatenated?)",
                1,
            )
        ]
    if not line.isascii():
        # msgspec does not check UTF-8 inside values it skips; context fields count too.
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [_json_violation(line, exc)]
    if rules.too_deep(line):
        msg = f"JSON nested more than {rules.MAX_DEPTH} levels deep"
        return None, [Violation(rules.JSON_INVALID, None, msg, 1)]
    try:
        loose = _LOOSE_DEC.decode(line)
    except msgspec.ValidationError as exc:
        return None, [Violation(rules.NOT_OBJECT, None, _not_object_message(exc), 1)]
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return None, [_json_violation(line, exc)]

    fields: dict[str, object] = {}
    for name in rules.SCHEMA_FIELDS:
        raw: msgspec.Raw = getattr(loose, name)
        if len(raw):
            fields[name] = _ANY_DEC.decode(raw)
    violations = rules.check_fields(fields)
    for i, v in enumerate(violations):
        if v.field is not None and v.field in fields:
            violations[i] = msgspec.structs.replace(v, column=_value_column(line, v.field))

    if policy.warn_duplicate_keys or _suspect_duplicates(line, fields):
        violations.extend(_duplicate_key_violations(line, policy.warn_duplicate_keys))

    if not policy.is_default:
        violations.extend(_policy_violations(line, fields, policy))

    if any(v.severity == "error" for v in violations):
        return None, violations
    return RECORD_DEC.decode(line), violations


def validate_line(line: bytes, policy: Policy = DEFAULT_POLICY) -> list[Violation]:
    """Violations of schema v1 (and ``policy``) by one line; empty when the line is valid.

    ``line`` is the line's bytes without the newline (a trailing CR is accepted).
    """
    return check_line(line, policy)[1]


def _not_object_message(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    m = re.search(r"got `(\w+)`", text)
    got = m.group(1) if m else "another JSON value"
    return f"line is a JSON {got}, not an object"


def _json_violation(line: bytes, exc: Exception) -> Violation:
    if isinstance(exc, RecursionError):
        return Violation(rules.JSON_INVALID, None, "JSON nested too deeply", 1)
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as uexc:
        bad = line[uexc.start : uexc.start + 4]
        return Violation(
            rules.JSON_INVALID,
            None,
            f"invalid UTF-8 byte sequence {bad!r} at byte {uexc.start + 1}",
            uexc.start + 1,
        )
    m = _LONE_SURROGATE.search(line)
    if m is not None and _has_lone_surrogate(line):
        return Violation(
            rules.JSON_INVALID,
            None,
            f"lone UTF-16 surrogate escape {m.group().decode()} (not valid Unicode)",
            m.start() + 1,
        )
    text = str(exc)
    pos = BYTE_POS.search(text)
    col = int(pos.group(1)) + 1 if pos else None
    reason = BYTE_POS.sub("", text).strip()
    reason = reason.removeprefix("JSON is malformed: ")
    if "\x00" in line.decode("utf-8", "replace"):
        reason = "NUL byte in line" if col is None else f"{reason} (NUL byte in line)"
    if reason == "Input data was truncated":
        reason = "unexpected end of line (unterminated string, object or array)"
    return Violation(rules.JSON_INVALID, None, f"invalid JSON: {reason}", col)


def _has_lone_surrogate(line: bytes) -> bool:
    import json

    try:
        text = json.loads(line)
    except (ValueError, RecursionError):
        return False
    try:
        msgspec.json.encode(text)
    except (UnicodeEncodeError, TypeError, ValueError):
        return True
    return False


_KEY_AND_COLON: Final = re.compile(rb'"(?:[^"\\]|\\.)*"[ \t\r]*:[ \t\r]*')


def _value_column(line: bytes, name: str) -> int | None:
    # The value of the last top-level key of that name (the one decoders keep), never a
    # nested key that happens to share the name. A name that occurs once, plainly spelled,
    # can only be the top-level key the decoder found: no need to walk the line.
    needle = KEY_NEEDLES.get(name) or f'"{name}"'.encode()
    if line.count(needle) == 1 and not ESCAPED_KEY.search(line):
        m = _KEY_AND_COLON.match(line, line.index(needle))
        return m.end() + 1 if m else None
    cols = [col for key, col in top_level_keys(line) if key == name]
    if not cols:
        return None
    m = _KEY_AND_COLON.match(line, cols[-1] - 1)
    return m.end() + 1 if m else None


def _suspect_duplicates(line: bytes, fields: dict[str, object]) -> bool:
    if ESCAPED_KEY.search(line):
        return True
    return any(line.count(KEY_NEEDLES[f]) > 1 for f in fields)


def _duplicate_key_violations(line: bytes, all_keys: bool) -> list[Violation]:
    keys = top_level_keys(line)
    seen: dict[str, int] = {}
    out: list[Violation] = []
    for key, col in keys:
        if key in seen:
            if key in rules.SCHEMA_FIELDS:
                out.append(
                    Violation(
                        rules.DUPLICATE_SCHEMA_KEY,
                        key,
                        f"appears twice (first at column {seen[key]}); readers disagree on "
                        "which value wins",
                        col,
                    )
                )
            elif all_keys:
                out.append(
                    Violation(
                        rules.DUPLICATE_KEY,
                        key,
                        f"appears twice (first at column {seen[key]})",
                        col,
                        "warning",
                    )
                )
        else:
            seen[key] = col
    return out


_WS: Final = " \t\r\n"


def top_level_keys(line: bytes) -> list[tuple[str, int]]:
    """The keys of a JSON object line in order, decoded, with their 1-based byte columns.

    The line must already be known to be valid JSON (no error handling for malformed input).
    """
    text = line.decode("utf-8")
    # Map character index -> byte column lazily: only for the keys we return.
    out: list[tuple[str, int]] = []
    i = text.index("{") + 1
    n = len(text)
    while i < n:
        while text[i] in _WS:
            i += 1
        if text[i] == "}":
            break
        if text[i] == ",":
            i += 1
            continue
        start = i
        key, i = scanstring(text, i + 1)
        out.append((key, len(text[:start].encode("utf-8")) + 1))
        i = text.index(":", i) + 1
        i = _skip_value(text, i)
    return out


_SKIP_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],]')


def _skip_value(text: str, i: int) -> int:
    depth = 0
    for m in _SKIP_TOKEN.finditer(text, i):
        tok = m.group()
        if tok in "{[":
            depth += 1
        elif tok in "}]":
            if depth == 0:
                return m.start()
            depth -= 1
        elif tok == "," and depth == 0:
            return m.start()
    return len(text)


def _policy_violations(line: bytes, fields: dict[str, object], policy: Policy) -> list[Violation]:
    out: list[Violation] = []
    if policy.required_fields:
        present = {k for k, _ in top_level_keys(line)}
        for name in policy.required_fields:
            if name not in present:
                out.append(Violation(rules.POLICY_REQUIRED, name, "required by policy but missing"))
    service = fields.get("service")
    if (
        isinstance(service, str)
        and rules.SERVICE_RE.fullmatch(service)
        and not policy.service_allowed(service)
    ):
        out.append(
            Violation(
                rules.POLICY_SERVICE,
                "service",
                f"{service!r} is not in the allowed services",
                _value_column(line, "service"),
            )
        )
    return out
