"""Validate lines against schema v1: one precise path that explains every violation, and a
batch fast path that accepts whole chunks at C speed and hands anything doubtful to the precise
path. The fast path never accepts a line the precise path rejects (property-tested).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from json.decoder import scanstring  # type: ignore[attr-defined]
from operator import attrgetter, not_
from typing import Final

import msgspec
from msgspec import UNSET

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
_RECORD_DEC: Final = msgspec.json.Decoder(Record)
_BYTE_POS: Final = re.compile(r"\(byte (\d+)\)")
_LONE_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# A \u escape inside an object key: the only way to spell a schema key twice differently.
_ESCAPED_KEY: Final = re.compile(rb'\\u[0-9a-fA-F]{4}(?:[^"\\\n]|\\.)*"[ \t\r]*:')
_KEY_NEEDLES: Final = {f: f'"{f}"'.encode() for f in rules.SCHEMA_FIELDS}


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
    return _RECORD_DEC.decode(line), violations


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
    pos = _BYTE_POS.search(text)
    col = int(pos.group(1)) + 1 if pos else None
    reason = _BYTE_POS.sub("", text).strip()
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
    needle = _KEY_NEEDLES.get(name) or f'"{name}"'.encode()
    if line.count(needle) == 1 and not _ESCAPED_KEY.search(line):
        m = _KEY_AND_COLON.match(line, line.index(needle))
        return m.end() + 1 if m else None
    cols = [col for key, col in top_level_keys(line) if key == name]
    if not cols:
        return None
    m = _KEY_AND_COLON.match(line, cols[-1] - 1)
    return m.end() + 1 if m else None


def _suspect_duplicates(line: bytes, fields: dict[str, object]) -> bool:
    if _ESCAPED_KEY.search(line):
        return True
    return any(line.count(_KEY_NEEDLES[f]) > 1 for f in fields)


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


# --- the batch fast path ----------------------------------------------------------------------

_DECODERS: dict[tuple[str, ...], msgspec.json.Decoder[Record]] = {}


def _decoder_for(policy: Policy) -> msgspec.json.Decoder[Record]:
    # Policy-required keys become required Raw fields of a Record subclass, so their presence
    # at top level is checked in C by the decoder itself.
    # Schema fields are Record fields already (a second field of that name is an error).
    if not policy.required_fields:
        return _RECORD_DEC
    key = tuple(k for k in policy.required_fields if k not in Record.__struct_fields__)
    if not key:
        # Plain Record, as check_line returns (a subclass would compare unequal).
        return _RECORD_DEC
    dec = _DECODERS.get(key)
    if dec is None:
        extra = [f"_p{i}" for i in range(len(key))]
        typ = msgspec.defstruct(
            "PolicyRecord",
            [(name, msgspec.Raw) for name in extra],
            bases=(Record,),
            rename=dict(zip(extra, key, strict=True)),
            kw_only=True,
        )
        dec = _DECODERS[key] = msgspec.json.Decoder(typ)
    return dec


_SCHEMA_KEYS: Final = re.compile(rb'"(?:timestamp|level|service|trace_id|span_id|message)"')
_TWO_OBJECTS: Final = re.compile(rb"}[ \t\r]*{")
# Timestamps one per line, calendar included: the Gregorian leap-year rule is a regular
# language, so one C-level match settles a whole window. Leap seconds fall to the precise path.
_LEAP_YEAR: Final = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE: Final = (
    r"(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))|" + _LEAP_YEAR + r"-02-29)"
)
_TS_BULK: Final = re.compile(
    r"(?:" + _DATE + r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\n)*",
    re.ASCII,
)
_HEX32_BULK: Final = re.compile(r"(?:(?!0{32})[0-9a-f]{32}\n)*", re.ASCII)
_HEX16_BULK: Final = re.compile(r"(?:(?!0{16})[0-9a-f]{16}\n)*", re.ASCII)
_DEPTH_SCREEN: Final = 2 * rules.MAX_DEPTH + 1
_GET_TS: Final = attrgetter("timestamp")
_GET_SERVICE: Final = attrgetter("service")
_GET_TRACE: Final = attrgetter("trace_id")
_GET_SPAN: Final = attrgetter("span_id")
#: Below this many lines a chunk is checked line by line.
_SMALL: Final = 4
#: Lines tried in one bulk attempt.
_WINDOW: Final = 32


@dataclass
class ChunkResult:
    """What :func:`validate_chunk` found: one entry per line, in order.

    ``lines`` are the raw lines without ``\\n`` (a CRLF line keeps its ``\\r``); ``records[i]``
    is the decoded record of a valid line or ``None``; ``violations`` maps a line index to its
    violations (errors, and warnings of otherwise valid lines).
    """

    lines: list[bytes]
    records: list[Record | None]
    violations: dict[int, list[Violation]] = field(default_factory=dict)

    @property
    def invalid(self) -> int:
        """How many lines have at least one error."""
        return sum(1 for r in self.records if r is None)


def split_lines(chunk: bytes) -> list[bytes]:
    """Split a chunk of whole lines on LF; a final newline does not make an empty last line."""
    lines = chunk.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def validate_chunk(chunk: bytes, policy: Policy = DEFAULT_POLICY) -> ChunkResult:
    """Validate a chunk of complete lines (``\\n``-separated; the last may lack its newline).

    Equivalent to :func:`check_line` on each line, much faster on mostly valid input.
    """
    return validate_lines(split_lines(chunk), policy)


def validate_lines(lines: Sequence[bytes], policy: Policy = DEFAULT_POLICY) -> ChunkResult:
    """Validate a list of lines (without newlines); see :func:`validate_chunk`."""
    lines = list(lines)
    records: list[Record | None] = [None] * len(lines)
    result = ChunkResult(lines, records)
    if policy.warn_duplicate_keys or policy.allow_blank:
        # Both need a look at every line; no batch shortcut.
        _precise(lines, 0, len(lines), policy, result)
    else:
        # Small windows: a failed bulk attempt costs about one more pass over its window, and
        # larger windows buy nothing even on clean input (measured with callgrind).
        for lo in range(0, len(lines), _WINDOW):
            _batch(lines, lo, min(lo + _WINDOW, len(lines)), policy, result)
    return result


def _precise(lines: list[bytes], lo: int, hi: int, policy: Policy, out: ChunkResult) -> None:
    for i in range(lo, hi):
        rec, viol = check_line(lines[i], policy)
        out.records[i] = rec
        if viol:
            out.violations[i] = viol


def _batch(lines: list[bytes], lo: int, hi: int, policy: Policy, out: ChunkResult) -> None:
    # Divide and conquer: accept [lo, hi) whole when it passes every bulk check, otherwise
    # settle the suspected line precisely and recurse on both sides of it.
    while hi - lo > 0:
        if hi - lo <= _SMALL:
            _precise(lines, lo, hi, policy, out)
            return
        seg = lines[lo:hi]
        bad = _bulk_check(seg, policy)
        if isinstance(bad, list):
            out.records[lo:hi] = bad
            return
        j = lo + (bad if bad is not None else (hi - lo) // 2)
        if bad is None:
            _batch(lines, lo, j, policy, out)
            lo = j
            continue
        _batch(lines, lo, j, policy, out)
        _precise(lines, j, j + 1, policy, out)
        lo = j + 1


def _line_of_byte(seg: list[bytes], pos: int) -> int:
    return min(bisect_right(list(accumulate(len(ln) + 1 for ln in seg)), pos), len(seg) - 1)


def _first_unmatched(bulk: re.Pattern[str], joined: str) -> int | None:
    """Index of the first ``\\n``-terminated item of ``joined`` that ``bulk`` rejects."""
    m = bulk.match(joined)
    end = m.end() if m else 0
    return None if end == len(joined) else joined.count("\n", 0, end)


def _bulk_check(seg: list[bytes], policy: Policy) -> list[Record | None] | int | None:
    """Records for the whole segment if every line is valid, else the index of a suspect
    line (or ``None`` when no line can be singled out). Every step is one C-level pass over
    the window; Python-level loops run only once something is already known to be wrong."""
    n = len(seg)
    longest = max(map(len, seg))
    if longest > policy.max_line_bytes:
        return max(range(n), key=lambda i: len(seg[i]))
    if longest > _DEPTH_SCREEN:
        # Only a line with more than MAX_DEPTH openers and as many closers can nest too deep.
        for i, ln in enumerate(seg):
            if len(ln) > _DEPTH_SCREEN and rules.too_deep(ln):
                return i
    blob = b"\n".join(seg)
    if not blob.isascii():
        try:
            blob.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _line_of_byte(seg, exc.start)
    try:
        recs: list[Record | None] = list(_decoder_for(policy).decode_lines(blob))
    except msgspec.ValidationError as exc:
        m = re.search(r"\$\[(\d+)\]", str(exc))
        return min(int(m.group(1)), n - 1) if m else None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        pos = _BYTE_POS.search(str(exc))
        return _line_of_byte(seg, int(pos.group(1))) if pos else None
    if len(recs) != n:
        # A blank line (skipped by decode_lines) or two objects on one line.
        for i, ln in enumerate(seg):
            if not ln.strip(b" \t\r"):
                return i
        return None
    m2 = _TWO_OBJECTS.search(blob)
    if m2 is not None:
        return _line_of_byte(seg, m2.start())
    m3 = _ESCAPED_KEY.search(blob)
    if m3 is not None:
        return _line_of_byte(seg, m3.start())

    bad = _first_unmatched(_TS_BULK, "\n".join(map(_GET_TS, recs)) + "\n")
    if bad is not None:
        return bad

    services = set(map(_GET_SERVICE, recs))
    for s in services:
        if not rules.SERVICE_RE.fullmatch(s) or not policy.service_allowed(s):
            return list(map(_GET_SERVICE, recs)).index(s)

    tids = list(map(_GET_TRACE, recs))
    sids = list(map(_GET_SPAN, recs))
    for name, ids in (("trace_id", tids), ("span_id", sids)):
        if name in policy.required_fields and UNSET in ids:
            return ids.index(UNSET)  # required by policy but absent
    # Duplicate schema keys, by counting: every decoded key was spelled plainly (escaped keys
    # were ruled out above), so each present key occurs at least once in its line; equal totals
    # mean exactly once everywhere. A schema key's name inside a value only costs a detour.
    present = 6 * n - tids.count(UNSET) - sids.count(UNSET)
    if len(_SCHEMA_KEYS.findall(blob)) != present:
        return _first(seg, _has_duplicate_needle)
    for ids, bulk in ((tids, _HEX32_BULK), (sids, _HEX16_BULK)):
        if "" in ids:  # present but empty: invalid, and falsy, so filter() below would drop it
            return ids.index("")
        vals = list(filter(None, ids))
        if vals:
            bad = _first_unmatched(bulk, "\n".join(vals) + "\n")
            if bad is not None:
                return ids.index(vals[bad])
    if any(compress(sids, map(not_, tids))):
        return _first_index(list(zip(tids, sids, strict=True)), lambda ts: ts[1] and not ts[0])
    return recs


def _has_duplicate_needle(line: bytes) -> bool:
    return any(line.count(k) > 1 for k in _KEY_NEEDLES.values())


def _first(seg: list[bytes], pred: object) -> int | None:
    for i, ln in enumerate(seg):
        if pred(ln):  # type: ignore[operator]
            return i
    return None


def _first_index(values: list[object], pred: object) -> int | None:
    for i, v in enumerate(values):
        if pred(v):  # type: ignore[operator]
            return i
    return None
