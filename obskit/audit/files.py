"""Count the lines of log files (or the file sink's archive) per service and minute.

Files are found and decoded exactly as ``obskit trace`` reads them (folders recursively,
``.gz``, UTF-8 with or without BOM, CRLF, UTF-16 by BOM; see :mod:`obskit.trace.files`). Each
line is decoded only as far as its top-level ``timestamp`` and ``service`` (msgspec skips the
rest in C). A line is counted in the bucket of its own ``timestamp``, the field Loki and
Elasticsearch index it by; a line that cannot be placed is counted apart with the reason.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from obskit._names import safe_path
from obskit._winfile import WinAPI
from obskit.audit.buckets import MINUTE_NS, BucketRange, Edges, TimestampReader
from obskit.schema import DEFAULT_MAX_LINE_BYTES
from obskit.schema.encoding import RefusedEncoding, utf8_blocks
from obskit.trace.files import BLOCK_SIZE, list_files, open_shared

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
    *,
    win_api: WinAPI | None = None,
) -> FileCounts:
    """Count the lines under ``paths`` per (service, minute) for each of ``ranges`` (one per
    bucket convention; usually one). ``services`` limits the count to those services.

    A line longer than ``max_line_bytes`` is counted apart, like the sidecar sets it aside.
    Files are opened with share-delete on Windows (``win_api``: the OS seam, for tests) and
    named with :func:`obskit._names.safe_path`. Raises
    :class:`obskit.trace.model.TraceUsageError` when a path does not exist.
    """
    wanted = frozenset(services)
    rngs = list(ranges)
    out = FileCounts()
    for r in rngs:
        out.counts[r.edges] = {}
        out.per_file[r.edges] = {}
    reader = TimestampReader()
    seen: set[Path] = set()
    for path in list_files(paths, out.warnings):
        real = path.resolve()
        if real in seen:  # a file named directly and again inside a folder counts once
            continue
        seen.add(real)
        out.files += 1
        name = safe_path(str(path))
        try:
            with open_shared(path, win_api) as f:
                counter = _File(name, rngs, wanted, max_line_bytes, reader, out)
                counter.count(utf8_blocks(f, block_size))
        except RefusedEncoding as exc:
            out.warnings.append(f"{name}: cannot read: {exc}; convert the file to UTF-8")
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            out.warnings.append(f"{name}: cannot read: {reason}")
    return out


def _runs(blocks: Iterator[bytes], max_len: int, sizes: list[int]) -> Iterator[bytes | None]:
    """The blocks as runs of whole lines (``a\nb\nc``, without the final newline); ``None``
    stands for one line longer than ``max_len`` that did not fit in a block (never
    assembled). A run may still hold an over-long line: the caller checks. ``sizes[0]``
    accumulates the bytes read."""
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
                yield carry + block[:nl]
            carry, skipping, start = b"", False, nl + 1
        last = block.rfind(b"\n")
        if last >= start:
            yield block[start:last]
            start = last + 1
        carry = block[start:]
        if len(carry) > max_len:
            carry, skipping = b"", True
    if skipping:
        yield None
    elif carry:
        yield carry


# One pass over a run's timestamps joined by newlines: the usual UTC form with its minute
# (group 1) and, when the line sits exactly on the minute, its seconds (group 2).
_BULK_TS: Final = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d):(?:(00(?:\.0{1,9})?)Z|[0-5]\d(?:\.\d{1,9})?Z)$",
    re.M | re.ASCII,
)
_DECODE_LINES: Final = msgspec.json.Decoder(_Head).decode_lines


class _File:
    """Counting state of one file."""

    def __init__(
        self,
        name: str,
        ranges: list[BucketRange],
        wanted: frozenset[str],
        max_len: int,
        reader: TimestampReader,
        out: FileCounts,
    ) -> None:
        self.name = name
        self.ranges = ranges
        self.wanted = wanted
        self.max_len = max_len
        self.reader = reader
        self.out = out
        self.local: Counter[tuple[int, str, int]] = Counter()  # (range, service, bucket)
        self.line_no = 0
        self.outside = 0
        self.other = 0
        self.first: int | None = None
        self.last: int | None = None

    def seen(self, ns: int) -> None:
        if self.first is None or ns < self.first:
            self.first = ns
        if self.last is None or ns > self.last:
            self.last = ns

    def apart(self, reason: str, line_no: int) -> None:
        self.out.apart[reason] += 1
        if len(self.out.examples) < MAX_EXAMPLES:
            self.out.examples.append(f"{self.name}:{line_no}: {reason}")

    # -- the bulk path: a whole run of ordinary lines at C speed ----------------------------

    def bulk(self, run: bytes, lines: list[bytes]) -> bool:
        """Count ``run`` if every line is an ordinary one (JSON object, string service, the
        usual UTC timestamp); ``False`` (nothing counted) otherwise."""
        if max(map(len, lines)) > self.max_len:
            return False
        try:
            heads = _DECODE_LINES(run)  # blank lines are skipped, as they are ignored
        except _BAD:
            return False
        services = [h.service for h in heads]
        stamps = [h.timestamp for h in heads]
        if set(map(type, services)) != {str} or "" in services:
            return False
        if set(map(type, stamps)) != {str}:
            return False
        joined = "\n".join(stamps)
        found = _BULK_TS.findall(joined)
        if len(found) != len(stamps) or joined.count("\n") != len(stamps) - 1:
            return False
        groups = Counter(zip(services, found, strict=True))
        minutes = {m for m, _ in found}
        bases = {m: self.reader.minute(m) for m in minutes}
        if None in bases.values():
            return False  # a day or hour that does not exist: the precise path reports it
        lo, hi = min(minutes), max(minutes)
        self.seen(min(self._exact(t) for t in stamps if t.startswith(lo)))
        self.seen(max(self._exact(t) for t in stamps if t.startswith(hi)))
        for (svc, (minute, on_edge)), n in groups.items():
            if self.wanted and svc not in self.wanted:
                self.other += n
                continue
            base = bases[minute]
            assert base is not None
            placed = False
            for i, r in enumerate(self.ranges):
                # Exactly on the minute: Loki counts the line in the minute that ends there.
                key = base - MINUTE_NS if on_edge and r.edges is Edges.LEFT_OPEN else base
                if r.first <= key < r.end:
                    self.local[(i, svc, key)] += n
                    placed = True
            if not placed:
                self.outside += n
        self.line_no += len(lines)
        return True

    def _exact(self, ts: str) -> int:
        ns = self.reader.ns(ts, Edges.LEFT_OPEN)
        assert ns is not None
        return ns

    # -- the precise path: line by line -----------------------------------------------------

    def one(self, line: bytes | None) -> None:
        self.line_no += 1
        if line is None or len(line) > self.max_len:
            self.apart(TOO_LONG, self.line_no)
            return
        if not line or line.isspace():
            return  # blank lines are not log lines (nor shipped)
        try:
            head = _DECODE(line)
        except _BAD:
            self.apart(NOT_JSON, self.line_no)
            return
        svc = head.service
        if not isinstance(svc, str) or not svc:
            self.apart(NO_SERVICE, self.line_no)
            return
        # The instant differs between conventions only for a leap second (clamped for ES).
        ns = self.reader.ns(head.timestamp, self.ranges[0].edges)
        if ns is None:
            self.apart(NO_TIMESTAMP, self.line_no)
            return
        self.seen(ns)
        if self.wanted and svc not in self.wanted:
            self.other += 1
            return
        placed = False
        for i, r in enumerate(self.ranges):
            at = ns if i == 0 else self.reader.ns(head.timestamp, r.edges)
            assert at is not None
            key = r.edges.key(at)
            if r.first <= key < r.end:
                self.local[(i, svc, key)] += 1
                placed = True
        if not placed:
            self.outside += 1

    def finish(self, bytes_read: int) -> None:
        out = self.out
        out.lines += self.line_no
        out.bytes_read += bytes_read
        out.outside += self.outside
        out.other_services += self.other
        for ns in (self.first, self.last):
            if ns is not None:
                out.first_ns = ns if out.first_ns is None else min(out.first_ns, ns)
                out.last_ns = ns if out.last_ns is None else max(out.last_ns, ns)
        for (i, svc, key), n in self.local.items():
            edges = self.ranges[i].edges
            k = (svc, key)
            counts = out.counts[edges]
            counts[k] = counts.get(k, 0) + n
            out.per_file[edges].setdefault(k, {})[self.name] = n

    def count(self, blocks: Iterator[bytes]) -> None:
        """Count every line of the file; the result is added to ``out`` only once the whole
        file was read (a file that fails half-way counts nothing and is reported, rather
        than an arbitrary part of it)."""
        sizes = [0]
        for run in _runs(blocks, self.max_len, sizes):
            if run is None:
                self.one(None)
                continue
            lines = run.split(b"\n")
            if not self.bulk(run, lines):
                for line in lines:
                    self.one(line)
        self.finish(sizes[0])
