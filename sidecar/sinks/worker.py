"""One supervised thread per sink: it takes batches from the sink's feed (its disk spool, or
an in-memory queue when the spool is off), delivers them through the sink's delivery loop,
writes what the backend rejected for good to the dead-letter file, and acknowledges.

Nothing can stop the thread unnoticed: delivery retries inside the loop; a dead-letter or
acknowledgement step that fails on I/O (a full disk) is retried with back-off and reported;
anything else (a bug) is retried a few times and then recorded as :attr:`SinkWorker.fatal`,
which makes the engine stop the sidecar with that reason (exit 1), so the orchestrator
restarts it instead of leaving a half-alive shipper.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sidecar.sinks.base import Batch, Sink, SinkStopped
from sidecar.spool import Location, Spool, decode_batch
from sidecar.transform.quarantine import DeadLetter

#: Failures in a row of one step, other than I/O errors, before the worker gives up.
MAX_STEP_FAILURES = 5


class Item(Protocol):
    """A batch handed to a worker, and how to acknowledge it."""

    batch: Batch


class Feed(Protocol):
    """Where a worker's batches come from."""

    def next(self, timeout: float) -> Any: ...
    def done(self, item: Any) -> None: ...
    def backlog(self) -> int: ...
    def close(self) -> None: ...


class _MemoryItem:
    __slots__ = ("batch",)

    def __init__(self, batch: Batch) -> None:
        self.batch = batch


