"""Count the lines of log files (or the file sink's archive) per service and minute.

Files are found and decoded exactly as ``obskit trace`` reads them (folders recursively,
``.gz``, UTF-8 with or without BOM, CRLF, UTF-16 by BOM; see :mod:`obskit.trace.files`). Each
line is decoded only as far as its top-level ``timestamp`` and ``service`` (msgspec skips the
rest in C). A line is counted in the bucket of its own ``timestamp``, the field Loki and
Elasticsearch index it by; a line that cannot be placed is counted apart with the reason.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from obskit.audit.buckets import BucketRange, Edges, TimestampReader
from obskit.schema import DEFAULT_MAX_LINE_BYTES
from obskit.trace.files import BLOCK_SIZE, list_files, open_shared, utf8_blocks

#: Reasons a line is counted apart (never compared).
NOT_JSON: Final = "not a JSON object"
NO_TIMESTAMP: Final = "no valid timestamp"
NO_SERVICE: Final = "no service"
TOO_LONG: Final = "longer than the maximum line length"
#: How many ``file:line: reason`` examples are kept.
MAX_EXAMPLES: Final = 10


class _Head(msgspec.Struct):
    timestamp: Any = None
    service: Any = None


_DECODE: Final = msgspec.json.Decoder(_Head).decode
_BAD: Final = (msgspec.DecodeError, msgspec.ValidationError)

#: (service, bucket) -> lines
Counts = dict[tuple[str, int], int]


@dataclass
class FileCounts:
    """What the files hold, per service and minute, for each bucket convention asked for."""

    #: ``counts[edges][(service, bucket)]``: lines in the compared buckets.
    counts: dict[Edges, Counts] = field(default_factory=dict)
    #: ``per_file[edges][(service, bucket)][path]``: the same, by file.
    per_file: dict[Edges, dict[tuple[str, int], dict[str, int]]] = field(default_factory=dict)
    #: Lines counted apart, by reason (:data:`NOT_JSON`, :data:`NO_TIMESTAMP`, ...).
    apart: Counter[str] = field(default_factory=Counter)
    #: The first few lines counted apart: ``path:line: reason``.
    examples: list[str] = field(default_factory=list)
    #: Lines with a valid timestamp outside the compared minutes.
    outside: int = 0
    #: Lines of services not asked for (``services``).
    other_services: int = 0
    files: int = 0
    lines: int = 0
    bytes_read: int = 0
    #: Earliest and latest valid timestamp seen (Unix ns), whatever the window.
    first_ns: int | None = None
    last_ns: int | None = None
    #: Files that could not be read, with the reason.
    warnings: list[str] = field(default_factory=list)

    def total(self, edges: Edges) -> int:
        return sum(self.counts.get(edges, {}).values())


def count_files(
    paths: Sequence[str | Path],
    ranges: Iterable[BucketRange],
    services: Iterable[str] = (),
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    block_size: int = BLOCK_SIZE,
) -> FileCounts:
    """Count the lines under ``paths`` per (service, minute) for each of ``ranges`` (one per
    bucket convention; usually one). ``services`` limits the count to those services.

    A line longer than ``max_line_bytes`` is counted apart, like the sidecar sets it aside.
    Raises :class:`obskit.trace.model.TraceUsageError` when a path does not exist.
    """
    wanted = frozenset(services)
    rngs = list(ranges)
    out = FileCounts()
    for r in rngs:
        out.counts[r.edges] = {}
        out.per_file[r.edges] = {}
    reader = TimestampReader()
    seen: set[Path] = set()
    for path in list_files(paths):
        real = path.resolve()
        if real in seen:  # a file named directly and again inside a folder counts once
            continue
        seen.add(real)
        out.files += 1
        try:
            with open_shared(path) as f:
                _count_one(
                    path, utf8_blocks(f, block_size), rngs, wanted, max_line_bytes, reader, out
                )
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            out.warnings.append(f"{path}: cannot read: {reason}")
    return out


def _lines(blocks: Iterator[bytes], max_len: int, sizes: list[int]) -> Iterator[bytes | None]:
    """Whole lines of the blocks (``None`` for a line over ``max_len``, never assembled);
    ``sizes[0]`` accumulates the bytes read."""
    carry = b""
    skipping = False
    for block in blocks:
        sizes[0] += len(block)
        start = 0
        if skipping or carry:
            nl = block.find(b"\n")
            if nl < 0:
                if not skipping:
                    carry += block
                    if len(carry) > max_len:
                        carry, skipping = b"", True
                continue
            if skipping:
                yield None
            else:
                line = carry + block[:nl]
                yield None if len(line) > max_len else line
            carry, skipping, start = b"", False, nl + 1
        last = block.rfind(b"\n")
        if last >= start:
            for line in block[start:last].split(b"\n"):
                yield None if len(line) > max_len else line
            start = last + 1
        carry = block[start:]
        if len(carry) > max_len:
            carry, skipping = b"", True
    if skipping:
        yield None
    elif carry:
        yield carry


def _count_one(
    path: Path,
    blocks: Iterator[bytes],
    ranges: list[BucketRange],
    wanted: frozenset[str],
    max_len: int,
    reader: TimestampReader,
    out: FileCounts,
) -> None:
    name = str(path)
    local: Counter[tuple[int, str, int]] = Counter()  # (range index, service, bucket)
    sizes = [0]
    line_no = 0
    outside = other = 0
    first, last = out.first_ns, out.last_ns
    single = ranges[0] if len(ranges) == 1 else None

    def apart(reason: str) -> None:
        out.apart[reason] += 1
        if len(out.examples) < MAX_EXAMPLES:
            out.examples.append(f"{name}:{line_no}: {reason}")

    for line in _lines(blocks, max_len, sizes):
        line_no += 1
        if line is None:
            apart(TOO_LONG)
            continue
        if not line or line.isspace():
            continue  # blank lines are not log lines (nor shipped)
        try:
            head = _DECODE(line)
        except _BAD:
            apart(NOT_JSON)
            continue
        svc = head.service
        if not isinstance(svc, str) or not svc:
            apart(NO_SERVICE)
            continue
        if single is not None:
            ns = reader.ns(head.timestamp, single.edges)
            if ns is None:
                apart(NO_TIMESTAMP)
                continue
            if first is None or ns < first:
                first = ns
            if last is None or ns > last:
                last = ns
            if wanted and svc not in wanted:
                other += 1
                continue
            key = single.edges.key(ns)
            if single.first <= key < single.end:
                local[(0, svc, key)] += 1
            else:
                outside += 1
            continue
        # Several conventions: the instant differs only for a leap second (clamped for ES).
        ns = reader.ns(head.timestamp, ranges[0].edges)
        if ns is None:
            apart(NO_TIMESTAMP)
            continue
        if first is None or ns < first:
            first = ns
        if last is None or ns > last:
            last = ns
        if wanted and svc not in wanted:
            other += 1
            continue
        placed = False
        for i, r in enumerate(ranges):
            at = ns if i == 0 else reader.ns(head.timestamp, r.edges)
            assert at is not None
            key = r.edges.key(at)
            if r.first <= key < r.end:
                local[(i, svc, key)] += 1
                placed = True
        if not placed:
            outside += 1
    out.lines += line_no
    out.bytes_read += sizes[0]
    out.outside += outside
    out.other_services += other
    out.first_ns, out.last_ns = first, last
    for (i, svc, key), n in local.items():
        edges = ranges[i].edges
        k = (svc, key)
        counts = out.counts[edges]
        counts[k] = counts.get(k, 0) + n
        out.per_file[edges].setdefault(k, {})[name] = n
