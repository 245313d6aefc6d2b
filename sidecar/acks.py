"""Acknowledgements: which byte ranges every sink has confirmed, so checkpoints only ever
cover lines that are safe.

Each batch carries, per file it has lines from, the offset just past the last line it covers
("mark"). Batches are registered in the order they are built, so per file the marks increase.
A batch is done when every sink has returned for it; a file's checkpoint moves to the mark of
the latest batch such that it and all earlier batches of that file are done, even when batches
finish out of order. Quarantined lines need no sink: the batch being built when they were
quarantined covers them.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Pending:
    sinks_left: int
    nbytes: int
    marks: dict[str, tuple[str, int]]


@dataclass
class _FileQueue:
    marks: deque[tuple[int, int]] = field(default_factory=deque)  # (seq, end offset)
    path: str = ""


class AckTracker:
    """Thread-safe: sink workers call :meth:`ack`; the engine calls the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: dict[int, _Pending] = {}
        # Done batches still queued in some file: seq -> number of files still holding it.
        self._done: dict[int, int] = {}
        self._files: dict[str, _FileQueue] = {}
        self._advanced: dict[str, tuple[str, int]] = {}
        self.inflight_bytes = 0

    def register(
        self, seq: int, marks: dict[str, tuple[str, int]], nbytes: int, sinks: int
    ) -> None:
        """Batch ``seq`` covers ``marks`` (file key -> (path, end offset)) and ``nbytes`` of
        lines; it is done after ``sinks`` acks (0: done now)."""
        with self._lock:
            self._pending[seq] = _Pending(sinks, nbytes, marks)
            self.inflight_bytes += nbytes
            for key, (path, end) in marks.items():
                fq = self._files.setdefault(key, _FileQueue())
                fq.marks.append((seq, end))
                fq.path = path
            if sinks <= 0:
                self._finish(seq)

    def ack(self, seq: int) -> None:
        """One sink has returned for batch ``seq``."""
        with self._lock:
            p = self._pending.get(seq)
            if p is None:
                return
            p.sinks_left -= 1
            if p.sinks_left <= 0:
                self._finish(seq)

    def _finish(self, seq: int) -> None:
        p = self._pending.pop(seq)
        self.inflight_bytes -= p.nbytes
        if p.marks:
            self._done[seq] = len(p.marks)
        for key in p.marks:
            fq = self._files[key]
            while fq.marks and fq.marks[0][0] in self._done:
                s, end = fq.marks.popleft()
                self._advanced[key] = (fq.path, end)
                self._done[s] -= 1
                if self._done[s] <= 0:
                    del self._done[s]
            if not fq.marks:
                del self._files[key]
        self._cond.notify_all()

    def abandon(self, seq: int) -> None:
        """Batch ``seq`` will not be delivered by every sink (shutting down with a full
        queue): stop waiting for it. Its files' checkpoints never move past it."""
        with self._lock:
            p = self._pending.pop(seq, None)
            if p is not None:
                self.inflight_bytes -= p.nbytes
                self._cond.notify_all()

    def take_advanced(self) -> dict[str, tuple[str, int]]:
        """File key -> (path, offset) the checkpoint may move to since the last call."""
        with self._lock:
            out, self._advanced = self._advanced, {}
            return out

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_below(self, nbytes: int, timeout: float) -> bool:
        """Wait until in-flight bytes are below ``nbytes``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.inflight_bytes < nbytes, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no batch is pending; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)