class MemoryFeed:
    """Batches in memory (the spool is off): acknowledged to the checkpoints only once the
    backend has them. Unbounded here: the engine bounds what is in flight in bytes."""

    def __init__(self, on_done: Callable[[int], None]) -> None:
        self._q: queue.SimpleQueue[_MemoryItem] = queue.SimpleQueue()
        self._on_done = on_done
        self._pending = 0
        self._lock = threading.Lock()

    def put(self, batch: Batch) -> None:
        with self._lock:
            self._pending += 1
        self._q.put(_MemoryItem(batch))

    def next(self, timeout: float) -> _MemoryItem | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def done(self, item: _MemoryItem) -> None:
        self._on_done(item.batch.seq)
        with self._lock:
            self._pending -= 1

    def backlog(self) -> int:
        """Batches queued or being delivered."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        pass


class _SpoolItem:
    __slots__ = ("batch", "loc")

    def __init__(self, loc: Location, batch: Batch) -> None:
        self.loc = loc
        self.batch = batch


class SpoolFeed:
    """Batches from the sink's spool, in order. Batches the engine just appended are also
    kept in memory (up to ``hot_bytes``), so a sink that keeps up never reads its spool back
    or decodes a line twice; after an outage it reads the backlog from disk."""

    def __init__(
        self,
        spool: Spool,
        static: dict[str, str],
        records: Callable[[list[bytes], bytes], list[Any]],
        hot_bytes: int,
    ) -> None:
        self.spool = spool
        self._static = static
        self._records = records
        self._hot: deque[tuple[Location, Batch, int]] = deque()
        self._hot_cost = 0
        self._hot_max = hot_bytes
        self._lock = threading.Lock()

    @property
    def hot_cost(self) -> int:
        """Memory held by the batches kept in memory (approximate, as in-flight bytes)."""
        return self._hot_cost

    def offer(self, loc: Location, batch: Batch, cost: int) -> None:
        """The engine appended ``batch`` at ``loc``: keep it in memory if there is room."""
        with self._lock:
            if self._hot_cost + cost > self._hot_max:
                return
            self._hot.append((loc, batch, cost))
            self._hot_cost += cost

    def next(self, timeout: float) -> _SpoolItem | None:
        spool = self.spool
        if not spool.wait(timeout):
            return None
        want = spool.next_to_read
        with self._lock:
            while self._hot and self._hot[0][0].no < want:
                self._hot_cost -= self._hot.popleft()[2]
            if self._hot and self._hot[0][0].no == want:
                loc, batch, cost = self._hot.popleft()
                self._hot_cost -= cost
                return _SpoolItem(loc, batch)
        got = spool.read()
        if got is None:
            return None
        loc, payload = got
        try:
            batch = decode_batch(payload, self._static, self._records)
        except Exception as exc:  # a record that passed its checksum but cannot be read
            spool.skip(loc, f"cannot decode record {loc.no}: {type(exc).__name__}: {exc}")
            return None
        return _SpoolItem(loc, batch)

    def done(self, item: _SpoolItem) -> None:
        self.spool.ack(item.loc)

    def backlog(self) -> int:
        """Records in the spool not delivered yet."""
        return self.spool.stats().records

    def close(self) -> None:
        with self._lock:
            self._hot.clear()
            self._hot_cost = 0


class SinkWorker:
    """Delivers the batches of ``feed`` to ``sink`` in order (see the module docstring)."""

    def __init__(
        self,
        sink: Sink,
        feed: Feed,
        dead_letter: DeadLetter,
        on_forwarded: Callable[[str, int], None],
        on_outcome: Callable[[str, str], None],
        log: Callable[..., None],
    ) -> None:
        self.sink = sink
        self.feed = feed
        self.dead = dead_letter
        self.on_forwarded = on_forwarded
        self.on_outcome = on_outcome
        self.log = log
        self.thread = threading.Thread(target=self._main, name=f"sink-{sink.name}", daemon=True)
        #: Why the worker stopped for good (None while it runs or after a clean stop).
        self.fatal: str | None = None
        self._finishing = threading.Event()

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def finish(self) -> None:
        """Stop once the feed is empty (or at once when the sink is stopping)."""
        self._finishing.set()

    def _main(self) -> None:
        try:
            self._run()
        except SinkStopped:
            pass
        except BaseException as exc:
            self.fatal = f"{type(exc).__name__}: {exc}"
            self.log(
                "ERROR",
                f"sink {self.sink.name}: worker stopped: {self.fatal}",
                sink=self.sink.name,
            )

    def _run(self) -> None:
        while True:
            if self.sink.stopping.is_set():
                return
            item = self.feed.next(0.2)
            if item is None:
                if self._finishing.is_set() and self.feed.backlog() == 0:
                    return
                continue
            self._handle(item)

    def _handle(self, item: Any) -> None:
        batch = item.batch
        result = self._step("deliver", lambda: self.sink.send(batch))
        if result.rejected:
            # Each entry is queued once (a refused one was not queued: retrying it is safe);
            # then only the flush is retried, so a full disk never doubles an entry.
            for idx, reason in result.rejected:
                self._step("dead-letter", functools.partial(self._dead_letter, batch, idx, reason))
            self._step("dead-letter", self.dead.flush)
        self._step("acknowledge", lambda: self.feed.done(item))
        self.on_forwarded(self.sink.name, len(batch) - len(result.rejected))
        self.on_outcome(self.sink.name, "partial" if result.rejected else "ok")

    def _step(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one step until it succeeds: I/O errors are retried for ever with back-off
        (the disk may free up), anything else :data:`MAX_STEP_FAILURES` times."""
        delay = 0.5
        failures = 0
        while True:
            try:
                return fn()
            except SinkStopped:
                raise
            except Exception as exc:
                io = isinstance(exc, OSError)
                failures += 1
                if not io and failures >= MAX_STEP_FAILURES:
                    raise
                self.on_outcome(self.sink.name, "error")
                self.sink.delivery.health.failed(what, f"{type(exc).__name__}: {exc}")
                self.sink.delivery.failures.failed(
                    f"{what} failed", f"{type(exc).__name__}: {exc}", f"retrying in {delay:.1f}s"
                )
                if self.sink.stopping.wait(delay):
                    raise SinkStopped() from None
                delay = min(delay * 2, 30.0)

    def _dead_letter(self, batch: Batch, idx: int, reason: str) -> None:
        key, offset = batch.line_id(idx)
        self.dead.write(
            batch.lines[idx],
            file=batch.paths.get(key),
            file_key=key,
            offset=offset,
            reasons=[{"rule": None, "field": None, "message": reason, "column": None}],
            stage="sink",
            sink=self.sink.name,
        )


def wait_until(pred: Callable[[], bool], deadline: float, step: float = 0.05) -> bool:
    """Poll ``pred`` until true or ``time.monotonic() >= deadline``."""
    while not pred():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True
