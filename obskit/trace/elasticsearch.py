"""Elasticsearch / OpenSearch backend: a ``term`` query on the trace id plus a range on the
timestamp, sorted by time, paged so that traces of any size come back whole.

* Elasticsearch with a point in time (``POST /<index>/_pit``): every page sees one snapshot and
  the sort ``[@timestamp, _shard_doc]`` is total, so pages follow with ``search_after``.
* OpenSearch (PIT via ``POST /<index>/_search/point_in_time``, no ``_shard_doc`` before 3.3), or
  any server without a PIT: a timestamp cursor. The next page asks for
  ``@timestamp >= last`` minus the ``_id`` s already returned at ``last``, so ties at a page
  border are neither lost nor repeated and a page made only of ties still moves forward.
* ``tiebreaker = "<unique keyword field>"`` forces ``search_after`` on ``[@timestamp, field]``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import quote

import orjson

from obskit._http import display_url
from obskit.schema import timestamp_ns
from obskit.trace.config import ElasticsearchConfig, credentials
from obskit.trace.http import backend_client, http_reason, request
from obskit.trace.loki import PageStats
from obskit.trace.model import (
    BackendError,
    Entry,
    TraceUsageError,
    Window,
    entry_from_line,
    format_ns,
)

MAX_PAGE: Final = 10_000


class ElasticsearchBackend:
    """Queries one Elasticsearch or OpenSearch cluster for one trace."""

    def __init__(self, cfg: ElasticsearchConfig, trace_id: str, max_connections: int = 4) -> None:
        if not 0 < cfg.page_size <= MAX_PAGE:
            raise TraceUsageError(f"elasticsearch: page_size must be 1..{MAX_PAGE}")
        self.cfg = cfg
        self.trace_id = trace_id
        self.name = f"elasticsearch {display_url(cfg.url)}"
        creds = credentials(cfg, "ES", self.name)
        self.client = backend_client(
            cfg, creds, self.name, {"Content-Type": "application/json"}, max_connections
        )
        self.flavor = "unknown"
        self.pit_id: str | None = None
        #: Which PIT API answered: ``_pit`` (Elasticsearch) or ``_search/point_in_time``.
        self.pit_kind = ""
        self._pit_lock = threading.Lock()
        self.stats = PageStats()
        self.notes: list[str] = []

    # -- setup ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Learn whether this is Elasticsearch or OpenSearch, then open a point in time."""
        resp = request(self.client, self.name, "GET", "/")
        if resp.status_code in (401, 403):
            raise BackendError(self.name, http_reason(resp))
        if resp.status_code == 200:
            try:
                version = resp.json().get("version", {})
            except ValueError:
                version = {}
            dist = version.get("distribution", "") if isinstance(version, dict) else ""
            self.flavor = "opensearch" if dist == "opensearch" else "elasticsearch"
        if self.cfg.pit:
            self._open_pit()

    def _index_path(self) -> str:
        return "/" + quote(self.cfg.index, safe=",*")

    def _open_pit(self) -> None:
        params = {"keep_alive": self.cfg.keep_alive}
        tries = (
            [("_search/point_in_time", "pit_id"), ("_pit", "id")]
            if self.flavor == "opensearch"
            else [("_pit", "id"), ("_search/point_in_time", "pit_id")]
        )
        for suffix, key in tries:
            resp = request(
                self.client, self.name, "POST", f"{self._index_path()}/{suffix}", params=params
            )
            if resp.status_code == 200:
                try:
                    pit = resp.json().get(key)
                except ValueError:
                    pit = None
                if isinstance(pit, str) and pit:
                    self.pit_id = pit
                    self.pit_kind = suffix
                    return
            if resp.status_code in (401, 403):
                raise BackendError(self.name, http_reason(resp))
            if resp.status_code == 404 and "index_not_found" in resp.text:
                break
        self.notes.append(
            f"{self.name}: no point in time available; paging on a timestamp cursor without "
            "a snapshot (lines written meanwhile may appear)"
        )

    def close(self) -> None:
        if self.pit_id is not None:
            try:
                if self.pit_kind == "_pit":
                    self.client.request(
                        "DELETE", "/_pit", content=orjson.dumps({"id": self.pit_id})
                    )
                else:
                    self.client.request(
                        "DELETE",
                        "/_search/point_in_time",
                        content=orjson.dumps({"pit_id": [self.pit_id]}),
                    )
            except Exception:
                pass
        self.client.close()

    # -- searching --------------------------------------------------------------------------

    def tasks(self, window: Window) -> list[Callable[[], list[Entry]]]:
        """One task per shard of the window; shards share the point in time."""
        return [functools.partial(self.search, s) for s in window.shards(self.cfg.shard_ns())]

    def uses_search_after(self) -> bool:
        """``search_after`` needs a total sort: ``_shard_doc`` exists only in an Elasticsearch
        PIT; otherwise only a configured unique field will do."""
        if self.cfg.tiebreaker != "auto":
            return True
        return self.pit_id is not None and self.pit_kind == "_pit"

    def sort(self) -> list[Any]:
        # numeric_type=date: sort values are epoch milliseconds for date and date_nanos alike.
        # unmapped_type: indices of the pattern without the field must not fail the search.
        ts = {
            self.cfg.timestamp_field: {
                "order": "asc",
                "numeric_type": "date",
                "unmapped_type": "date",
            }
        }
        if not self.uses_search_after():
            return [ts]
        if self.cfg.tiebreaker == "auto":
            return [ts, {"_shard_doc": "asc"}]
        return [ts, {self.cfg.tiebreaker: "asc"}]

    def query(
        self, window: Window, since_ms: int | None = None, exclude: Iterable[str] = ()
    ) -> dict[str, Any]:
        start: Any = format_ns(window.start_ns - window.start_ns % 1_000_000, 3)
        if since_ms is not None:
            start = since_ms
        bool_q: dict[str, Any] = {
            "filter": [
                {"term": {self.cfg.trace_field: self.trace_id}},
                {
                    "range": {
                        self.cfg.timestamp_field: {
                            # Milliseconds: every date field parses them; shards meet exactly.
                            "gte": start,
                            "lt": format_ns(window.end_ns - window.end_ns % 1_000_000, 3),
                            "format": "strict_date_optional_time||epoch_millis",
                        }
                    }
                },
            ]
        }
        ids = sorted(exclude)
        if ids:
            bool_q["must_not"] = [{"ids": {"values": ids}}]
        return {"bool": bool_q}

    def search(self, window: Window) -> list[Entry]:
        """Every hit in ``window``.

        With a total sort, pages follow each other with ``search_after``. Without one, a cursor
        on the timestamp does the same job: the next page asks for ``timestamp >= last`` minus
        the documents already returned at ``last`` (by ``_id``), so ties at a page border are
        neither lost nor repeated, and a page made only of ties still moves forward.
        """
        body: dict[str, Any] = {
            "size": self.cfg.page_size,
            "query": self.query(window),
            "sort": self.sort(),
            "track_total_hits": False,
        }
        after = self.uses_search_after()
        cursor: int | None = None
        seen_at_cursor: set[str] = set()
        out: list[Entry] = []
        while True:
            hits = self._page(body)
            for hit in hits:
                e = self._entry(hit)
                if e is not None:
                    out.append(e)
            if len(hits) < self.cfg.page_size:
                return out
            sort_values = hits[-1].get("sort")
            if not sort_values:
                raise BackendError(self.name, "hits carry no sort values; cannot page")
            if after:
                body["search_after"] = sort_values
                continue
            last = int(sort_values[0])
            at_last = {str(h.get("_id")) for h in hits if h.get("sort", [None])[0] == last}
            if last == cursor and at_last <= seen_at_cursor:
                # The server ignored the exclusion: stop rather than loop forever.
                raise BackendError(self.name, "paging made no progress (ids filter ignored?)")
            seen_at_cursor = seen_at_cursor | at_last if last == cursor else at_last
            cursor = last
            body["query"] = self.query(window, cursor, seen_at_cursor)

    def _page(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        if self.pit_id is not None:
            with self._pit_lock:
                body["pit"] = {"id": self.pit_id, "keep_alive": self.cfg.keep_alive}
            path = "/_search"
        else:
            path = f"{self._index_path()}/_search"
        resp = request(self.client, self.name, "POST", path, content=orjson.dumps(body))
        if resp.status_code == 404 and self.pit_id is None and "index_not_found" in resp.text:
            return []
        if resp.status_code != 200:
            raise BackendError(self.name, http_reason(resp))
        try:
            data = resp.json()
            hits: list[dict[str, Any]] = data["hits"]["hits"]
        except (ValueError, KeyError, TypeError):
            raise BackendError(self.name, "unexpected _search response") from None
        self.stats.add(len(hits))
        new_pit = data.get("pit_id")
        if isinstance(new_pit, str) and new_pit and self.pit_id is not None:
            # Always use the most recent PIT id (Elasticsearch may return a new one).
            with self._pit_lock:
                self.pit_id = new_pit
        return hits

    def _entry(self, hit: dict[str, Any]) -> Entry | None:
        src = hit.get("_source")
        if not isinstance(src, dict):
            return None
        fallback = _ts_ns(src.get(self.cfg.timestamp_field))
        labels = {"trace_id": self.trace_id}
        return entry_from_line(
            orjson.dumps(src),
            f"elasticsearch:{hit.get('_index', '?')}",
            self.trace_id,
            fallback_ts_ns=fallback,
            labels=labels,
        )


def _ts_ns(value: Any) -> int | None:
    """``@timestamp`` as RFC 3339 text or epoch milliseconds -> unix ns."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value * 1_000_000)
    if isinstance(value, str):
        try:
            return timestamp_ns(value)
        except ValueError:
            return None
    return None
