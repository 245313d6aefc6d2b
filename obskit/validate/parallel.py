"""The units of work of ``obskit validate``: whole inputs, or byte ranges of a large file, each
checked by :func:`check_unit` in this process or in a worker process (``-j N``).

A range holds the lines that *start* inside it: it begins after the first newline at or after
its start (unless it starts the file) and ends with the line that holds its last byte, read
past its end when that line goes on. Consecutive ranges therefore hold every line exactly once,
whatever the line lengths, without knowing each other; the parent shifts each range's line
numbers by the lines of the ranges before it. Only plain UTF-8 files are cut (a gzip stream or
UTF-16 text cannot be entered in the middle); everything else is one unit.

Everything a worker gets is picklable and :func:`check_unit` is a module-level function, so
the spawn start method (Windows) works as well as fork.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import pairwise
from typing import BinaryIO, Final

from obskit._names import safe_path
from obskit.schema.encoding import Encoding, sniff
from obskit.schema.policy import Policy
from obskit.schema.stream import (
    BLOCK,
    LineReport,
    StreamSummary,
    validate_blocks,
    validate_stream,
)

#: Below this many bytes in all, one process does the work: starting workers costs more.
MIN_PARALLEL_BYTES: Final = 4 << 20
#: Range sizes: about eight ranges per worker over all inputs (so that the last ones to end
#: are short), within these bounds.
MIN_RANGE_BYTES: Final = 4 << 20
MAX_RANGE_BYTES: Final = 64 << 20
_TO_THE_END: Final = 1 << 62


@dataclass(frozen=True)
class Options:
    """What every unit is checked with."""

    policy: Policy
    accept_utf16: bool = False
    max_errors: int | None = None


@dataclass(frozen=True)
class Unit:
    """Input number ``index`` (``path``), whole (``end`` < 0) or its byte range
    ``[start, end)``; ``bom`` is the length of the UTF-8 byte-order mark the file starts with
    (byte offsets in reports count from after it)."""

    index: int
    path: str
    start: int = 0
    end: int = -1
    bom: int = 0


@dataclass
class UnitResult:
    """What one unit found: its counts, the reports kept (line numbers from 1 within the
    unit), whether reports were dropped past ``max_errors``, and a read error."""

    summary: StreamSummary = field(default_factory=StreamSummary)
    reports: list[LineReport] = field(default_factory=list)
    dropped: bool = False
    io_error: str | None = None


def default_jobs() -> int:
    """The CPUs this process may run on (CI runners often get fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass
class Plan:
    """The units in input order, and whether they are worth worker processes."""

    units: list[Unit]
    parallel: bool


def plan(paths: Sequence[tuple[int, str]], jobs: int, range_bytes: int | None = None) -> Plan:
    """The units for ``paths`` (index, path) on ``jobs`` processes.

    ``range_bytes`` fixes the range size (tests); by default it follows the total size, and
    one process does everything when the total is small or ``jobs`` is 1.
    """
    whole = [Unit(i, p) for i, p in paths]
    if jobs < 2:
        return Plan(whole, False)
    sizes = {i: _plain_file_size(p) for i, p in paths}
    total = sum(s for s in sizes.values() if s > 0)
    size = range_bytes
    if size is None:
        if total < MIN_PARALLEL_BYTES:
            return Plan(whole, False)
        size = min(max(total // (8 * jobs), MIN_RANGE_BYTES), MAX_RANGE_BYTES)
    units = []
    for i, p in paths:
        n = sizes.get(i, -1)
        bom = _utf8_bom(p) if n >= 2 * size else None
        if bom is None:
            units.append(Unit(i, p))
            continue
        # The last range reads to the end of the file, as one process would if it grew.
        cuts = [*range(bom, n, size), _TO_THE_END]
        units += [Unit(i, p, a, b, bom) for a, b in pairwise(cuts)]
    return Plan(units, sum(u.path != "-" for u in units) > 1)


def _plain_file_size(path: str) -> int:
    """The size of a regular file, else -1 (stdin, a FIFO, an unreadable path)."""
    if path == "-":
        return -1
    try:
        st = os.stat(path)
    except OSError:
        return -1
    return st.st_size if stat.S_ISREG(st.st_mode) else -1


def _utf8_bom(path: str) -> int | None:
    """The BOM length of a UTF-8 file, or ``None`` when the file cannot be cut (gzip, UTF-16,
    UTF-32, unreadable: the unit's own read then reports what is wrong)."""
    try:
        with open(path, "rb") as f:
            enc = sniff(f.read(4))
    except OSError:
        return None
    if enc in (Encoding.UTF8, Encoding.UTF8_BOM):
        return enc.bom_length
    return None


def ignore_interrupts() -> None:
    """In a worker, first thing: leave Ctrl-C to the parent, which stops the run (a worker
    interrupted in the middle of a unit would print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C back while worker processes start (POSIX): a child is born with the signal
    blocked, so one that arrives before :func:`ignore_interrupts` runs is dropped there, and
    the parent gets it as soon as the workers have started, not never."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def check_unit(
    unit: Unit,
    opts: Options,
    sink: Callable[[LineReport], None] | None = None,
    stdin: BinaryIO | None = None,
) -> UnitResult:
    """Validate one unit. Reports go to ``sink`` when given (in this process, as found), else
    into the result, at most ``opts.max_errors`` violations' worth."""
    res = UnitResult()
    kept = 0
    try:
        with _open(unit.path, stdin) as stream:
            if unit.end < 0:
                reports = validate_stream(
                    stream,
                    opts.policy,
                    summary=res.summary,
                    accept_utf16=opts.accept_utf16,
                    hints=False,  # added in input order by the runner
                )
            else:
                first = unit.start if unit.start == unit.bom else _line_start(stream, unit.start)
                blocks = _range_blocks(stream, first, unit.end)
                reports = validate_blocks(
                    blocks, opts.policy, res.summary, first_offset=first - unit.bom
                )
            for rep in reports:
                if sink is not None:
                    sink(rep)
                elif opts.max_errors is None or kept < opts.max_errors:
                    kept += len(rep.violations)
                    res.reports.append(rep)
                else:
                    res.dropped = True
    except (OSError, EOFError, zlib.error) as exc:
        res.io_error = read_error(unit.path, exc)
    return res


def read_error(path: str, exc: BaseException) -> str:
    """The message for an input that could not be read to its end."""
    where = safe_path(path)
    if isinstance(exc, EOFError):
        return f"{where}: truncated gzip stream: {exc}"
    if isinstance(exc, zlib.error):
        reason = str(exc).split(": ", 1)[-1]  # "Error -3 while decompressing data: ..."
        return f"{where}: corrupt gzip data: {reason}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{where}: cannot read: {exc.strerror}"
    return f"{where}: cannot read: {exc}"


def _open(path: str, stdin: BinaryIO | None) -> nullcontext[BinaryIO] | BinaryIO:
    if path == "-":
        return nullcontext(stdin or sys.stdin.buffer)
    return open(path, "rb")  # the caller's with-statement closes it


def _line_start(f: BinaryIO, pos: int) -> int:
    """Where the first line that starts at or after ``pos`` starts (the file's size if none)."""
    f.seek(pos - 1)
    at = pos - 1
    while True:
        data = f.read(BLOCK)
        if not data:
            return at
        nl = data.find(b"\n")
        if nl >= 0:
            return at + nl + 1
        at += len(data)


def _range_blocks(f: BinaryIO, first: int, end: int) -> Iterator[bytes]:
    """The bytes of the lines that start in ``[first, end)``, ``first`` being a line start:
    up to the end of the line that holds byte ``end - 1``."""
    if first >= end:
        return
    f.seek(first)
    pos = first
    while True:
        data = f.read(BLOCK)
        if not data:
            return
        if pos + len(data) < end:
            yield data
            pos += len(data)
            continue
        nl = data.find(b"\n", max(end - 1 - pos, 0))
        if nl >= 0:
            yield data[: nl + 1]
            return
        yield data  # the last line goes on past the range: read on to its newline
        pos += len(data)
