"""Multi-line crash output grouped into one schema v1 record.

A Go panic, a Python traceback, a .NET unhandled exception or a Java stack trace is written
by the runtime as plain text into the service's log stream. Consecutive non-JSON lines that
start with a known crash line (:mod:`obskit.schema.crash`) are held per file as one group
until the group ends: a JSON line, another crash, the group's limits, or nothing new for
``max_wait`` once the file is read to its end (or the file is gone). A group that showed its
shape (a goroutine header, a ``File "..."`` frame, an ``at ...`` line) becomes one record;
one that did not is quarantined line by line, as without grouping.

While a group is open its file's checkpoint stays at the group's first line, so a group is
acknowledged as a whole and, after a ``kill -9``, read again whole. The record's offset is
its first line's, so its id is stable across such a re-read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from obskit.schema import Policy, Record, Violation, check_line
from obskit.schema.crash import CrashShape, crash_start, looks_json

#: Bytes a record needs beyond its message and stack (keys, timestamp, level, service).
RECORD_OVERHEAD: Final = 512
# A byte JSON may have to escape (at most 6 bytes for 1).
_ESCAPED: Final = re.compile(rb'["\\\x00-\x1f]')


@dataclass(slots=True)
class Held:
    """One line of an open group, with what the validator said about it (for quarantine)."""

    line: bytes
    offset: int
    violations: list[Violation]


@dataclass
class Group:
    """Consecutive lines of one crash in one file."""

    shape: CrashShape
    file_key: str
    path: str
    id_key: str
    read_at: str
    touched: float
    held: list[Held] = field(default_factory=list)
    end: int = 0
    size: int = 0
    confirmed: bool = False
    part: int = 1
    first_line: bytes = b""
    after_chain: bool = False
    #: handed over at a limit, the crash goes on in the next part
    continued: bool = False

    @property
    def start(self) -> int:
        """Offset of the group's first line (the checkpoint while it is open)."""
        return self.held[0].offset

    def accepts(self, line: bytes) -> bool:
        """Whether a non-JSON ``line`` continues this group."""
        shape = crash_start(line)
        if shape is None:
            return True
        if shape is not self.shape:
            return False
        # The same kind again: still the header of this crash, or Python's chained
        # exception ("During handling of the above exception...").
        return not self.confirmed or self.after_chain

    def add(self, held: Held, end: int, now: float) -> None:
        line = held.line
        self.held.append(held)
        self.end = end
        self.touched = now
        self.size += cost(line)
        if not self.confirmed and self.shape.confirm.match(line):
            self.confirmed = True
        if line.strip():
            chain = self.shape.chain
            self.after_chain = chain is not None and chain.match(line) is not None


def cost(line: bytes) -> int:
    """Upper bound of the bytes ``line`` takes in the record's JSON (newline included)."""
    return len(line) + 2 + 5 * len(_ESCAPED.findall(line))


@dataclass(frozen=True)
class Limits:
    """When an open group is handed over: lines, bytes of record text, seconds of quiet."""

    max_lines: int
    max_bytes: int
    max_wait: float


FileStatuses = Callable[[], Iterable[Any]]


class Multiline:
    """The open groups of every file (at most one per file); pure state, no I/O."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: dict[str, Group] = {}

    def feed(
        self,
        file_key: str,
        path: str,
        id_key: str,
        held: Held,
        end: int,
        now: float,
        read_at: Callable[[], str],
    ) -> tuple[list[Group], bool]:
        """Offer one invalid line (``end``: where the next line starts). Returns the groups it
        closed and whether it was taken into a group (if not, it is the caller's as usual)."""
        closed: list[Group] = []
        line = held.line
        g = self.open.get(file_key)
        if g is not None:
            if not looks_json(line) and g.accepts(line):
                lim = self.limits
                if len(g.held) >= lim.max_lines or g.size + cost(line) > lim.max_bytes:
                    # Full: hand this part over; the crash goes on in a new part.
                    g.continued = True
                    closed.append(g)
                    g = self.open[file_key] = Group(
                        g.shape,
                        file_key,
                        path,
                        id_key,
                        g.read_at,
                        now,
                        confirmed=g.confirmed,
                        part=g.part + 1,
                        first_line=g.first_line,
                    )
                g.add(held, end, now)
                return closed, True
            closed.append(self.open.pop(file_key))
        if looks_json(line):
            return closed, False
        shape = crash_start(line)
        if shape is None:
            return closed, False
        g = Group(shape, file_key, path, id_key, read_at(), now, first_line=line)
        g.add(held, end, now)
        self.open[file_key] = g
        return closed, True

    def close(self, file_key: str) -> Group | None:
        """End the open group of ``file_key`` (a JSON line or a too-long line came)."""
        return self.open.pop(file_key, None)

    def due(self, now: float, files: FileStatuses, final: bool = False) -> list[Group]:
        """Groups to hand over now: quiet for ``max_wait`` with their file read to its end,
        or whose file is no longer followed (rotated away and released, truncated); every
        group when ``final`` (shutdown)."""
        if not self.open:
            return []
        if final:
            out = list(self.open.values())
            self.open.clear()
            return out
        status = {f.file_key: f for f in files()}
        out = []
        for key, g in list(self.open.items()):
            f = status.get(key)
            quiet = now - g.touched >= self.limits.max_wait
            if f is None or (quiet and f.read_offset >= f.size):
                out.append(self.open.pop(key))
        return out


def _text(line: bytes) -> str:
    return line.decode("utf-8", "backslashreplace").rstrip()


def message_of(g: Group) -> str:
    """The record's message: the crash's first line (a Python traceback: the exception line
    at its end), ``(part N)`` after it for the later parts of a long crash."""
    if g.part > 1:
        return f"{_text(g.first_line)} (part {g.part})"
    last = g.shape.last
    if last is not None:
        for h in reversed(g.held):
            if h.line.strip() and last.match(h.line):
                return _text(h.line).lstrip(" |")
    return _text(g.first_line)


def build_record(g: Group, service: str, policy: Policy) -> tuple[bytes, Record] | None:
    """The schema v1 line of a confirmed group, checked by the validator; ``None`` when it
    does not pass (then its lines are quarantined)."""
    lines = [h.line for h in g.held]
    while lines and not lines[-1].strip() and not g.continued:
        lines.pop()  # blank lines after a crash are not part of its text
    stack = "\n".join(ln.decode("utf-8", "backslashreplace") for ln in lines)
    rec: dict[str, Any] = {
        "timestamp": g.read_at,
        "level": "ERROR",
        "service": service,
        "message": message_of(g),
        "error.stack": stack,
        "crash": g.shape.kind,
    }
    if g.part > 1:
        rec["crash_part"] = g.part
    line = orjson.dumps(rec)
    record, _ = check_line(line, policy)
    if record is None:
        return None
    return line, record
