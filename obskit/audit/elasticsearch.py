"""Lines per service and minute in Elasticsearch / OpenSearch: a ``date_histogram`` per
service.

First one ``terms`` aggregation over the whole window lists the services (and proves there
are not too many); then, per piece of the window::

    {"size": 0, "track_total_hits": false,
     "query": {"bool": {"filter": [{"range": {"@timestamp": {"gte": <ms>, "lt": <ms>,
                                                              "format": "epoch_millis"}}}]}},
     "aggs": {"services": {"terms": {"field": "service", "size": <n>},
                           "aggs": {"minutes": {"date_histogram": {
                               "field": "@timestamp", "fixed_interval": "1m",
                               "min_doc_count": 1}}}}}}

on the index pattern the sink writes (``logs-*`` by default). A piece is as long as keeps the
response under 10,000 buckets (``search.max_buckets`` is 65,536 on Elasticsearch 8 and
OpenSearch, 10,000 on older clusters) and at most a day; a cluster with a lower limit answers
``too_many_buckets_exception`` (400, or 503 before Elasticsearch 8.8) and the piece is halved.
A ``service`` field mapped as ``text`` (dynamic mapping without ``es-setup``: OpenSearch, or
Elasticsearch without the ``logs-*-*`` template) cannot be aggregated; its ``.keyword``
sub-field is used instead.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final
from urllib.parse import quote

import orjson

from obskit._http import display_url
from obskit.audit.buckets import MINUTE_NS, BackendCounts, BucketRange
from obskit.trace.config import ElasticsearchConfig, credentials
from obskit.trace.http import backend_client, http_reason, request
from obskit.trace.model import BackendError

DAY_NS: Final = 86_400 * 1_000_000_000
#: Buckets one response may hold (services + services x minutes).
BUCKET_BUDGET: Final = 10_000
#: More services than this in one window cannot be listed by one terms aggregation.
MAX_SERVICES: Final = 5_000
#: Fields the sink fills with where a line came from (``enrich``): ``--instance`` matches either.
INSTANCE_FIELDS: Final = ("pod", "host")
_MS: Final = 1_000_000


class _TooManyBuckets(Exception):
    pass


class _TextField(Exception):
    pass


class ElasticsearchCounter:
    """Counts documents per (service, minute) in one Elasticsearch or OpenSearch cluster."""

    def __init__(
        self,
        cfg: ElasticsearchConfig,
        *,
        services: tuple[str, ...] = (),
        instance: str | None = None,
        service_field: str = "service",
        concurrency: int = 4,
        shard_ns: int = DAY_NS,
    ) -> None:
        self.cfg = cfg
        self.services = services
        self.instance = instance
        self.field = service_field
        self.concurrency = concurrency
        self.shard_ns = shard_ns
        self.name = f"elasticsearch {display_url(cfg.url)}"
        creds = credentials(cfg, "ES", self.name)
        self.client = backend_client(
            cfg, creds, self.name, {"Content-Type": "application/json"}, concurrency
        )
        self._lock = threading.Lock()

    # -- requests ---------------------------------------------------------------------------

    def _filters(self, rng: BucketRange) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "range": {
                    self.cfg.timestamp_field: {
                        "gte": rng.first // _MS,
                        "lt": rng.end // _MS,
                        "format": "epoch_millis",
                    }
                }
            }
        ]
        if self.services:
            out.append({"terms": {self.field: sorted(self.services)}})
        if self.instance is not None:
            # term on the field and on its .keyword sub-field: one of them is a keyword in
            # any mapping; a term on an unmapped field matches nothing (no error).
            should = [
                {"term": {f: self.instance}}
                for base in INSTANCE_FIELDS
                for f in (base, base + ".keyword")
            ]
            out.append({"bool": {"should": should, "minimum_should_match": 1}})
        return out

    def body(self, rng: BucketRange, size: int, histogram: bool) -> dict[str, Any]:
        """The search body for one piece (``histogram=False``: the services only)."""
        terms: dict[str, Any] = {"terms": {"field": self.field, "size": size}}
        if histogram:
            terms["aggs"] = {
                "minutes": {
                    "date_histogram": {
                        "field": self.cfg.timestamp_field,
                        "fixed_interval": "1m",
                        "min_doc_count": 1,
                    }
                }
            }
        return {
            "size": 0,
            "track_total_hits": False,
            "query": {"bool": {"filter": self._filters(rng)}},
            "aggs": {"services": terms},
        }

    def _search(self, out: BackendCounts, body: dict[str, Any]) -> dict[str, Any] | None:
        path = "/" + quote(self.cfg.index, safe=",*") + "/_search"
        resp = request(self.client, self.name, "POST", path, content=orjson.dumps(body))
        out.request_made()
        text = resp.text
        if resp.status_code == 404 and "index_not_found" in text:
            return None
        if resp.status_code in (400, 500, 503) and "too_many_buckets" in text:
            raise _TooManyBuckets(http_reason(resp))
        if resp.status_code == 400 and (
            "Text fields are not optimised" in text or "Fielddata is disabled" in text
        ):
            raise _TextField()
        if resp.status_code != 200:
            raise BackendError(self.name, http_reason(resp))
        try:
            data = resp.json()
            agg = data["aggregations"]["services"]
        except (ValueError, KeyError, TypeError):
            raise BackendError(self.name, "unexpected _search answer (no aggregations)") from None
        if not isinstance(agg, dict) or not isinstance(agg.get("buckets"), list):
            raise BackendError(self.name, "unexpected terms aggregation answer")
        return agg

    def _agg(self, out: BackendCounts, rng: BucketRange, size: int, hist: bool) -> Any:
        try:
            return self._search(out, self.body(rng, size, hist))
        except _TextField:
            with self._lock:
                if self.field.endswith(".keyword"):
                    raise BackendError(
                        self.name, f"{self.field} cannot be aggregated (not a keyword field)"
                    ) from None
                self.field += ".keyword"
            out.note(
                f"{self.name}: service is a text field (es-setup not run?); counted on {self.field}"
            )
            return self._search(out, self.body(rng, size, hist))

    # -- counting ---------------------------------------------------------------------------

    def count(self, rng: BucketRange) -> BackendCounts:
        """Documents per (service, minute) for every bucket of ``rng`` (``Edges.RIGHT_OPEN``)."""
        out = BackendCounts(self.name)
        try:
            agg = self._agg(out, rng, MAX_SERVICES + 1, False)
            if agg is None:
                out.note(f"{self.name}: no index matches {self.cfg.index}")
                return out
            if len(agg["buckets"]) > MAX_SERVICES or agg.get("sum_other_doc_count"):
                raise BackendError(
                    self.name,
                    f"more than {MAX_SERVICES} services in the window; audit fewer with --service",
                )
            n = len(agg["buckets"])
            if n == 0:
                return out
            minutes = max(1, min(self.shard_ns // MINUTE_NS, (BUCKET_BUDGET - n) // n))
            pieces = rng.split(minutes, align_ns=DAY_NS)
            out.info.append(
                f"index {self.cfg.index}, terms on {self.field} + date_histogram "
                f"on {self.cfg.timestamp_field} (1m); {n} services, {len(pieces)} piece(s) "
                f"of at most {minutes} minutes"
            )
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="audit-es") as pool:
                for _ in pool.map(functools.partial(self._piece, out, n), pieces):
                    pass
        finally:
            self.client.close()
        return out

    def _piece(self, out: BackendCounts, services: int, piece: BucketRange) -> None:
        # A margin over the services known: one that first appears meanwhile must not push
        # another out of a terms aggregation sized to the count.
        size = services + 10
        for _ in range(8):
            try:
                agg = self._agg(out, piece, size, True)
            except _TooManyBuckets as exc:
                if piece.minutes == 1:
                    raise BackendError(self.name, str(exc)) from None
                out.note(f"{self.name}: too many buckets for one search; pieces halved")
                half = (piece.minutes + 1) // 2
                for p in piece.split(half):
                    self._piece(out, services, p)
                return
            if agg is None:
                return
            if agg.get("sum_other_doc_count"):
                size *= 2
                continue
            self._add(out, agg, piece)
            return
        raise BackendError(self.name, "the services keep changing; try again")

    def _add(self, out: BackendCounts, agg: dict[str, Any], piece: BucketRange) -> None:
        try:
            for sb in agg["buckets"]:
                service = str(sb["key"])
                for mb in sb["minutes"]["buckets"]:
                    key = int(mb["key"]) * _MS
                    n = int(mb["doc_count"])
                    if key not in piece:
                        raise ValueError(f"bucket {mb.get('key_as_string', key)} outside")
                    if n:
                        out.add(service, key, n)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(self.name, f"unexpected date_histogram answer: {exc}") from None
