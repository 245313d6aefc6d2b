"""Validate a whole stream (file, stdin, gzip) in bounded memory, line numbers included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from obskit.schema import rules
from obskit.schema.batch import check_block
from obskit.schema.encoding import Encoding, RefusedEncoding, utf8_blocks
from obskit.schema.policy import Policy
from obskit.schema.precise import DEFAULT_POLICY
from obskit.schema.record import Record
from obskit.schema.violation import Violation

#: How much is read at once; lines are cut at the last newline of each block.
BLOCK = 1 << 20
_LEVEL_RANK = {name: i for i, name in enumerate(rules.LEVELS)}


#: Longest line kept in a report for its hint (:class:`~obskit.schema.hints.Hinter`).
HINT_MAX_BYTES = 64 * 1024


@dataclass
class LineReport:
    """The violations of one line: 1-based ``line`` number and byte ``offset`` of its start;
    ``raw``: the line itself when it is not a schema v1 record at all (up to
    :data:`HINT_MAX_BYTES`), so a hint can be added where the reports are put in order."""

    line: int
    offset: int
    violations: list[Violation]
    raw: bytes | None = None


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
    hints: bool = True,
) -> Iterator[LineReport]:
    """Yield a :class:`LineReport` for every line with violations, streaming.

    Memory stays bounded whatever the file size: blocks are read, cut at the last newline, and
    an over-long line is counted and skipped without being kept. Pass ``summary`` to collect
    counts; a file-level problem (UTF-16 without ``accept_utf16``) is reported as a single
    report on line 1 and ``summary.file_error``. Lines that look like a JSON dialect or crash
    output get a hint (:class:`~obskit.schema.hints.Hinter`; ``dialect`` and ``path`` as there)
    unless ``hints`` is off (``obskit validate -j`` adds them where it puts reports in order).
    """
    summary = summary if summary is not None else StreamSummary()
    reports = validate_blocks(_blocks(stream, accept_utf16, summary), policy, summary)
    if hints:
        from obskit.schema.hints import Hinter

        reports = Hinter(dialect, path, policy).annotate_all(reports)
    yield from reports
    if summary.file_error is not None:
        yield LineReport(1, 0, [summary.file_error])


def validate_blocks(
    blocks: Iterable[bytes],
    policy: Policy,
    summary: StreamSummary,
    *,
    first_offset: int = 0,
) -> Iterator[LineReport]:
    """The core of :func:`validate_stream`: validate the UTF-8 text that ``blocks`` yields
    (already decoded, cut anywhere), line numbers from 1, byte offsets from ``first_offset``.
    """
    max_len = policy.max_line_bytes
    line_no = 1
    offset = first_offset
    carry = b""
    skipping = 0  # > 0 while inside an over-long line: its length so far
    count_trace = policy.trace_min_fraction > 0
    trace_floor = _LEVEL_RANK[policy.trace_min_level] if count_trace else -1

    def run(data: bytes, end: int) -> Iterator[LineReport]:
        # One call per block for the lines of data[:end]; Python only for reported lines.
        nonlocal line_no, offset
        res = check_block(data, end, policy, trace_floor)
        summary.lines += res.lines
        summary.valid += res.valid
        summary.by_service.update(res.by_service)
        summary.trace_eligible += res.trace_eligible
        summary.trace_carrying += res.trace_carrying
        for i, start, raw, rec, viol in res.flagged:
            yield _report(summary, rec, raw, line_no + i, offset + start, viol)
        line_no += res.lines
        offset += end + 1

    for block in blocks:
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
            yield from run(data, cut)
            carry = data[cut + 1 :]
        if len(carry) > max_len:
            skipping = len(carry)
            carry = b""
    if summary.file_error is not None:
        return
    if skipping:
        yield _too_long(summary, line_no, offset, skipping, max_len)
    elif carry:
        yield from run(carry, len(carry))


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
    if rec is None:
        return LineReport(line_no, offset, viol, raw[:HINT_MAX_BYTES])
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
