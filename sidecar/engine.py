"""The sidecar's main loop: poll the source, check and transform, batch, hand batches to the
sinks, and move checkpoints as the sinks take the lines.

A spooled sink takes a batch by appending it to its disk spool (:mod:`sidecar.spool`) at once,
so reading never waits for a backend; its worker delivers from the spool at its own pace. A
sink without a spool gets the batch in memory and takes it when the backend has it. A file's
checkpoint moves once every sink has taken the lines.

The loop never blocks on a sink: housekeeping (checkpoint saves, metrics, health) runs every
turn. Memory is bounded by ``memory.max_inflight_bytes``: lines read but not yet taken by
every sink (a sink without spool whose backend is slow, a spool that is full or cannot be
written). When it is reached, reading pauses (the files wait on disk).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from sidecar.acks import AckTracker
from sidecar.batcher import LINE_OVERHEAD, Batcher, OpenBatch
from sidecar.checkpoint import CheckpointError, CheckpointStore
from sidecar.config import LoadedConfig, SpoolConfig
from sidecar.metrics import Metrics
from sidecar.selflog import log as default_log
from sidecar.sinks.base import Batch, Sink
from sidecar.sinks.registry import sink_module
from sidecar.sinks.worker import MemoryFeed, SinkWorker, SpoolFeed
from sidecar.source.chunk import Chunk
from sidecar.spool import Spool, SpoolError, SpoolFull, encode_batch, payload_marks
from sidecar.statelock import FolderLocks, lock_folders
from sidecar.transform.quarantine import DeadLetter, utc_iso
from sidecar.transform.stage import SchemaStage

CHECKPOINT_FILE = "checkpoints.json"
#: Exit code when a sink worker cannot go on (the orchestrator restarts the sidecar).
EXIT_WORKER_FAILED = 1


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


class _Lane:
    """One sink as the engine sees it: its worker, and for a spooled sink, its spool and the
    batches waiting to be appended (the spool was full or could not be written)."""

    def __init__(self, worker: SinkWorker, spool: Spool | None, feed: Any) -> None:
        self.worker = worker
        self.spool = spool
        self.feed = feed
        self.waiting: deque[tuple[Batch, list[bytes]]] = deque()
        #: After a crash: id key -> offset below which this spool already has the lines (they
        #: are read again from the files for another sink, and skipped here).
        self.guard: dict[str, int] = {}
        self.status_written: float | None = None  # last_error_at of the status file
        self.problem: str | None = None  # why appends are failing now (for /readyz)
        self.retry_at = 0.0
        self.delay = 0.5
        self.dropped_seen = 0

    @property
    def name(self) -> str:
        return self.worker.sink.name


class Engine:
    """Runs one sidecar; :meth:`run` returns when stopped (signal, idle exit, fatal error)."""

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
        self.lanes: list[_Lane] = []
        self.source: Source | None = None
        self._seq = 0
        self._last_save = time.monotonic()
        self._last_lag = 0.0
        self._dirty = False
        self._last_data = time.monotonic()
        self.started_at = time.time()
        #: Wall-clock time of this run's last successful checkpoint save (None before).
        self.saved_at: float | None = None
        #: monotonic time of the main loop's last turn (``/healthz``).
        self.heartbeat = time.monotonic()
        self._dead_retry_at = 0.0
        self._dead_failing = False
        self._last_blocked_scan = 0.0
        #: Why the engine stopped on its own (a sink worker could not go on).
        self.fatal: str | None = None
        self.folder_locks: FolderLocks | None = None

    @property
    def workers(self) -> list[SinkWorker]:
        return [lane.worker for lane in self.lanes]

    # control -----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop reading and shut down gracefully (safe from a signal handler)."""
        self.stop_event.set()
        if self.source is not None:
            self.source.stop()

    # setup -------------------------------------------------------------------------------------
    def _build_sinks(self) -> list[tuple[Sink, SpoolConfig | None]]:
        specs = {s.name: s for s in self.cfg.sinks}
        if self._given_sinks is not None:
            return [
                (s, specs[s.name].spool if s.name in specs else None) for s in self._given_sinks
            ]
        return [(sink_module(s.type).build(s.name, s.config), s.spool) for s in self.cfg.sinks]

    def start(self) -> None:
        """Load checkpoints, open spools, start sinks and workers, open the source."""
        # First: a second sidecar on these folders must stop before it writes anything.
        self.folder_locks = lock_folders(self.cfg.state_folders())
        for w in self.folder_locks.warnings:
            self.log("WARN", w, component="statelock")
        c = self.cfg.config
        Path(c.checkpoint.dir).mkdir(parents=True, exist_ok=True)
        for w in self.checkpoints.load():
            self.log("WARN", w, component="checkpoint")
        built = self._build_sinks()
        self.sinks = [s for s, _ in built]
        # Resume points by id key (sinks know lines by their ids): a copy shares its
        # original's, and the lowest of them is where that content is read again from.
        resume: dict[str, int] = {}
        for k in self.checkpoints.file_keys():
            off = self.checkpoints.get(k)
            if off is not None:
                idk = self.checkpoints.origin_of(k)
                resume[idk] = min(off, resume.get(idk, off))
        # Recent batches kept in memory for spooled sinks take at most half of the memory
        # budget, shared between them; the read budget counts them (see ``_loop``).
        hot = max(256 * 1024, int(c.memory.max_inflight_bytes) // (2 * max(1, len(built))))
        for sink, spool_cfg in built:
            sink.metrics = self.metrics.for_sink(sink.name)
            sink.delivery.set_log(self.log)
            hook = getattr(sink, "set_resume_points", None)
            if hook is not None:  # sinks that deduplicate replays after a crash (file sink)
                hook(resume)
            sink.start()
            spool = self._open_spool(sink.name, spool_cfg) if spool_cfg is not None else None
            feed: Any
            if spool is None:
                feed = MemoryFeed(self.tracker.ack)
            else:
                feed = SpoolFeed(spool, self.cfg.static, self.stage.records_for, hot)
            worker = SinkWorker(
                sink,
                feed,
                self.dead,
                on_forwarded=self.metrics.forwarded,
                on_outcome=self.metrics.batch_done,
                log=self.log,
            )
            worker.start()
            self.lanes.append(_Lane(worker, spool, feed))
        self._recover_spools()
        self.source = self._source_factory(self.cfg, self.checkpoints)
        if self.stop_event.is_set():
            self.source.stop()
        self.ready = True
        self.metrics.ready.set(1)

    def _open_spool(self, name: str, sc: SpoolConfig) -> Spool:
        assert sc.dir is not None
        spool = Spool(
            Path(sc.dir),
            max_bytes=int(sc.max_bytes),
            segment_bytes=int(sc.segment_bytes),
            fsync=sc.fsync,
            when_full=sc.when_full,
        )
        try:
            warnings = spool.open()
        except (SpoolError, OSError) as exc:
            raise SpoolError(f"sink {name}: cannot open its spool: {exc}") from None
        for w in warnings:
            self.log("WARN", w, component="spool", sink=name)
        st = spool.stats()
        if st.records:
            self.log(
                "INFO",
                f"sink {name}: {st.lines} lines in its spool from before; delivering them first",
                sink=name,
                spool_bytes=st.nbytes,
            )
        return spool

    def _recover_spools(self) -> None:
        """Spools may hold lines appended after the last checkpoint save (a crash, a power
        cut): move the checkpoints past them, so they are not read and spooled again, as far
        as every sink has them; a spool that has lines another sink needs again skips them.
        Only records from the last save on are read (or the undelivered ones, if older)."""
        marks_by_lane: list[dict[str, tuple[str, int]]] = []
        unspooled = False
        for lane in self.lanes:
            if lane.spool is None:
                unspooled = True
                continue
            saved = self.checkpoints.spools.get(lane.name)
            start = (
                lane.spool.next_to_read if saved is None else min(saved, lane.spool.next_to_read)
            )
            marks: dict[str, tuple[str, int]] = {}
            for _, payload in lane.spool.scan(start):
                m, extents = payload_marks(payload)
                for key, (path, end) in m.items():
                    if end > marks.get(key, ("", -1))[1]:
                        marks[key] = (path, end)
                for key, (_, end) in extents.items():
                    lane.guard[key] = max(end, lane.guard.get(key, 0))
            marks_by_lane.append(marks)
        if unspooled or not marks_by_lane:
            return  # a sink without spool needs the lines from the checkpoints on
        moved = 0
        for key in set().union(*marks_by_lane):
            cp = self.checkpoints.get(key) or 0
            ends = [m[key][1] if key in m else cp for m in marks_by_lane]
            pos = min(ends)
            if pos > cp:
                path = next(m[key][0] for m in marks_by_lane if key in m)
                self.checkpoints.advance(key, pos, path)
                self._dirty = True
                moved += 1
        if moved:
            self.log(
                "INFO",
                f"checkpoints of {moved} files moved past lines already in the spools"
                " (appended after the last checkpoint save)",
                component="spool",
            )

    # the loop ----------------------------------------------------------------------------------
    def run(self, exit_on_idle: float | None = None) -> int:
        """Run until stopped; with ``exit_on_idle``, also stop once every file was read to its
        end, every line delivered, and nothing new arrived for that many seconds. Returns the
        exit code (non-zero when a sink worker could not go on)."""
        try:
            self._loop(exit_on_idle, None)
        finally:
            self.shutdown()
        return EXIT_WORKER_FAILED if self.fatal else 0

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
            now = self.heartbeat = time.monotonic()
            if until is not None and now >= until:
                break
            if self._supervise():
                break
            self._apply_acks()
            self._housekeeping(now)
            self._append_waiting(now)
            budget = (
                max_inflight
                - self.tracker.inflight_bytes
                - self.batcher.open.cost
                - sum(lane.feed.hot_cost for lane in self.lanes if lane.spool is not None)
            )
            if budget <= 0:
                # Backpressure: hand over what we have and wait for sinks to take it. The
                # folder is still scanned (nothing read), so files that come and go are
                # seen, and losses counted, while reading waits.
                self._dispatch_open()
                if now - self._last_blocked_scan >= self.cfg.source.poll_interval:
                    self._last_blocked_scan = now
                    self.source.poll(0)
                    self._source_warnings()
                self.tracker.wait_below(max_inflight // 2 or 1, 0.2)
                continue
            chunks = self.source.poll(min(budget, read_bytes))
            self._source_warnings()
            for chunk in chunks:
                for full in self.batcher.add(self.stage.process(chunk)):
                    self._dispatch(full)
            self._flush_crash_groups()
            if chunks:
                last_data = self._last_data = time.monotonic()
            if self.batcher.age() >= c.batch.max_wait:
                self._dispatch_open()
            if chunks:
                continue
            if exit_on_idle is not None and self._idle(last_data, exit_on_idle):
                self.log("INFO", "idle: every file read and delivered; exiting")
                break
            wait = 1.0  # the source's wait() also returns at its poll interval or an event
            if not self.batcher.open.empty:
                wait = max(0.0, c.batch.max_wait - self.batcher.age())
            if any(lane.waiting for lane in self.lanes):
                wait = min(wait, 0.2)
            if exit_on_idle is not None:
                wait = min(wait, max(0.05, exit_on_idle / 4))
            if until is not None:
                wait = min(wait, max(0.0, until - time.monotonic()))
            self.source.wait(min(wait, 1.0))
        self._last_data = last_data

    def _supervise(self) -> bool:
        """True when a sink worker stopped for good: the sidecar must exit."""
        for lane in self.lanes:
            w = lane.worker
            if w.running or self.shutting_down:
                continue
            self.fatal = w.fatal or "its thread ended"
            self.log(
                "ERROR",
                f"sink {lane.name}: worker not running ({self.fatal}); stopping the sidecar so"
                " that it is restarted (nothing is lost: undelivered lines are read again)",
                sink=lane.name,
            )
            return True
        return False

    def _idle(self, last_data: float, idle_for: float) -> bool:
        self._dispatch_open()
        if self.tracker.pending or not self.batcher.open.empty:
            return False
        if any(lane.waiting or lane.feed.backlog() for lane in self.lanes):
            return False
        assert self.source is not None
        if any(f.read_offset < f.size for f in self.source.files()):
            return False
        return time.monotonic() - last_data >= idle_for

    def _flush_crash_groups(self, final: bool = False) -> None:
        # Multi-line crash output (issue 14) is held by the stage until complete; a group's
        # file stays checkpointed at its first line meanwhile. On shutdown, hand over all.
        if self.source is None:
            return
        for p in self.stage.flush_due(time.monotonic(), self.source.files, final):
            for full in self.batcher.add(p):
                self._dispatch(full)

    def _dispatch_open(self) -> None:
        b = self.batcher.take()
        if b is not None:
            self._dispatch(b)

    def _dispatch(self, ob: OpenBatch) -> None:
        self._seq += 1
        seq = self._seq
        sinks = len(self.lanes) if ob.lines else 0
        self.tracker.register(seq, ob.marks, ob.cost, sinks)
        if not sinks:
            return
        batch = Batch(
            seq,
            ob.lines,
            ob.records,
            offsets=ob.offsets,
            runs=ob.runs,
            static=self.cfg.static,
            extents=ob.extents,
            paths=ob.id_paths,
            read_time=time.time(),
        )
        payload: list[bytes] | None = None
        for lane in self.lanes:
            if lane.spool is None:
                lane.feed.put(batch)
                continue
            if lane.guard:
                mine = _skip_spooled(batch, lane.guard)
                if mine is not batch:
                    lane.waiting.append((mine, encode_batch(mine, ob.marks)))
                    continue
            if payload is None:
                payload = encode_batch(batch, ob.marks)
            lane.waiting.append((batch, payload))
        self._append_waiting(time.monotonic())

    def _dead_letters_on_disk(self, now: float) -> bool:
        """A spool record moves the checkpoints past the lines it covers, quarantined ones
        included, even after a crash (``_recover_spools``): their dead-letter entries must be
        on disk before it is appended. False (logged, retried) when they cannot be."""
        if not self.dead.unsynced:
            return True
        if now < self._dead_retry_at:
            return False
        try:
            self.dead.flush(durable=True)
        except OSError as exc:
            self._dead_retry_at = now + 1.0
            if not self._dead_failing:
                self._dead_failing = True
                self.log(
                    "ERROR",
                    f"cannot write the dead-letter file ({exc}); spooling waits for it",
                    path=str(self.dead.path),
                )
            return False
        if self._dead_failing:
            self._dead_failing = False
            self.log("INFO", "the dead-letter file is written again", path=str(self.dead.path))
        return True

    def _append_waiting(self, now: float) -> None:
        """Append the batches waiting for each spooled sink, in order; a full or failing
        spool keeps them (and the files keep their lines: checkpoints wait)."""
        if any(lane.waiting for lane in self.lanes) and not self._dead_letters_on_disk(now):
            return
        for lane in self.lanes:
            if not lane.waiting or now < lane.retry_at:
                continue
            spool = lane.spool
            assert spool is not None
            while lane.waiting:
                batch, payload = lane.waiting[0]
                try:
                    loc = spool.append(payload, len(batch))
                except SpoolFull as exc:
                    self._spool_problem(lane, "full", str(exc), now, quiet_retry=0.2)
                    break
                except (OSError, SpoolError) as exc:
                    why = f"cannot write: {getattr(exc, 'strerror', None) or exc}"
                    self._spool_problem(lane, "error", why, now)
                    break
                lane.waiting.popleft()
                lane.feed.offer(loc, batch, len(batch) * LINE_OVERHEAD + batch.nbytes)
                self.tracker.ack(batch.seq)
                if lane.problem is not None:
                    self.log(
                        "INFO",
                        f"sink {lane.name}: spool accepts lines again",
                        sink=lane.name,
                    )
                    lane.problem, lane.delay = None, 0.5

    def _spool_problem(
        self, lane: _Lane, kind: str, why: str, now: float, quiet_retry: float | None = None
    ) -> None:
        first = lane.problem is None
        lane.problem = f"spool {why}"
        self.metrics.spool_append_failed(lane.name, kind)
        if quiet_retry is not None:
            lane.retry_at = now + quiet_retry
        else:
            lane.retry_at = now + lane.delay
            lane.delay = min(lane.delay * 2, 10.0)
        if first:
            self.log(
                "ERROR" if kind == "error" else "WARN",
                f"sink {lane.name}: {lane.problem}; reading pauses once"
                " memory.max_inflight_bytes is held (the log files keep the lines)",
                sink=lane.name,
            )

    def _apply_acks(self) -> None:
        for key, (path, offset) in self.tracker.take_advanced().items():
            self.checkpoints.advance(key, offset, path)
            self._dirty = True

    def _housekeeping(self, now: float) -> None:
        c = self.cfg.config
        if now - self._last_save >= c.checkpoint.interval:
            self._save()
        if now - self._last_lag < 1.0:
            return
        self._last_lag = now
        m = self.metrics
        m.inflight_bytes.set(self.tracker.inflight_bytes)
        m.checkpoint_age.set(self.checkpoint_age())
        for lane in self.lanes:
            health = lane.worker.sink.delivery.health
            m.sink_failing_seconds.labels(lane.name).set(health.failing_for(now))
            if lane.spool is None:
                continue
            if health.last_error_at != lane.status_written:
                lane.status_written = health.last_error_at
                self._write_spool_status(lane)
            st = lane.spool.stats()
            m.set_spool(lane.name, st, time.time())
            if st.dropped_lines > lane.dropped_seen:
                dropped = st.dropped_lines - lane.dropped_seen
                lane.dropped_seen = st.dropped_lines
                self.log(
                    "WARN",
                    f"sink {lane.name}: spool full; dropped its oldest {dropped} lines"
                    " (spool.when_full: drop_oldest)",
                    sink=lane.name,
                )
            for w in lane.spool.take_warnings():
                self.log("ERROR", w, component="spool", sink=lane.name)
        assert self.source is not None
        try:
            lags = {f.path: max(0, f.size - f.read_offset) for f in self.source.files()}
        except OSError:
            lags = {}
        m.set_file_lag(lags)

    def _write_spool_status(self, lane: _Lane) -> None:
        """The sink's last error beside its spool, for ``obskit-sidecar spool status``."""
        assert lane.spool is not None
        h = lane.worker.sink.delivery.health
        body = orjson.dumps(
            {
                "sink": lane.name,
                "last_error": h.last_error or None,
                "last_error_at": utc_iso(h.last_error_at) if h.last_error_at else None,
                "failing": h.failing_since is not None,
            }
        )
        tmp = lane.spool.dir / "status.json.tmp"
        try:
            tmp.write_bytes(body)
            os.replace(tmp, lane.spool.dir / "status.json")
        except OSError:
            pass  # informational only; the metrics and logs carry the same

    def checkpoint_age(self) -> float:
        """Seconds since checkpoints were last saved by this run (since start before that)."""
        return max(0.0, time.time() - (self.saved_at or self.started_at))

    def _source_warnings(self) -> None:
        # What the tailer learnt about files goes into the checkpoints (only the engine moves
        # them), before this poll's acknowledgements; its events (unreadable files, lost
        # content, ...) are counted, and logged unless they only repeat a logged failure.
        assert self.source is not None
        new_file = False
        for d in getattr(self.source, "discovered", list)():
            self.checkpoints.record(d)
            new_file = new_file or d.advance_to is not None or bool(d.origin)
        if new_file:
            # A new file's identity (or a copy's lineage) is made durable before any of its
            # lines is dispatched: after a kill -9, a copy+truncate copy of it is then still
            # known as its copy and keeps its line ids (no second copy in Elasticsearch or
            # the archive).
            self._save()
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
            # Quarantined lines, and lines a spool took, must be on disk before the
            # checkpoint passes them.
            self.dead.flush(durable=True)
            positions = {}
            for lane in self.lanes:
                if lane.spool is not None:
                    lane.spool.sync()
                    positions[lane.name] = lane.spool.next_no
            if self.source is not None:
                files = self.source.files()
                sizes = {f.file_key: f.size for f in files}
                gone = self.checkpoints.forget_gone(sizes, sizes)
                if gone:
                    self._dirty = True
            if self._dirty or self.checkpoints.dirty or positions != self.checkpoints.spools:
                self.checkpoints.save(positions)
                self._dirty = False
            self.saved_at = time.time()
        except (CheckpointError, OSError) as exc:
            self.log(
                "ERROR",
                "cannot save checkpoints; will retry (lines may be read again after a restart)",
                error=str(exc),
                path=str(self.checkpoints.path),
            )

    # health ------------------------------------------------------------------------------------
    def readiness(self) -> list[str]:
        """Why the sidecar is not ready now (empty when it is): for ``/readyz``."""
        c = self.cfg.config.health
        if self.shutting_down:
            return ["shutting down"]
        if not self.ready:
            return ["starting"]
        reasons: list[str] = []
        health = getattr(self.source, "health", None)
        if callable(health):
            reasons += list(health())
        now = time.monotonic()
        for lane in self.lanes:
            w = lane.worker
            if not w.running:
                reasons.append(f"sink {lane.name}: worker not running ({w.fatal or 'stopped'})")
                continue
            h = w.sink.delivery.health
            failing = h.failing_for(now)
            if failing >= c.sink_failing_after:
                reasons.append(
                    f"sink {lane.name}: failing for {failing:.0f}s ({h.last_error or 'unknown'})"
                )
            if lane.problem is not None:
                reasons.append(f"sink {lane.name}: {lane.problem}")
        age = self.checkpoint_age()
        if age >= c.checkpoint_stale_after:
            reasons.append(f"checkpoints not saved for {age:.0f}s")
        return reasons

    def notes(self) -> list[str]:
        """What ``/readyz`` shows even when ready: content lost since start (files deleted or
        truncated before they were read) and each spool's backlog."""
        out: list[str] = []
        lost = getattr(self.source, "lost", None)
        if lost is not None and lost.bytes:
            lines = f"{lost.lines} lines" if not lost.lines_unknown else "line count unknown"
            out.append(
                f"lost since start: {lost.bytes} bytes ({lines}) in {lost.events} files deleted"
                " or truncated before they were read (see the WARN lines)"
            )
        for lane in self.lanes:
            if lane.spool is not None:
                st = lane.spool.stats()
                if st.lines:
                    out.append(f"sink {lane.name}: {st.lines} lines in its spool")
        return out

    def liveness(self) -> list[str]:
        """Why the sidecar should be restarted (empty when alive): for ``/healthz``."""
        stalled = time.monotonic() - self.heartbeat
        if (
            self.ready
            and not self.shutting_down
            and stalled >= self.cfg.config.health.stalled_after
        ):
            return [f"main loop stalled for {stalled:.0f}s"]
        if self.fatal:
            return [f"a sink worker stopped: {self.fatal}"]
        return []

    # shutdown ----------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop reading, let sinks deliver within ``shutdown_timeout``, save checkpoints.
        Spooled lines not delivered by then stay in the spool for the next start."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.ready = False
        self.metrics.ready.set(0)
        if self.source is not None:
            self.source.stop()
        deadline = time.monotonic() + self.cfg.config.shutdown_timeout
        self._flush_crash_groups(final=True)
        self._dispatch_open()
        for lane in self.lanes:
            lane.worker.finish()
        while time.monotonic() < deadline and self._busy():
            self._append_waiting(time.monotonic())
            self.tracker.wait_idle(min(0.1, max(0.0, deadline - time.monotonic())))
            self._apply_acks()
        if self.tracker.pending:
            self.log(
                "WARN",
                "shutdown deadline reached with lines not taken by every sink; they are read"
                " again at the next start",
                batches=self.tracker.pending,
            )
        for sink in self.sinks:
            sink.stopping.set()
        for lane in self.lanes:
            lane.worker.thread.join(max(0.5, deadline - time.monotonic()))
        self._apply_acks()
        if self.source is not None:
            # Closing reports the unacknowledged rest of gone files as lost: record that
            # before the last save.
            self.source.close()
            self._source_warnings()
        self._save_final()
        for lane in self.lanes:
            lane.feed.close()
            if lane.spool is not None:
                lane.spool.close()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self.log("ERROR", f"closing sink {sink.name} failed", error=str(exc))
        try:
            self.dead.close()
        finally:
            if self.folder_locks is not None:
                self.folder_locks.release()

    def _busy(self) -> bool:
        # With a dead worker, the batches it never took cannot be done: wait only for what
        # the living sinks still have queued (their undone lines are read again at restart).
        if self.tracker.pending and not self.fatal:
            return True
        # A spooled sink that is failing keeps its backlog safely on disk: no need to wait.
        return any(
            lane.worker.running
            and (lane.waiting or lane.feed.backlog())
            and not (lane.spool is not None and lane.worker.sink.delivery.health.failing_since)
            for lane in self.lanes
        )

    def _save_final(self) -> None:
        self._dirty = True
        self._save()


def _skip_spooled(batch: Batch, guard: dict[str, int]) -> Batch:
    """``batch`` without the lines a spool already has (``guard``: id key -> offset below
    which it has them); the guard forgets a file once a batch goes past it. The same batch
    when nothing is skipped."""
    keep: list[int] = []
    skipped = False
    for key, offsets, start in batch.keys_and_offsets():
        mark = guard.get(key)
        if mark is None:
            keep += range(start, start + len(offsets))
            continue
        if offsets and offsets[-1] >= mark:
            del guard[key]
        for n, off in enumerate(offsets):
            if off >= mark:
                keep.append(start + n)
            else:
                skipped = True
    if not skipped:
        return batch
    return batch.select(keep)
