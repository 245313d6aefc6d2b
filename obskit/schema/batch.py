"""The batch fast path: accept whole windows of lines at C speed (msgspec's ``decode_lines``
plus one regex or builtin pass per rule), and hand any doubtful line to the precise path.

It never accepts a line that :func:`obskit.schema.precise.check_line` rejects: the property
tests in ``tests/schema/test_fast_path_agreement.py`` pin the two together.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import attrgetter, not_
from typing import Final

import msgspec
from msgspec import UNSET

from obskit.schema import rules
from obskit.schema.policy import Policy
from obskit.schema.precise import (
    BYTE_POS,
    DEFAULT_POLICY,
    ESCAPED_KEY,
    KEY_NEEDLES,
    RECORD_DEC,
    check_line,
)
from obskit.schema.record import Record
from obskit.schema.violation import Violation

_DECODERS: dict[tuple[str, ...], msgspec.json.Decoder[Record]] = {}


def _decoder_for(policy: Policy) -> msgspec.json.Decoder[Record]:
    # Policy-required keys become required Raw fields of a Record subclass, so their presence
    # at top level is checked in C by the decoder itself.
    # Schema fields are Record fields already (a second field of that name is an error).
    if not policy.required_fields:
        return RECORD_DEC
    key = tuple(k for k in policy.required_fields if k not in Record.__struct_fields__)
    if not key:
        # Plain Record, as check_line returns (a subclass would compare unequal).
        return RECORD_DEC
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
#: Service names already accepted under a policy: a handful per deployment, so the name
#: check runs once per name instead of once per window. Bounded against hostile input.
_GOOD_SERVICES: dict[Policy, set[str]] = {}
_GOOD_SERVICES_MAX: Final = 4096
#: Below this many lines a chunk is checked line by line.
_SMALL: Final = 2
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
        return self.records.count(None)


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
        pos = BYTE_POS.search(str(exc))
        return _line_of_byte(seg, int(pos.group(1))) if pos else None
    if len(recs) != n:
        # A blank line (skipped by decode_lines) or two objects on one line.
        for i, ln in enumerate(seg):
            if not ln.strip(b" \t\r"):
                return i
        return None
    keys, two, esc = _scan(blob)
    if two >= 0:
        return _line_of_byte(seg, two)
    if esc >= 0:
        return _line_of_byte(seg, esc)

    services = set(map(_GET_SERVICE, recs))
    good = _GOOD_SERVICES.get(policy)
    if good is None:  # not setdefault: that would build a throwaway set every window
        good = _GOOD_SERVICES[policy] = set()
    if not services <= good:
        for s in services - good:
            if not rules.SERVICE_RE.fullmatch(s) or not policy.service_allowed(s):
                return list(map(_GET_SERVICE, recs)).index(s)
        if len(good) > _GOOD_SERVICES_MAX:
            good.clear()
        good |= services

    if _check_records is not None:
        bad, no_trace, no_span = _check_records(recs, UNSET)
        if bad >= 0:
            return bad
    else:
        bad_or_none = _check_records_python(recs)
        if bad_or_none is not None:
            return bad_or_none
        no_trace = list(map(_GET_TRACE, recs)).count(UNSET)
        no_span = list(map(_GET_SPAN, recs)).count(UNSET)
    for name, get, missing in (("trace_id", _GET_TRACE, no_trace), ("span_id", _GET_SPAN, no_span)):
        if missing and name in policy.required_fields:
            return list(map(get, recs)).index(UNSET)  # required by policy but absent
    # Duplicate schema keys, by counting: every decoded key was spelled plainly (escaped keys
    # were ruled out above), so each present key occurs at least once in its line; equal totals
    # mean exactly once everywhere. A schema key's name inside a value only costs a detour.
    present = 6 * n - no_trace - no_span
    if (keys if keys >= 0 else len(_SCHEMA_KEYS.findall(blob))) != present:
        return _first(seg, _has_duplicate_needle)
    return recs


def _check_records_python(recs: list[Record | None]) -> int | None:
    """The pure Python twin of ``_scan.check_records``: the first record whose timestamp,
    trace_id or span_id the bulk patterns reject, or with a span but no trace."""
    if not recs:
        return None
    bad = _first_unmatched(_TS_BULK, "\n".join(map(_GET_TS, recs)) + "\n")
    if bad is not None:
        return bad
    tids = list(map(_GET_TRACE, recs))
    sids = list(map(_GET_SPAN, recs))
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
    return None


def _scan_python(blob: bytes) -> tuple[int, int, int]:
    """The pure Python twin of ``_scan.scan``; the key count (-1) is left for later, as it is
    only needed once every cheaper check has passed."""
    m2 = _TWO_OBJECTS.search(blob)
    m3 = ESCAPED_KEY.search(blob)
    return -1, m2.start() if m2 else -1, m3.start() if m3 else -1


_CheckRecords = Callable[[list[Record | None], object], tuple[int, int, int]]


def _load_kernel() -> tuple[Callable[[bytes], tuple[int, int, int]], _CheckRecords | None]:
    if os.environ.get("OBSKIT_PURE_PYTHON"):
        return _scan_python, None
    try:
        from obskit.schema import _scan as kernel  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # not built here (no C compiler): same verdicts, slower
        return _scan_python, None
    return kernel.scan, kernel.check_records


#: The C kernel when it was built, else the regexes (``_check_records`` is then ``None``).
_scan, _check_records = _load_kernel()


def _has_duplicate_needle(line: bytes) -> bool:
    return any(line.count(k) > 1 for k in KEY_NEEDLES.values())


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
