"""Grafana Loki backend: ``GET /loki/api/v1/query_range`` with LogQL, paged forward.

Queries that find a trace's lines (``mode = "both"`` runs them all and merges them):

* structured metadata, what the obskit sidecar ships: ``{service=~".+"} | trace_id="<id>"``,
  and the same over the streams of lines shipped over OTLP (``otlp_selector``:
  ``{service_name=~".+", service=""}``; Loki's OTLP endpoint labels streams by resource);
* a fallback for lines shipped without it: ``{service=~".+"} |= "<id>" | json | trace_id="<id>"``

Paging: Loki returns at most ``limit`` entries (capped by the server's
``max_entries_limit_per_query``, 5000 by default), oldest first with ``direction=forward``.
The next page starts *at* the last timestamp seen (not after it: many lines can share one
nanosecond), and the entries already collected at that timestamp are dropped by identity
(stream labels, timestamp, line). A page made only of one timestamp cannot advance, so the
limit is raised until it can.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from obskit._http import display_url
from obskit.trace.config import LokiConfig, credentials
from obskit.trace.http import backend_client, http_reason, request
from obskit.trace.model import BackendError, Entry, TraceUsageError, Window, entry_from_line

QUERY_PATH: Final = "/loki/api/v1/query_range"
#: Loki's answer when ``limit`` exceeds ``max_entries_limit_per_query``: "... (10000 > 5000)".
_LIMIT_RE: Final = re.compile(
    r"max entries limit.*?\((\d+)\s*>\s*(\d+)\)", re.IGNORECASE | re.DOTALL
)
#: How far ``limit`` may be raised to get past one timestamp holding more lines than a page.
MAX_LIMIT: Final = 100_000

Identity = tuple[int, tuple[tuple[str, str], ...], str]


@dataclass
class RawEntry:
    """One entry of a ``streams`` result, labels merged from all categories."""

    ts_ns: int
    stream: tuple[tuple[str, str], ...]
    line: str
    labels: dict[str, str]

    @property
    def identity(self) -> Identity:
        return (self.ts_ns, self.stream, self.line)


def parse_streams(body: Any) -> list[RawEntry]:
    """Entries of a ``query_range`` response, ordered by time (stable across streams).

    Handles both shapes Loki 3 answers with: structured metadata and parsed labels folded into
    each stream's labels, or (``encodingFlags: ["categorize-labels"]``) a third element per value
    holding ``structuredMetadata`` and ``parsed`` maps.
    """
    if not isinstance(body, dict) or body.get("status", "success") != "success":
        raise ValueError(f"unexpected response: {str(body)[:200]}")
    data = body.get("data") or {}
    if data.get("resultType", "streams") != "streams":
        raise ValueError(f"expected a streams result, got {data.get('resultType')!r}")
    out: list[RawEntry] = []
    for stream in data.get("result") or []:
        labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
        key = tuple(sorted(labels.items()))
        for value in stream.get("values") or []:
            ts, line = int(value[0]), str(value[1])
            merged = labels
            if len(value) > 2 and isinstance(value[2], dict):
                merged = dict(labels)
                for cat in ("structuredMetadata", "parsed"):
                    extra = value[2].get(cat)
                    if isinstance(extra, dict):
                        merged.update({str(k): str(v) for k, v in extra.items()})
                    elif isinstance(extra, list):  # older proxies: [{"name":..,"value":..}]
                        for pair in extra:
                            if isinstance(pair, dict) and "name" in pair:
                                merged[str(pair["name"])] = str(pair.get("value", ""))
            out.append(RawEntry(ts, key, line, merged))
    out.sort(key=lambda e: e.ts_ns)
    return out


@dataclass
class PageStats:
    """Requests made, for the ``--debug`` line and the benchmark."""

    requests: int = 0
    entries: int = 0
    warnings: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self._lock:
            self.requests += 1
            self.entries += n


class LokiBackend:
    """Queries one Loki (one tenant) for one trace."""

    def __init__(self, cfg: LokiConfig, trace_id: str, max_connections: int = 4) -> None:
        if cfg.mode not in ("both", "metadata", "line"):
            raise TraceUsageError(f"loki: mode must be both, metadata or line, got {cfg.mode!r}")
        self.cfg = cfg
        self.trace_id = trace_id
        self.name = f"loki {display_url(cfg.url)}"
        creds = credentials(cfg, "LOKI", self.name)
        headers: dict[str, str] = {}
        if cfg.tenant:
            headers["X-Scope-OrgID"] = cfg.tenant
        if cfg.categorize_labels:
            headers["X-Loki-Response-Encoding-Flags"] = "categorize-labels"
        self.client = backend_client(cfg, creds, self.name, headers, max_connections)
        self.limit = cfg.page_size
        self._limit_lock = threading.Lock()
        self.stats = PageStats()

    def queries(self) -> list[str]:
        """The LogQL queries for the configured mode."""
        sel, tid = self.cfg.selector, self.trace_id
        q = []
        if self.cfg.mode in ("both", "metadata"):
            q.append(f'{sel} | trace_id="{tid}"')
            if self.cfg.otlp_selector:
                # Lines shipped over OTLP: trace_id is structured metadata there too, but
                # the streams carry service_name, not service (and the line is the message).
                q.append(f'{self.cfg.otlp_selector} | trace_id="{tid}"')
        if self.cfg.mode in ("both", "line"):
            q.append(f'{sel} |= "{tid}" | json | trace_id="{tid}"')
        return q

    def tasks(self, window: Window) -> list[Callable[[], list[Entry]]]:
        """One task per (shard, query); each pages through its shard."""
        return [
            functools.partial(self.entries, q, shard)
            for shard in window.shards(self.cfg.shard_ns())
            for q in self.queries()
        ]

    def entries(self, query: str, window: Window) -> list[Entry]:
        out = []
        for raw in self.query_range(query, window):
            e = entry_from_line(
                raw.line, "loki", self.trace_id, fallback_ts_ns=raw.ts_ns, labels=raw.labels
            )
            if e is not None:
                out.append(e)
        return out

    def query_range(self, query: str, window: Window) -> Iterator[RawEntry]:
        """Every entry matching ``query`` in ``window``, each exactly once, oldest first."""
        start = window.start_ns
        seen_at_start: set[Identity] = set()
        limit = self.limit
        while True:
            page = self._page(query, start, window.end_ns, limit)
            if page is None:  # the server lowered our limit: retry with the new one
                limit = self.limit
                continue
            fresh = [e for e in page if not (e.ts_ns == start and e.identity in seen_at_start)]
            yield from fresh
            if len(page) < limit:
                return
            last = page[-1].ts_ns
            if last == start:
                # A full page of one timestamp: only a larger page can get past it.
                if limit < min(self.limit_cap(), MAX_LIMIT):
                    limit = min(limit * 2, self.limit_cap(), MAX_LIMIT)
                    seen_at_start.update(e.identity for e in fresh)
                    continue
                self.stats.warnings.append(
                    f"{self.name}: more than {limit} lines share timestamp {last}; "
                    "some of them may be missing (raise max_entries_limit_per_query)"
                )
                start, seen_at_start = last + 1, set()
                continue
            seen_at_start = {e.identity for e in page if e.ts_ns == last}
            start = last
            limit = self.limit

    _cap: int | None = None

    def limit_cap(self) -> int:
        """The server's ``max_entries_limit_per_query`` once learnt, else :data:`MAX_LIMIT`."""
        return self._cap or MAX_LIMIT

    def _page(self, query: str, start: int, end: int, limit: int) -> list[RawEntry] | None:
        params = {
            "query": query,
            "start": str(start),
            "end": str(end),
            "limit": str(limit),
            "direction": "forward",
        }
        resp = request(self.client, self.name, "GET", QUERY_PATH, params=params)
        if resp.status_code == 400 and (m := _LIMIT_RE.search(resp.text)):
            cap = int(m.group(2))
            if 0 < cap < limit:
                with self._limit_lock:
                    self._cap = cap
                    self.limit = min(self.limit, cap)
                return None
        if resp.status_code != 200:
            raise BackendError(self.name, http_reason(resp))
        try:
            page = parse_streams(resp.json())
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise BackendError(self.name, f"unexpected query_range response: {exc}") from None
        self.stats.add(len(page))
        return page

    def follow(
        self,
        window_start_ns: int,
        on_entry: Callable[[Entry], None],
        stop: threading.Event,
        lookback_ns: int = 300 * 1_000_000_000,
    ) -> None:
        """Poll for new lines of the trace until ``stop`` is set, calling ``on_entry`` once per
        line. The first poll reads the whole window (the trace so far); later ones re-read the
        last ``lookback_ns`` (shippers deliver late) and drop what was already shown."""
        seen: dict[Identity, int] = {}
        # The same line found by both queries is one line (their stream labels may differ).
        shown: dict[tuple[str, int, str, str], int] = {}
        first = True
        while not stop.is_set():
            now = time.time_ns()
            start = window_start_ns if first else max(window_start_ns, now - lookback_ns)
            first = False
            fresh: list[Entry] = []
            for q in self.queries():
                for raw in self.query_range(q, Window(start, now + 1)):
                    if raw.identity in seen:
                        continue
                    seen[raw.identity] = raw.ts_ns
                    e = entry_from_line(
                        raw.line, "loki", self.trace_id, fallback_ts_ns=raw.ts_ns, labels=raw.labels
                    )
                    if e is not None:
                        fresh.append(e)
            for e in sorted(fresh, key=lambda e: e.ts_ns):
                if e.dedup_key() not in shown:
                    shown[e.dedup_key()] = e.ts_ns
                    on_entry(e)
            cutoff = start - lookback_ns
            for ident in [i for i, ts in seen.items() if ts < cutoff]:
                del seen[ident]
            for key in [k for k, ts in shown.items() if ts < cutoff]:
                del shown[key]
            stop.wait(self.cfg.poll_interval)

    def close(self) -> None:
        self.client.close()
