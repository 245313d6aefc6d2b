"""The non-blocking write path: callers append rendered lines to a bounded queue; one daemon
thread per process writes them in batches to the segment file and/or stdout.

Policy when the queue is full: the NEW line is dropped and counted (``stats()["dropped"]``);
the caller never waits for I/O. ``flush()`` and ``close()`` wait (with a deadline).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from typing import Any

from obskit.sdk.segments import SegmentWriter


def _stderr(message: str) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"obskit: {message}\n")
        sys.stderr.flush()


class AsyncWriter:
    """A bounded queue of complete lines (bytes without newline) and its writer thread."""

    def __init__(
        self,
        segments: SegmentWriter | None,
        stdout: bool,
        *,
        queue_size: int = 10_000,
        flush_interval: float = 0.2,
    ) -> None:
        self.segments = segments
        self.stdout = stdout
        self.queue_size = max(1, queue_size)
        self.flush_interval = flush_interval or 0.2
        self._q: deque[bytes] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._drop_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pid = os.getpid()
        self.enqueued = 0
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self._file_failed = False

    # caller side ------------------------------------------------------------------------
    def put(self, line: bytes) -> None:
        """Queue one line; never blocks, drops (and counts) when the queue is full."""
        q = self._q
        if len(q) >= self.queue_size:
            with self._drop_lock:
                self.dropped += 1
            return
        q.append(line)
        self.enqueued += 1
        # Not "the put that sees one line starts it": two racing first puts both see two.
        if self._thread is None:
            self._start()
        if len(q) == 1:
            self._wake.set()

    # writer side ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._pid != os.getpid():  # forked child without the at-fork hook having run
            self.reset_after_fork()
        with self._start_lock:  # one thread, however many callers race here
            if self._thread is not None or self._stop:
                if self._stop:
                    self._drain()  # after close(): write synchronously rather than lose lines
                return
            t = threading.Thread(target=self._run, name="obskit-writer", daemon=True)
            t.start()
            self._thread = t

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # the writer thread must survive anything
                self.write_errors += 1
                _stderr(f"log writer error: {exc!r}")
        self._drain()

    def _drain(self) -> None:
        q = self._q
        with self._idle:
            self._busy += 1
        try:
            with self._write_lock:
                self._drain_locked(q)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _drain_locked(self, q: deque[bytes]) -> None:
        while q:
            batch = []
            size = 0
            while q and size < 1 << 20:
                try:
                    line = q.popleft()
                except IndexError:
                    break
                batch.append(line)
                size += len(line) + 1
            if batch:
                self._write(b"\n".join(batch) + b"\n", len(batch))

    def _write(self, data: bytes, count: int) -> None:
        ok = False
        if self.segments is not None and not self._file_failed:
            try:
                self.segments.write(data)
                ok = True
            except OSError as exc:
                self.write_errors += 1
                # A full or read-only disk must never take the service down; stdout keeps
                # the lines visible and the error is said once.
                self._file_failed = True
                self.stdout = True
                _stderr(
                    f"cannot write log file in {self.segments.folder}: {exc}; logging to stdout"
                )
        if self.stdout:
            try:
                out: Any = sys.stdout
                buf = getattr(out, "buffer", None)
                if buf is not None:
                    buf.write(data)
                else:
                    out.write(data.decode("utf-8"))
                out.flush()
                ok = True
            except Exception:
                self.write_errors += 1
        if ok:
            self.written += count

    # control ----------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued line is written; ``False`` if the deadline passed first."""
        deadline = time.monotonic() + timeout
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._drain()
            return not self._q
        self._wake.set()
        with self._idle:
            while self._q or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the thread and close the segment; later lines are written synchronously."""
        self.flush(timeout)
        self._stop = True
        self._wake.set()
        t = self._thread
        if t is not None and t.is_alive() and self._pid == os.getpid():
            t.join(timeout)
        self._drain()
        if self.segments is not None:
            self.segments.close()

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and queue content (not ours)."""
        self._pid = os.getpid()
        self._q = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._drop_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread = None
        self._busy = 0
        self._stop = False

    def stats(self) -> dict[str, Any]:
        """Counters (approximate under concurrency; never reset)."""
        seg = self.segments
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "dropped": self.dropped,
            "queued": len(self._q),
            "write_errors": self.write_errors,
            "segment": str(seg.path) if seg is not None and seg.path is not None else None,
            "rotations": seg.rotations if seg is not None else 0,
            "segments_deleted": seg.deleted if seg is not None else 0,
            "delete_retries": seg.delete_failures if seg is not None else 0,
        }
