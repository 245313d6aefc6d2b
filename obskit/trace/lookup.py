"""Run one trace lookup over every configured backend: shards of all backends share one bounded
thread pool, results merge into one deduplicated timeline, failures are kept per backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obskit.trace.config import TraceConfig
from obskit.trace.elasticsearch import ElasticsearchBackend
from obskit.trace.files import search_files
from obskit.trace.loki import LokiBackend
from obskit.trace.model import BackendError, Entry, Window, merge


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

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "lines": len(self.entries),
            "requests": self.requests,
            "error": self.error,
            "notes": self.notes,
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


def build_backends(
    cfg: TraceConfig, trace_id: str
) -> tuple[LokiBackend | None, ElasticsearchBackend | None]:
    """The HTTP backends the config names (raises ``TraceUsageError`` on bad settings)."""
    loki = LokiBackend(cfg.loki, trace_id, cfg.concurrency) if cfg.loki and cfg.loki.url else None
    es = None
    if cfg.elasticsearch and cfg.elasticsearch.url:
        es = ElasticsearchBackend(cfg.elasticsearch, trace_id, cfg.concurrency)
    return loki, es


def run_lookup(cfg: TraceConfig, trace_id: str, window: Window) -> LookupResult:
    """Query every backend in ``cfg`` for ``trace_id`` within ``window``."""
    loki, es = build_backends(cfg, trace_id)
    results: list[BackendResult] = []
    jobs: list[tuple[BackendResult, Future[list[Entry]]]] = []
    failed: set[str] = set()
    lock = threading.Lock()

    def guarded(res: BackendResult, fn: Callable[[], list[Entry]]) -> Callable[[], list[Entry]]:
        def run() -> list[Entry]:
            if res.name in failed:  # one clear error per backend, not one per shard
                return []
            try:
                return fn()
            except BackendError as exc:
                with lock:
                    if res.error is None:
                        res.error = str(exc)
                    failed.add(res.name)
                return []

        return run

    try:
        with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="trace") as pool:
            if cfg.paths:
                fres = BackendResult("files " + ", ".join(cfg.paths))
                results.append(fres)

                def files_job(res: BackendResult = fres) -> list[Entry]:
                    found = search_files([Path(p) for p in cfg.paths], trace_id, window)
                    res.notes.extend(found.warnings[:20])
                    if len(found.warnings) > 20:
                        res.notes.append(f"... and {len(found.warnings) - 20} more warnings")
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

                jobs.append((fres, pool.submit(files_job)))
            if loki is not None:
                lres = BackendResult(loki.name)
                lres.info.extend(f"LogQL {q}" for q in loki.queries())
                results.append(lres)
                for task in loki.tasks(window):
                    jobs.append((lres, pool.submit(guarded(lres, task))))
            if es is not None:
                eres = BackendResult(es.name)
                results.append(eres)
                try:
                    es.prepare()
                except BackendError as exc:
                    eres.error = str(exc)
                else:
                    eres.info.append(
                        f"{es.flavor}, index {es.cfg.index}, "
                        + (
                            "search_after in a point in time"
                            if es.uses_search_after()
                            else "timestamp cursor"
                            + (" in a point in time" if es.pit_id else " without a snapshot")
                        )
                    )
                    for task in es.tasks(window):
                        jobs.append((eres, pool.submit(guarded(eres, task))))
            for res, fut in jobs:
                res.entries.extend(fut.result())
    finally:
        if loki is not None:
            loki.close()
        if es is not None:
            es.close()
    for res in results:
        if loki is not None and res.name == loki.name:
            res.requests = loki.stats.requests
            res.notes.extend(loki.stats.warnings)
        if es is not None and res.name == es.name:
            res.requests = es.stats.requests
            res.notes.extend(es.notes)
            res.notes.extend(es.stats.warnings)
    for res in results:
        # A line found by both Loki queries, or by two shards at a border, counts once.
        res.entries = merge([res.entries])
    entries = merge(r.entries for r in results)
    return LookupResult(trace_id, window, entries, results)
