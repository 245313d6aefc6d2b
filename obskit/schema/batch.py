"""The fast path: accept whole blocks of lines at C speed and hand any doubtful line to the
precise path (:func:`obskit.schema.precise.check_line`), which writes every message.

Two implementations decide what is doubtful, with the same verdicts:

- the C kernel (``obskit/schema/_scan.c``, built by ``pip install`` where a C compiler
  exists): one call per block, a strict JSON and schema v1 check of every line;
- the pure Python path, the reference and the fallback (no compiler, or
  ``OBSKIT_PURE_PYTHON=1``): windows of 32 lines decoded by msgspec's ``decode_lines`` and
  screened by one C-level pass per rule; a failed window is split around its suspect line.

Neither ever accepts a line that ``check_line`` rejects: the property tests in
``tests/schema/`` keep the kernel, the pure path and the precise path in agreement.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import attrgetter, not_
from typing import Any, Final

import msgspec
from msgspec import UNSET

from obskit._native import optional_extension
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

_RECORD_TYPES: dict[tuple[str, ...], type[Record]] = {}
_DECODERS: dict[tuple[str, ...], msgspec.json.Decoder[Any]] = {}
_OPTIONAL_DECODERS: dict[tuple[str, ...], msgspec.json.Decoder[Any]] = {}
_LEVEL_RANK: Final = {name: i for i, name in enumerate(rules.LEVELS)}
_GET_TS: Final = attrgetter("timestamp")
_GET_SERVICE: Final = attrgetter("service")
_GET_TRACE: Final = attrgetter("trace_id")
_GET_SPAN: Final = attrgetter("span_id")


def _record_type(key: tuple[str, ...]) -> type[Record]:
    # Policy-required keys become required Raw fields of a Record subclass, so their presence
    # at top level is checked in C by the decoder itself.
    if not key:
        # Plain Record, as check_line returns (a subclass would compare unequal).
        return Record
    typ = _RECORD_TYPES.get(key)
    if typ is None:
        extra = [f"_p{i}" for i in range(len(key))]
        made: Any = msgspec.defstruct(
            "PolicyRecord",
            [(name, msgspec.Raw) for name in extra],
            bases=(Record,),
            rename=dict(zip(extra, key, strict=True)),
            kw_only=True,
        )
        typ = _RECORD_TYPES[key] = made
    return typ


def _policy_key(policy: Policy) -> tuple[str, ...]:
    # Schema fields are Record fields already (a second field of that name is an error).
    return tuple(k for k in policy.required_fields if k not in Record.__struct_fields__)


def _decoder_for(policy: Policy) -> msgspec.json.Decoder[Any]:
    if not policy.required_fields:
        return RECORD_DEC
    key = _policy_key(policy)
    dec = _DECODERS.get(key)
    if dec is None:
        typ = _record_type(key)
        dec = _DECODERS[key] = RECORD_DEC if typ is Record else msgspec.json.Decoder(typ)
    return dec


def _optional_decoder_for(policy: Policy) -> msgspec.json.Decoder[Any]:
    """Like :func:`_decoder_for`, but a ``null`` line decodes to ``None``: the kernel path
    puts ``null`` in place of doubtful lines and decodes the block in one call."""
    key = _policy_key(policy)
    dec = _OPTIONAL_DECODERS.get(key)
    if dec is None:
        typ: Any = _record_type(key)
        dec = _OPTIONAL_DECODERS[key] = msgspec.json.Decoder(typ | None)
    return dec


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
    # The kernel reads the chunk itself: no join of the lines just split.
    end = len(chunk) - 1 if chunk.endswith(b"\n") else len(chunk)
    return _validate(split_lines(chunk), policy, chunk, end)


def validate_lines(lines: Sequence[bytes], policy: Policy = DEFAULT_POLICY) -> ChunkResult:
    """Validate a list of lines (without newlines); see :func:`validate_chunk`."""
    return _validate(list(lines), policy, None, 0)


def _validate(lines: list[bytes], policy: Policy, blob: bytes | None, end: int) -> ChunkResult:
    records: list[Record | None] = [None] * len(lines)
    result = ChunkResult(lines, records)
    if _needs_every_line(policy):
        _precise(lines, 0, len(lines), policy, result)
    elif not (lines and _kernel_lines(lines, policy, result, blob, end)):
        # Small windows: a failed bulk attempt costs about one more pass over its window, and
        # larger windows buy nothing even on clean input (measured with callgrind).
        for lo in range(0, len(lines), _WINDOW):
            _batch(lines, lo, min(lo + _WINDOW, len(lines)), policy, result)
    return result


def _needs_every_line(policy: Policy) -> bool:
    # OBS101 warnings need a look at every line's keys: no batch shortcut.
    return policy.warn_duplicate_keys


def _precise(lines: list[bytes], lo: int, hi: int, policy: Policy, out: ChunkResult) -> None:
    for i in range(lo, hi):
        rec, viol = check_line(lines[i], policy)
        out.records[i] = rec
        if viol:
            out.violations[i] = viol


# --- blocks of a stream -----------------------------------------------------------------------


@dataclass
class BlockResult:
    """What :func:`check_block` found in one block of a stream.

    ``flagged`` lists the lines with violations, in order, as ``(index, start, raw line,
    record or None, violations)``; ``start`` is the line's byte position in the block.
    """

    lines: int
    valid: int
    by_service: dict[str, int]
    trace_eligible: int
    trace_carrying: int
    flagged: list[tuple[int, int, bytes, Record | None, list[Violation]]]


def check_block(data: bytes, end: int, policy: Policy, trace_floor: int = -1) -> BlockResult:
    """Validate the lines of ``data[:end]`` (split at every ``\\n``; ``end`` is the length of
    ``data`` or the position of a ``\\n``), counting per service and, when ``trace_floor`` is
    a level rank (0-3), the trace coverage of lines at or above it.

    Unlike :func:`validate_lines` this builds no record for the valid lines: it is what
    :func:`obskit.schema.stream.validate_stream` needs, one call per block.
    """
    if _kernel is not None and _kernel_fits(policy):
        return _kernel_block(data, end, policy, trace_floor)
    lines = data[:end].split(b"\n")
    res = validate_lines(lines, policy)
    valid = list(filter(None, res.records))
    eligible = carrying = 0
    if trace_floor >= 0:
        for rec in valid:
            if _LEVEL_RANK[rec.level] >= trace_floor:
                eligible += 1
                carrying += bool(rec.trace_id)
    flagged = []
    start, prev = 0, 0
    for i, viol in sorted(res.violations.items()):
        # Byte positions only for the reported lines, summed in C between them.
        start += sum(map(len, lines[prev:i])) + (i - prev)
        prev = i
        flagged.append((i, start, lines[i], res.records[i], viol))
    by_service = Counter(map(_GET_SERVICE, valid))
    return BlockResult(len(lines), len(valid), by_service, eligible, carrying, flagged)


# --- the C kernel -----------------------------------------------------------------------------

_KernelResult = tuple[int, int, list[tuple[int, int, int]], dict[str, int], int, int]
_Kernel = Callable[[bytes, int, tuple[object, ...]], _KernelResult]
#: Service-name verdicts of ``Policy.allowed_services``, asked once per name; bounded against
#: hostile input (one name per line).
_SERVICE_CACHE_MAX: Final = 4096
_CONFIGS: dict[tuple[Policy, int], tuple[object, ...]] = {}


_scan = optional_extension("obskit.schema._scan")
#: The C kernel's ``check_block`` when it was built, else ``None`` (the pure Python path).
_kernel: _Kernel | None = _scan.check_block if _scan is not None else None


def _kernel_fits(policy: Policy) -> bool:
    return not _needs_every_line(policy) and len(policy.required_fields) <= 63


def _kernel_config(policy: Policy, trace_floor: int) -> tuple[object, ...]:
    cfg = _CONFIGS.get((policy, trace_floor))
    if cfg is None:
        check = policy.service_allowed if policy.allowed_services else None
        cfg = (
            policy.max_line_bytes,
            rules.MAX_DEPTH,
            tuple(k.encode("utf-8") for k in policy.required_fields),
            trace_floor,
            check,
            {},
        )
        if len(_CONFIGS) > 64:
            _CONFIGS.clear()
        _CONFIGS[policy, trace_floor] = cfg
    cache = cfg[5]
    assert isinstance(cache, dict)
    if len(cache) > _SERVICE_CACHE_MAX:
        cache.clear()
    return cfg


def _kernel_lines(
    lines: list[bytes], policy: Policy, out: ChunkResult, blob: bytes | None, end: int
) -> bool:
    """Fill ``out`` through the kernel; ``False`` when it cannot be used for these lines.
    ``blob[:end]`` holds the lines joined by newlines, when the caller has it."""
    if _kernel is None or not _kernel_fits(policy):
        return False
    if blob is None:
        blob = b"\n".join(lines)
        end = len(blob)
    n, _, doubtful, _, _, _ = _kernel(blob, end, _kernel_config(policy, -1))
    if n != len(lines):
        return False  # a "line" with a newline inside: the windows sort it out
    if doubtful:
        # Each doubtful line becomes null, so the valid ones decode in one call, in place.
        pieces: list[bytes] = []
        pos = 0
        for _, start, stop in doubtful:
            pieces += (blob[pos:start], b"null")
            pos = stop
        pieces.append(blob[pos:end])
        blob = b"".join(pieces)
    elif blob[end:] not in (b"", b"\n"):  # decode_lines skips a final newline itself
        blob = blob[:end]
    try:
        recs = _optional_decoder_for(policy).decode_lines(blob)
    except (msgspec.DecodeError, RecursionError):  # pragma: no cover - kernel and msgspec
        return False  # disagree: never seen in the property tests; the windows decide
    if len(recs) != n:  # pragma: no cover - same
        return False
    out.records[:] = recs
    for i, _, _ in doubtful:
        _precise(lines, i, i + 1, policy, out)
    return True


def _kernel_block(data: bytes, end: int, policy: Policy, trace_floor: int) -> BlockResult:
    assert _kernel is not None
    n, valid, doubtful, services, eligible, carrying = _kernel(
        data, end, _kernel_config(policy, trace_floor)
    )
    flagged = []
    for i, start, stop in doubtful:
        raw = data[start:stop]
        rec, viol = check_line(raw, policy)
        if rec is not None:  # only doubtful: a leap second, an escape, ...
            valid += 1
            services[rec.service] = services.get(rec.service, 0) + 1
            if trace_floor >= 0 and _LEVEL_RANK[rec.level] >= trace_floor:
                eligible += 1
                carrying += bool(rec.trace_id)
        if viol:
            flagged.append((i, start, raw, rec, viol))
    return BlockResult(n, valid, services, eligible, carrying, flagged)


# --- the pure Python path: windows and screens ------------------------------------------------

#: Below this many lines a segment is checked line by line.
_SMALL: Final = 2
#: Lines tried in one bulk attempt.
_WINDOW: Final = 32


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


class _Window:
    """One segment under bulk check, and what the screens learn about it on the way."""

    def __init__(self, seg: list[bytes], policy: Policy) -> None:
        self.seg = seg
        self.policy = policy
        self.blob = b"\n".join(seg)
        self.recs: list[Record | None] = []
        self.no_trace = 0  # records without trace_id / span_id (absent, not null)
        self.no_span = 0

    def line_of_byte(self, pos: int) -> int:
        ends = accumulate(len(ln) + 1 for ln in self.seg)
        return min(bisect_right(list(ends), pos), len(self.seg) - 1)


#: A screen returns ``None`` when the window passes it, else the index of a suspect line, or
#: ``_NO_SUSPECT`` when something is wrong but no single line can be named (then the window
#: is halved). Each is one C-level pass over the window; Python-level loops run only once
#: something is already known to be wrong.
_Screen = Callable[[_Window], "int | None"]
_NO_SUSPECT: Final = -1
_DEPTH_SCREEN: Final = 2 * rules.MAX_DEPTH + 1


def _too_long(w: _Window) -> int | None:
    longest = max(map(len, w.seg))
    if longest > w.policy.max_line_bytes:
        return max(range(len(w.seg)), key=lambda i: len(w.seg[i]))
    return None


def _too_deep(w: _Window) -> int | None:
    if max(map(len, w.seg)) <= _DEPTH_SCREEN:
        return None
    # Only a line with more than MAX_DEPTH openers and as many closers can nest too deep.
    for i, ln in enumerate(w.seg):
        if len(ln) > _DEPTH_SCREEN and rules.too_deep(ln):
            return i
    return None


def _bad_utf8(w: _Window) -> int | None:
    if w.blob.isascii():
        return None
    try:
        w.blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        return w.line_of_byte(exc.start)
    return None


def _decode(w: _Window) -> int | None:
    """Decode every line into a record (msgspec checks JSON and the field types in C)."""
    try:
        w.recs = list(_decoder_for(w.policy).decode_lines(w.blob))
    except msgspec.ValidationError as exc:
        m = re.search(r"\$\[(\d+)\]", str(exc))
        return min(int(m.group(1)), len(w.seg) - 1) if m else _NO_SUSPECT
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        pos = BYTE_POS.search(str(exc))
        return w.line_of_byte(int(pos.group(1))) if pos else _NO_SUSPECT
    return None


def _one_object_per_line(w: _Window) -> int | None:
    if len(w.recs) != len(w.seg):
        # A blank line (skipped by decode_lines) or two objects on one line.
        for i, ln in enumerate(w.seg):
            if not ln.strip(b" \t\r"):
                return i
        return _NO_SUSPECT
    return None


_TWO_OBJECTS: Final = re.compile(rb"}[ \t\r]*{")


def _two_objects_or_escaped_key(w: _Window) -> int | None:
    # Two objects on one line can hide behind a blank line in the count above; an escaped
    # key can spell a schema key a second time.
    for pattern in (_TWO_OBJECTS, ESCAPED_KEY):
        m = pattern.search(w.blob)
        if m is not None:
            return w.line_of_byte(m.start())
    return None


#: Service names already accepted under a policy: a handful per deployment, so the name
#: check runs once per name instead of once per window. Bounded against hostile input.
_GOOD_SERVICES: dict[Policy, set[str]] = {}
_GOOD_SERVICES_MAX: Final = 4096


def _service_names(w: _Window) -> int | None:
    services = set(map(_GET_SERVICE, w.recs))
    good = _GOOD_SERVICES.get(w.policy)
    if good is None:  # not setdefault: that would build a throwaway set every window
        good = _GOOD_SERVICES[w.policy] = set()
    if services <= good:
        return None
    for s in services - good:
        if not rules.SERVICE_RE.fullmatch(s) or not w.policy.service_allowed(s):
            return list(map(_GET_SERVICE, w.recs)).index(s)
    if len(good) > _GOOD_SERVICES_MAX:
        good.clear()
    good |= services
    return None


# Timestamps one per line, calendar included: one C-level match settles a whole window. Leap
# seconds fall to the precise path.
_TS_BULK: Final = re.compile(r"(?:" + rules.CALENDAR_TIMESTAMP + r"\n)*", re.ASCII)
_HEX32_BULK: Final = re.compile(r"(?:(?!0{32})[0-9a-f]{32}\n)*", re.ASCII)
_HEX16_BULK: Final = re.compile(r"(?:(?!0{16})[0-9a-f]{16}\n)*", re.ASCII)


def _first_unmatched(bulk: re.Pattern[str], joined: str) -> int | None:
    """Index of the first ``\\n``-terminated item of ``joined`` that ``bulk`` rejects."""
    m = bulk.match(joined)
    end = m.end() if m else 0
    return None if end == len(joined) else joined.count("\n", 0, end)


def _timestamps(w: _Window) -> int | None:
    return _first_unmatched(_TS_BULK, "\n".join(map(_GET_TS, w.recs)) + "\n")


def _trace_and_span_ids(w: _Window) -> int | None:
    tids = list(map(_GET_TRACE, w.recs))
    sids = list(map(_GET_SPAN, w.recs))
    for ids, bulk in ((tids, _HEX32_BULK), (sids, _HEX16_BULK)):
        if "" in ids:  # present but empty: invalid, and falsy, so filter() below would drop it
            return ids.index("")
        vals = list(filter(None, ids))
        if vals:
            bad = _first_unmatched(bulk, "\n".join(vals) + "\n")
            if bad is not None:
                return ids.index(vals[bad])
    if any(compress(sids, map(not_, tids))):  # a span without a trace
        return next(i for i, (t, s) in enumerate(zip(tids, sids, strict=True)) if s and not t)
    w.no_trace = tids.count(UNSET)
    w.no_span = sids.count(UNSET)
    return None


def _policy_required_ids(w: _Window) -> int | None:
    for name, get, missing in (
        ("trace_id", _GET_TRACE, w.no_trace),
        ("span_id", _GET_SPAN, w.no_span),
    ):
        if missing and name in w.policy.required_fields:
            return list(map(get, w.recs)).index(UNSET)  # required by policy but absent
    return None


_SCHEMA_KEYS: Final = re.compile(rb'"(?:timestamp|level|service|trace_id|span_id|message)"')


def _duplicate_schema_keys(w: _Window) -> int | None:
    # By counting: every decoded key was spelled plainly (escaped keys were ruled out above),
    # so each present key occurs at least once in its line; equal totals mean exactly once
    # everywhere. A schema key's name inside a value only costs a detour.
    present = 6 * len(w.seg) - w.no_trace - w.no_span
    if len(_SCHEMA_KEYS.findall(w.blob)) == present:
        return None
    for i, ln in enumerate(w.seg):
        if any(ln.count(k) > 1 for k in KEY_NEEDLES.values()):
            return i
    return _NO_SUSPECT


#: In order: the cheap byte-level screens, the decode, then the checks of decoded records.
_SCREENS: Final[tuple[_Screen, ...]] = (
    _too_long,
    _too_deep,
    _bad_utf8,
    _decode,
    _one_object_per_line,
    _two_objects_or_escaped_key,
    _service_names,
    _timestamps,
    _trace_and_span_ids,
    _policy_required_ids,
    _duplicate_schema_keys,
)


def _bulk_check(seg: list[bytes], policy: Policy) -> list[Record | None] | int | None:
    """Records for the whole segment if every line is valid, else the index of a suspect
    line (or ``None`` when no line can be singled out)."""
    w = _Window(seg, policy)
    for screen in _SCREENS:
        bad = screen(w)
        if bad is not None:
            return None if bad == _NO_SUSPECT else bad
    return w.recs
