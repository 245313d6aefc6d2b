"""Groups prepared lines into batches bounded by lines and bytes, remembering for each file
the offset the batch covers up to (for acknowledgements)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sidecar.transform.stage import Prepared

#: Memory a line costs beyond its bytes while in flight (its bytes object, decoded record,
#: id string and list slots: measured ~560 bytes with CPython 3.11), so the in-flight bound
#: is a bound on real memory, not just on line bytes.
LINE_OVERHEAD = 560


@dataclass
class OpenBatch:
    """A batch being filled."""

    lines: list[bytes] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    #: each line's offset in its file; ``runs``: (index of a run's first line, its id key)
    offsets: list[int] = field(default_factory=list)
    runs: list[tuple[int, str]] = field(default_factory=list)
    nbytes: int = 0
    #: file key -> (path, offset the batch covers up to)
    marks: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: id key -> (first line offset, offset past the last line)
    extents: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: id key -> path of the file last read under it (for dead-letter entries)
    id_paths: dict[str, str] = field(default_factory=dict)
    started: float = 0.0

    @property
    def cost(self) -> int:
        """Approximate memory held by this batch's lines."""
        return self.nbytes + LINE_OVERHEAD * len(self.lines)

    @property
    def empty(self) -> bool:
        return not self.marks


class Batcher:
    """``add`` returns the batches that became full; ``take`` the open one."""

    def __init__(self, max_lines: int, max_bytes: int, clock: Any = time.monotonic) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._clock = clock
        self.open = OpenBatch()

    def add(self, p: Prepared) -> list[OpenBatch]:
        full: list[OpenBatch] = []
        lines, records, offsets = p.lines, p.records, p.offsets
        id_key = p.id_key or p.file_key
        i, n = 0, len(lines)
        while True:
            b = self.open
            if b.empty:
                b.started = self._clock()
            room = self.max_lines - len(b.lines)
            j = min(n, i + room)
            part = lines[i:j]
            size = sum(map(len, part))
            if size + b.nbytes > self.max_bytes:
                # Cut by bytes too: find how many lines fit (at least one per batch).
                acc = b.nbytes
                k = i
                while k < j and (acc + len(lines[k]) <= self.max_bytes or (k == i and not b.lines)):
                    acc += len(lines[k])
                    k += 1
                j, part, size = k, lines[i:k], acc - b.nbytes
            # Offset this batch covers up to in the file: the next line's start, or the end.
            end = offsets[j] if j < n else p.end
            if j > i:
                if not b.runs or b.runs[-1][1] != id_key:
                    b.runs.append((len(b.lines), id_key))
                    b.id_paths[id_key] = p.path
                b.lines += part
                b.records += records[i:j]
                b.offsets += offsets[i:j]
                b.nbytes += size
                first = b.extents.get(id_key, (offsets[i], 0))[0]
                b.extents[id_key] = (first, end)
            b.marks[p.file_key] = (p.path, end)
            i = j
            if (
                len(b.lines) >= self.max_lines
                or b.nbytes >= self.max_bytes
                or (i < n and j == i and b.lines)
            ):
                full.append(b)
                self.open = OpenBatch()
            if i >= n:
                return full

    def take(self) -> OpenBatch | None:
        """The open batch (None when it covers nothing), replaced by an empty one."""
        if self.open.empty:
            return None
        b, self.open = self.open, OpenBatch()
        return b

    def age(self) -> float:
        return 0.0 if self.open.empty else self._clock() - self.open.started
