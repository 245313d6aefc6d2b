"""Run one trace lookup over every configured backend: shards of all backends share one bounded
thread pool, results merge into one deduplicated timeline, failures are kept per backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from obskit._names import safe_path
from obskit.trace.config import HTTPBackendConfig, TraceConfig
from obskit.trace.elasticsearch import ElasticsearchBackend
from obskit.trace.files import search_files
from obskit.trace.loki import LokiBackend
from obskit.trace.model import MAX_SHARDS, BackendError, Entry, TraceUsageError, Window, merge

#: Notes shown per backend; the rest are counted in one more note.
MAX_NOTES: Final = 20


@dataclass
class BackendResult:
    """What one backend contributed."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    error: str | None = None
    requests: int = 0
    notes: list[str] = field(default_factory=list)
    #: Statistics shown with ``--debug`` only.
    info: list[str] = field(default_factory=list)
    #: Lines that mention the trace id but could not be shown (each one has a note).
    broken: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lines": len(self.entries),
            "requests": self.requests,
            "error": self.error,
            "notes": self.notes,
            "broken_lines": self.broken,
        }


@dataclass
class LookupResult:
    trace_id: str
    window: Window
    entries: list[Entry]
    backends: list[BackendResult]

    @property
    def errors(self) -> list[str]:
        return [b.error for b in self.backends if b.error]

    @property
    def broken(self) -> int:
        """Lines that mention the trace id but could not be shown, over all backends."""
        return sum(b.broken for b in self.backends)


def build_backends(
    cfg: TraceConfig, trace_id: str
) -> tuple[LokiBackend | None, ElasticsearchBackend | None]:
    """The HTTP backends the config names (raises ``TraceUsageError`` on bad settings)."""
    loki = LokiBackend(cfg.loki, trace_id, cfg.concurrency) if cfg.loki and cfg.loki.url else None
    es = None
    if cfg.elasticsearch and cfg.elasticsearch.url:
        es = ElasticsearchBackend(cfg.elasticsearch, trace_id, cfg.concurrency)
    return loki, es


def check_shards(cfg: TraceConfig, window: Window) -> None:
    """Refuse a shard size that would split ``window`` into more than :data:`MAX_SHARDS`
    shards for any HTTP backend, naming the smallest shard that would do."""
    backends: list[tuple[str, HTTPBackendConfig | None]] = [
        ("loki", cfg.loki),
        ("elasticsearch", cfg.elasticsearch),
    ]
    for name, backend in backends:
        if backend is None or not backend.url:
            continue
        size = backend.shard_ns()
        count = window.shard_count(size)
        if count <= MAX_SHARDS:
            continue
        span = window.end_ns - window.start_ns
        need = -(-span // (MAX_SHARDS * 1_000_000_000))  # whole seconds, rounded up
        raise TraceUsageError(
            f"shard {backend.shard} splits the {_human(span)} window into {count:,} {name} "
            f"queries; at most {MAX_SHARDS:,} are allowed: use --shard {need}s or more, "
            "or a shorter window (--since, --from/--to)"
        )


def _human(ns: int) -> str:
    secs = ns // 1_000_000_000
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


class _Lookup:
    """One lookup in progress: each backend is submitted by its own step; every job's
    result is collected, then each backend's statistics are filled in by its finisher."""

    def __init__(
        self, cfg: TraceConfig, trace_id: str, window: Window, pool: ThreadPoolExecutor
    ) -> None:
        self.cfg = cfg
        self.trace_id = trace_id
        self.window = window
        self.pool = pool
        self.results: list[BackendResult] = []
        self.jobs: list[tuple[BackendResult, Future[list[Entry]]]] = []
        self.finishers: list[Callable[[], None]] = []
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    def _guarded(
        self, res: BackendResult, fn: Callable[[], list[Entry]]
    ) -> Callable[[], list[Entry]]:
        def run() -> list[Entry]:
            if res.name in self._failed:  # one clear error per backend, not one per shard
                return []
            try:
                return fn()
            except BackendError as exc:
                with self._lock:
                    if res.error is None:
                        res.error = str(exc)
                    self._failed.add(res.name)
                return []

        return run

    def _backend(self, name: str) -> BackendResult:
        res = BackendResult(name)
        self.results.append(res)
        return res

    def submit_files(self) -> None:
        paths = self.cfg.paths
        res = self._backend("files " + ", ".join(safe_path(p) for p in paths))

        def job() -> list[Entry]:
            found = search_files([Path(p) for p in paths], self.trace_id, self.window)
            notes = found.warnings + found.broken
            res.notes.extend(notes[:MAX_NOTES])
            if len(notes) > MAX_NOTES:
                res.notes.append(f"... and {len(notes) - MAX_NOTES} more notes")
            res.broken = len(found.broken)
            res.info.append(
                f"{found.files} file{'s' * (found.files != 1)}, "
                f"{found.bytes_read / 1e6:.1f} MB read"
            )
            if found.outside_window:
                res.notes.append(
                    f"{found.outside_window} line(s) of this trace are outside the "
                    "window (widen --since, or use --from/--to)"
                )
            return found.entries

        self.jobs.append((res, self.pool.submit(job)))

    def submit_loki(self, loki: LokiBackend) -> None:
        res = self._backend(loki.name)
        res.info.extend(f"LogQL {q}" for q in loki.queries())
        for task in loki.tasks(self.window):
            self.jobs.append((res, self.pool.submit(self._guarded(res, task))))

        def finish() -> None:
            res.requests = loki.stats.requests
            res.notes.extend(loki.stats.warnings)

        self.finishers.append(finish)

    def submit_es(self, es: ElasticsearchBackend) -> None:
        res = self._backend(es.name)

        def finish() -> None:
            res.requests = es.stats.requests
            res.notes.extend(es.notes)
            res.notes.extend(es.stats.warnings)

        self.finishers.append(finish)
        try:
            es.prepare()
        except BackendError as exc:
            res.error = str(exc)
            return
        if es.uses_search_after():
            paging = "search_after in a point in time"
        else:
            paging = "timestamp cursor" + (
                " in a point in time" if es.pit_id else " without a snapshot"
            )
        res.info.append(f"{es.flavor}, index {es.cfg.index}, {paging}")
        for task in es.tasks(self.window):
            self.jobs.append((res, self.pool.submit(self._guarded(res, task))))

    def collect(self) -> None:
        for res, fut in self.jobs:
            res.entries.extend(fut.result())


def run_lookup(cfg: TraceConfig, trace_id: str, window: Window) -> LookupResult:
    """Query every backend in ``cfg`` for ``trace_id`` within ``window``."""
    check_shards(cfg, window)
    loki, es = build_backends(cfg, trace_id)
    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="trace") as pool:
            run = _Lookup(cfg, trace_id, window, pool)
            if cfg.paths:
                run.submit_files()
            if loki is not None:
                run.submit_loki(loki)
            if es is not None:
                run.submit_es(es)
            run.collect()
    finally:
        if loki is not None:
            loki.close()
        if es is not None:
            es.close()
    for finish in run.finishers:
        finish()
    for res in run.results:
        # A line found by both Loki queries, or by two shards at a border, counts once.
        res.entries = merge([res.entries])
    entries = merge(r.entries for r in run.results)
    return LookupResult(trace_id, window, entries, run.results)
