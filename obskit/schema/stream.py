"""Validate a whole stream (file, stdin, gzip) in bounded memory, line numbers included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import BinaryIO

from obskit.schema import rules
from obskit.schema.batch import validate_lines
from obskit.schema.encoding import Encoding, RefusedEncoding, utf8_blocks
from obskit.schema.hints import Hinter
from obskit.schema.policy import Policy
from obskit.schema.precise import DEFAULT_POLICY
from obskit.schema.record import Record
from obskit.schema.violation import Violation

#: How much is read at once; lines are cut at the last newline of each block.
BLOCK = 1 << 20
_SERVICE_OF = attrgetter("service")
_LEVEL_RANK = {name: i for i, name in enumerate(rules.LEVELS)}


@dataclass
class LineReport:
    """The violations of one line: 1-based ``line`` number and byte ``offset`` of its start."""

    line: int
    offset: int
    violations: list[Violation]


@dataclass
class StreamSummary:
    """Counts over a validated stream, filled in while :func:`validate_stream` runs."""

    lines: int = 0
    valid: int = 0
    invalid: int = 0
    warnings: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_service: Counter[str] = field(default_factory=Counter)
    invalid_by_service: Counter[str] = field(default_factory=Counter)
    #: Lines at or above the policy's trace level, and how many of them carry trace_id.
    trace_eligible: int = 0
    trace_carrying: int = 0
    file_error: Violation | None = None

    def merge(self, other: StreamSummary) -> None:
        """Add another summary's counts into this one (for multi-file runs)."""
        self.lines += other.lines
        self.valid += other.valid
        self.invalid += other.invalid
        self.warnings += other.warnings
        self.by_rule.update(other.by_rule)
        self.by_service.update(other.by_service)
        self.invalid_by_service.update(other.invalid_by_service)
        self.trace_eligible += other.trace_eligible
        self.trace_carrying += other.trace_carrying


def _blocks(stream: BinaryIO, accept_utf16: bool, summary: StreamSummary) -> Iterator[bytes]:
    try:
        yield from utf8_blocks(stream, BLOCK, accept_utf16=accept_utf16)
    except RefusedEncoding as exc:
        summary.file_error = Violation(rules.UTF16_FILE, None, _refusal(exc.encoding), 1)


def _refusal(enc: Encoding) -> str:
    if enc is Encoding.UTF32:
        return "file is UTF-32 encoded; re-save it as UTF-8"
    return (
        f"file is {enc.value.upper()} (Windows PowerShell 5 writes this with '>' and "
        "Out-File); write UTF-8 instead (Out-File -Encoding utf8, or PowerShell 7), "
        "or pass --accept-utf16"
    )


def validate_stream(
    stream: BinaryIO,
    policy: Policy = DEFAULT_POLICY,
    *,
    summary: StreamSummary | None = None,
    accept_utf16: bool = False,
    dialect: str | None = None,
    path: str = "",
) -> Iterator[LineReport]:
    """Yield a :class:`LineReport` for every line with violations, streaming.

    Memory stays bounded whatever the file size: blocks are read, cut at the last newline, and
    an over-long line is counted and skipped without being kept. Pass ``summary`` to collect
    counts; a file-level problem (UTF-16 without ``accept_utf16``) is reported as a single
    report on line 1 and ``summary.file_error``. Lines that look like a JSON dialect or crash
    output get a hint (:class:`~obskit.schema.hints.Hinter`; ``dialect`` and ``path`` as there).
    """
    summary = summary if summary is not None else StreamSummary()
    max_len = policy.max_line_bytes
    line_no = 1
    offset = 0
    carry = b""
    skipping = 0  # > 0 while inside an over-long line: its length so far
    trace_floor = _LEVEL_RANK[policy.trace_min_level]
    count_trace = policy.trace_min_fraction > 0
    hinter = Hinter(dialect, path, policy)

    def run(lines: list[bytes]) -> Iterator[LineReport]:
        nonlocal line_no, offset
        res = validate_lines(lines, policy)
        summary.lines += len(lines)
        # Counter.update over an iterable counts in C: no Python loop per line.
        summary.by_service.update(map(_SERVICE_OF, filter(None, res.records)))
        if count_trace:
            _count_trace(res.records, trace_floor, summary)
        # Byte offsets only for the reported lines, summed in C between them.
        start, prev = offset, 0
        for i, viol in sorted(res.violations.items()):
            start += sum(map(len, lines[prev:i])) + (i - prev)
            prev = i
            if res.records[i] is None:
                viol = hinter.annotate(lines[i], viol)
            yield _report(summary, res.records[i], lines[i], line_no + i, start, viol)
        summary.valid += len(lines) - res.invalid
        line_no += len(lines)
        offset += sum(map(len, lines)) + len(lines)

    for block in _blocks(stream, accept_utf16, summary):
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                skipping += len(block)
                continue
            skipping += nl
            yield _too_long(summary, line_no, offset, skipping, max_len)
            line_no += 1
            offset += skipping + 1
            skipping = 0
            block = block[nl + 1 :]
        data = carry + block if carry else block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
        else:
            yield from run(data[:cut].split(b"\n"))
            carry = data[cut + 1 :]
        if len(carry) > max_len:
            skipping = len(carry)
            carry = b""
    if summary.file_error is not None:
        yield LineReport(1, 0, [summary.file_error])
        return
    if skipping:
        yield _too_long(summary, line_no, offset, skipping, max_len)
    elif carry:
        yield from run([carry])


def _too_long(
    summary: StreamSummary, line_no: int, offset: int, length: int, max_len: int
) -> LineReport:
    v = Violation(
        rules.LINE_TOO_LONG, None, f"line is {length} bytes, more than the maximum {max_len}", 1
    )
    summary.lines += 1
    summary.invalid += 1
    summary.by_rule[v.rule] += 1
    return LineReport(line_no, offset, [v])


def _report(
    summary: StreamSummary,
    rec: Record | None,
    raw: bytes,
    line_no: int,
    offset: int,
    viol: list[Violation],
) -> LineReport:
    if rec is None:
        summary.invalid += 1
        summary.invalid_by_service[_service_of(raw)] += 1
    for v in viol:
        summary.by_rule[v.rule] += 1
        if v.severity != "error":
            summary.warnings += 1
    return LineReport(line_no, offset, viol)


def _service_of(raw: bytes) -> str:
    import re

    m = re.search(rb'"service"\s*:\s*"([^"\\]{1,63})"', raw)
    if m is None:
        return "?"
    # Taken from an invalid line: may hold raw control or bidi characters, and the summary
    # prints it on a terminal. Escape them like offending values.
    name = m.group(1).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name)


def _count_trace(records: list[Record | None], floor: int, summary: StreamSummary) -> None:
    for rec in records:
        if rec is not None and _LEVEL_RANK[rec.level] >= floor:
            summary.trace_eligible += 1
            if rec.trace_id:
                summary.trace_carrying += 1
