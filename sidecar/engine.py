"""The sidecar's main loop: poll the source, check and transform, batch, hand batches to the
sink workers, and move checkpoints as acknowledgements come back.

Memory is bounded by ``memory.max_inflight_bytes``: lines read but not yet acknowledged by
every sink, counted with their in-memory overhead. When it is reached, reading pauses (the
files wait on disk, which is the buffer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sidecar.acks import AckTracker
from sidecar.batcher import Batcher, OpenBatch
from sidecar.checkpoint import CheckpointError, CheckpointStore
from sidecar.config import LoadedConfig
from sidecar.metrics import Metrics
from sidecar.selflog import log as default_log
from sidecar.sinks.base import Batch, Sink
from sidecar.sinks.registry import sink_module
from sidecar.sinks.worker import SinkWorker
from sidecar.source.chunk import Chunk
from sidecar.transform.quarantine import DeadLetter
from sidecar.transform.stage import SchemaStage

CHECKPOINT_FILE = "checkpoints.json"


class Source(Protocol):
    """What the engine needs from the tailer."""

    def poll(self, max_bytes: int = ...) -> list[Chunk]: ...
    def wait(self, timeout: float) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    def files(self) -> list[Any]: ...


SourceFactory = Callable[[LoadedConfig, CheckpointStore], Source]


def _tailer(cfg: LoadedConfig, checkpoints: CheckpointStore) -> Source:
    from sidecar.source.tailer import Tailer

    return Tailer(cfg.source, checkpoints)


class Engine:
    """Runs one sidecar; :meth:`run` returns when stopped (signal, idle exit)."""

    def __init__(
        self,
        cfg: LoadedConfig,
        *,
        source_factory: SourceFactory = _tailer,
        sinks: list[Sink] | None = None,
        log: Callable[..., None] = default_log,
    ) -> None:
        self.cfg = cfg
        self.log = log
        self.metrics = Metrics()
        self.tracker = AckTracker()
        self.stop_event = threading.Event()
        self.ready = False
        self.shutting_down = False
        c = cfg.config
        self.dead = DeadLetter(cfg.quarantine_dir, c.quarantine.max_bytes, c.quarantine.max_files)
        self.stage = SchemaStage(c.schema, self.dead, self.metrics)
        self.batcher = Batcher(c.batch.max_lines, c.batch.max_bytes)
        self.checkpoints = CheckpointStore(
            Path(c.checkpoint.dir) / CHECKPOINT_FILE, c.checkpoint.retention
        )
        self._source_factory = source_factory
        self._given_sinks = sinks
        self.sinks: list[Sink] = []
        self.workers: list[SinkWorker] = []
        self.source: Source | None = None
        self._seq = 0
        self._last_save = time.monotonic()
        self._last_lag = 0.0
        self._dirty = False
        self._last_data = time.monotonic()
        self._deadline: float | None = None

    # control -----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop reading and shut down gracefully (safe from a signal handler)."""
        self.stop_event.set()
        if self.source is not None:
            self.source.stop()

    # setup -------------------------------------------------------------------------------------
    def _build_sinks(self) -> list[Sink]:
        if self._given_sinks is not None:
            return self._given_sinks
        return [sink_module(s.type).build(s.name, s.config) for s in self.cfg.sinks]

    def start(self) -> None:
        """Load checkpoints, start sinks and workers, open the source."""
        Path(self.cfg.config.checkpoint.dir).mkdir(parents=True, exist_ok=True)
        for w in self.checkpoints.load():
            self.log("WARN", w, component="checkpoint")
        self.sinks = self._build_sinks()
        # Resume points by id key (sinks know lines by their ids): a copy shares its
        # original's, and the lowest of them is where that content is read again from.
        resume: dict[str, int] = {}
        for k in self.checkpoints.file_keys():
            off = self.checkpoints.get(k)
            if off is not None:
                idk = self.checkpoints.origin_of(k)
                resume[idk] = min(off, resume.get(idk, off))
        for sink in self.sinks:
            sink.metrics = self.metrics.for_sink(sink.name)
            hook = getattr(sink, "set_resume_points", None)
            if hook is not None:  # sinks that deduplicate replays after a crash (file sink)
                hook(resume)
            sink.start()
            worker = SinkWorker(
                sink,
                self.dead,
                on_done=self.tracker.ack,
                on_forwarded=self.metrics.forwarded,
                on_outcome=self.metrics.batch_done,
                log=self.log,
            )
            worker.start()
            self.workers.append(worker)
        self.source = self._source_factory(self.cfg, self.checkpoints)
        if self.stop_event.is_set():
            self.source.stop()
        self.ready = True
        self.metrics.ready.set(1)

    # the loop ----------------------------------------------------------------------------------
    def run(self, exit_on_idle: float | None = None) -> int:
        """Run until stopped; with ``exit_on_idle``, also stop once every file was read to its
        end, every batch acknowledged, and nothing new arrived for that many seconds."""
        try:
            self._loop(exit_on_idle, None)
        finally:
            self.shutdown()
        return 0

    def run_for(self, seconds: float) -> None:
        """Run the loop for about ``seconds`` without shutting down (the demo uses it)."""
        self._loop(None, time.monotonic() + seconds)

    def _loop(self, exit_on_idle: float | None, until: float | None) -> None:
        if self.source is None:
            self.start()
        assert self.source is not None
        c = self.cfg.config
        max_inflight = int(c.memory.max_inflight_bytes)
        # Raw bytes per poll: lines cost about three times their size once decoded.
        read_bytes = max(64 * 1024, min(max_inflight // 8, 2 << 20))
        last_data = self._last_data
        while not self.stop_event.is_set():
            if until is not None and time.monotonic() >= until:
                break
            self._apply_acks()
            now = time.monotonic()
            self._housekeeping(now)
            budget = max_inflight - self.tracker.inflight_bytes - self.batcher.open.cost
            if budget <= 0:
                # Backpressure: hand over what we have and wait for acknowledgements.
                self._dispatch_open()
                self.tracker.wait_below(max_inflight // 2 or 1, 0.2)
                continue
            chunks = self.source.poll(min(budget, read_bytes))
            self._source_warnings()
            for chunk in chunks:
                for full in self.batcher.add(self.stage.process(chunk)):
                    self._dispatch(full)
            if chunks:
                last_data = self._last_data = time.monotonic()
            if self.batcher.age() >= c.batch.max_wait:
                self._dispatch_open()
            if chunks:
                continue
            if exit_on_idle is not None and self._idle(last_data, exit_on_idle):
                self.log("INFO", "idle: every file read and acknowledged; exiting")
                break
            wait = 1.0  # the source's wait() also returns at its poll interval or an event
            if not self.batcher.open.empty:
                wait = max(0.0, c.batch.max_wait - self.batcher.age())
            if exit_on_idle is not None:
                wait = min(wait, max(0.05, exit_on_idle / 4))
            if until is not None:
                wait = min(wait, max(0.0, until - time.monotonic()))
            self.source.wait(min(wait, 1.0))
        self._last_data = last_data

    def _idle(self, last_data: float, idle_for: float) -> bool:
        self._dispatch_open()
        if self.tracker.pending or not self.batcher.open.empty:
            return False
        assert self.source is not None
        if any(f.read_offset < f.size for f in self.source.files()):
            return False
        return time.monotonic() - last_data >= idle_for

    def _dispatch_open(self) -> None:
        b = self.batcher.take()
        if b is not None:
            self._dispatch(b)

    def _dispatch(self, ob: OpenBatch) -> None:
        self._seq += 1
        seq = self._seq
        sinks = len(self.workers) if ob.lines else 0
        self.tracker.register(seq, ob.marks, ob.cost, sinks)
        if not sinks:
            return
        batch = Batch(
            seq=seq,
            lines=ob.lines,
            records=ob.records,
            static=self.cfg.static,
            extents=ob.extents,
            offsets=ob.offsets,
            runs=ob.runs,
        )
        paths = {k: p for k, (p, _) in ob.marks.items()}
        paths.update(ob.id_paths)  # line ids name a copy's lines after its original
        for w in self.workers:
            if not w.put(batch, paths, self._give_up):
                # Stopping while a queue is full: this sink will not get the batch, so it is
                # never acknowledged; its lines stay behind the checkpoint and are read again.
                self.tracker.abandon(seq)
                return

    def _give_up(self) -> bool:
        if self._deadline is not None:
            return time.monotonic() >= self._deadline
        return self.stop_event.is_set()

    def _apply_acks(self) -> None:
        for key, (path, offset) in self.tracker.take_advanced().items():
            self.checkpoints.advance(key, offset, path)
            self._dirty = True

    def _housekeeping(self, now: float) -> None:
        c = self.cfg.config
        if now - self._last_save >= c.checkpoint.interval:
            self._save()
        if now - self._last_lag >= 1.0:
            self._last_lag = now
            self.metrics.inflight_bytes.set(self.tracker.inflight_bytes)
            if self.checkpoints.last_saved is not None:
                self.metrics.checkpoint_age.set(max(0.0, time.time() - self.checkpoints.last_saved))
            assert self.source is not None
            try:
                lags = {f.path: max(0, f.size - f.read_offset) for f in self.source.files()}
            except OSError:
                lags = {}
            self.metrics.set_file_lag(lags)

    def _source_warnings(self) -> None:
        # What the tailer learnt about files goes into the checkpoints (only the engine moves
        # them), before this poll's acknowledgements; its events (unreadable files, lost
        # content, ...) are counted, and logged unless they only repeat a logged failure.
        assert self.source is not None
        for d in getattr(self.source, "discovered", list)():
            self.checkpoints.record(d)
        for w in getattr(self.source, "warnings", list)():
            kind = str(getattr(w, "kind", "other"))
            self.metrics.source_event(w)
            if getattr(w, "level", "WARN"):
                fields = getattr(w, "fields", {})
                self.log(
                    getattr(w, "level", "WARN"), str(w), component="source", kind=kind, **fields
                )

    def _save(self) -> None:
        self._last_save = time.monotonic()
        self._apply_acks()
        try:
            # Quarantined lines must be on disk before the checkpoint passes them.
            self.dead.flush(durable=True)
            if self.source is not None:
                files = self.source.files()
                sizes = {f.file_key: f.size for f in files}
                gone = self.checkpoints.forget_gone(sizes, sizes)
                if gone:
                    self._dirty = True
            if self._dirty or self.checkpoints.dirty:  # (new files are recorded at once)
                self.checkpoints.save()
                self._dirty = False
        except (CheckpointError, OSError) as exc:
            self.log(
                "ERROR",
                "cannot save checkpoints; will retry (lines may be read again after a restart)",
                error=str(exc),
                path=str(self.checkpoints.path),
            )

    # shutdown ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop reading, let sinks finish within ``shutdown_timeout``, save checkpoints."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.ready = False
        self.metrics.ready.set(0)
        if self.source is not None:
            self.source.stop()
        deadline = self._deadline = time.monotonic() + self.cfg.config.shutdown_timeout
        self._dispatch_open()
        while time.monotonic() < deadline and self.tracker.pending:
            self.tracker.wait_idle(min(0.2, max(0.0, deadline - time.monotonic())))
            self._apply_acks()
        if self.tracker.pending:
            self.log(
                "WARN",
                "shutdown deadline reached with batches in flight; they will be read again",
                batches=self.tracker.pending,
            )
        for sink in self.sinks:
            sink.stopping.set()
        for w in self.workers:
            w.finish(max(deadline, time.monotonic() + 1.0))
        for w in self.workers:
            w.thread.join(max(0.5, deadline - time.monotonic()))
        self._apply_acks()
        if self.source is not None:
            # Closing reports the unacknowledged rest of gone files as lost: record that
            # before the last save.
            self.source.close()
            self._source_warnings()
        self._save_final()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.log("ERROR", f"closing sink {sink.name} failed", error=str(exc))
        self.dead.close()

    def _save_final(self) -> None:
        self._dirty = True
        self._save()
