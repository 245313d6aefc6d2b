"""One thread and one bounded queue per sink: the engine never waits on a slow backend except
through backpressure, and one sink's outage does not stop another from delivering."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from sidecar.sinks.base import Batch, SendResult, Sink, SinkStopped
from sidecar.transform.quarantine import DeadLetter


class SinkWorker:
    """Feeds batches to ``sink.send`` in order; rejected lines go to the dead-letter file;
    ``on_done(seq)`` is called once the sink has returned for a batch. An unexpected error in
    ``send`` is logged and the batch retried (never dropped, never acknowledged)."""

    def __init__(
        self,
        sink: Sink,
        dead_letter: DeadLetter,
        on_done: Callable[[int], None],
        on_forwarded: Callable[[str, int], None],
        on_outcome: Callable[[str, str], None],
        log: Callable[..., None],
        queue_size: int = 4,
    ) -> None:
        self.sink = sink
        self.dead = dead_letter
        self.on_done = on_done
        self.on_forwarded = on_forwarded
        self.on_outcome = on_outcome
        self.log = log
        self.queue: queue.Queue[tuple[Batch, dict[str, str]] | None] = queue.Queue(queue_size)
        self.thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.failed_batches = 0

    def start(self) -> None:
        self.thread.start()

    def put(self, batch: Batch, paths: dict[str, str], give_up: Callable[[], bool]) -> bool:
        """Queue ``batch`` (``paths``: file key -> path, for dead letters); blocks while the
        queue is full; False if ``give_up()`` became true first (checked after each try)."""
        while True:
            try:
                self.queue.put((batch, paths), timeout=0.2)
                return True
            except queue.Full:
                if give_up() or not self.thread.is_alive():
                    return False

    def finish(self, deadline: float) -> None:
        """No more batches: the thread exits after the queued ones (or on stop). Gives up at
        ``deadline`` (``time.monotonic()``) if a stuck sink keeps the queue full."""
        while True:
            try:
                self.queue.put(None, timeout=0.2)
                return
            except queue.Full:
                if not self.thread.is_alive() or time.monotonic() >= deadline:
                    return

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch, paths = item
            delay = 0.5
            while True:
                try:
                    result = self.sink.send(batch)
                    break
                except SinkStopped:
                    return
                except Exception as exc:  # a sink bug must not lose or ack the batch
                    self.failed_batches += 1
                    self.log(
                        "ERROR",
                        f"sink {self.sink.name} failed on a batch; retrying in {delay:.1f}s",
                        sink=self.sink.name,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    self.on_outcome(self.sink.name, "error")
                    if self.sink.stopping.wait(delay):
                        return
                    delay = min(delay * 2, 30.0)
            self._finish(batch, paths, result)

    def _finish(self, batch: Batch, paths: dict[str, str], result: SendResult) -> None:
        rejected = result.rejected
        for idx, reason in rejected:
            key, _, off = batch.ids[idx].rpartition("-")
            self.dead.write(
                batch.lines[idx],
                file=paths.get(key),
                file_key=key,
                offset=int(off) if off.isdigit() else None,
                reasons=[{"rule": None, "field": None, "message": reason, "column": None}],
                stage="sink",
                sink=self.sink.name,
            )
        if rejected:
            self.dead.flush()
        self.on_forwarded(self.sink.name, len(batch) - len(rejected))
        self.on_outcome(self.sink.name, "partial" if rejected else "ok")
        self.on_done(batch.seq)
