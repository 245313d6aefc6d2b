"""An in-process Grafana Loki for tests: the push and query APIs, Loki's validation and its
answers, with fault injection.

What it reproduces (grafana/loki 3.x, ``pkg/distributor/distributor.go``,
``pkg/distributor/validator.go``, ``pkg/validation/validate.go``, ``pkg/ingester/stream.go``
and ``instance.go``):

* ``POST /loki/api/v1/push``: protobuf + snappy (block format) or JSON (optionally gzip);
  ``X-Scope-OrgID`` (401 ``no org id`` when ``auth_enabled``); Loki 3's ``service_name``
  discovery; per-stream label validation and per-entry validation (too old, too new, line too
  long or truncated, structured metadata disallowed / too large / too many). The valid entries
  are written and the invalid ones reported in ONE 400 whose text is Loki's
  ``GroupedErrors``: every distinct message, ``"N errors like: <msg>"`` when there is more than
  one, joined by ``"; "``.
* The ingester stage: per stream, an entry older than ``newest - max_chunk_age/2`` is
  rejected ("entry too far behind"), answered as a 400 listing up to ``max_returned_errors``
  entries and ``total ignored: N out of M``. Loki's ingester keeps only the LAST stream's
  error of a push (``appendErr`` is overwritten per stream), and when it fails the
  distributor returns it instead of the validation errors; both quirks are reproduced.
* Exact duplicates (same stream, timestamp and line) are dropped only while the first copy is
  still in the stream's head block (``head_block_bytes``); later copies are stored: Loki's
  "partial" deduplication. Both outcomes are counted.
* Ingestion rate limit per tenant (token bucket) -> 429 with Loki's text.
* ``POST /otlp/v1/logs``: OTLP/HTTP logs mapped to streams as Loki 3 does
  (:mod:`.loki_otlp`), then validated and stored like a push; answers 204, or the error with
  a protobuf ``google.rpc.Status`` body (500 turned into 503), as Loki's ``OTLPError`` does.
* ``GET/POST /loki/api/v1/query_range`` with the LogQL subset of :mod:`.loki_logql`,
  ``limit`` / ``max_entries_limit_per_query``, ``max_query_length``, ``direction`` and both
  result shapes (labels folded, or ``categorize-labels``). ``/loki/api/v1/query`` answers a
  log query with Loki 3's 400 (log queries are range-only).
* Metric queries (``sum by (service) (count_over_time({...}[1m]))``): a ``matrix`` result
  evaluated with Loki's range semantics (``(t - range, t]`` at every step), ``step``, the
  11,000 points limit, ``max_query_series``, and optionally the results cache (bypassed with
  ``Cache-Control: no-cache``). ``GET /loki/api/v1/label/<name>/values``.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import cramjam

from . import loki_logql
from .faults import FaultInjection, serve_fault
from .loki_wire import (
    DecodeError,
    LabelParseError,
    Stream,
    decode_json,
    decode_protobuf,
    go_duration,
    go_time_string,
    labels_string,
    parse_duration,
    parse_labels,
    parse_time_param,
    rfc3339,
)
from .served import HTTPError, Served, serve_cli

HOUR = 3600 * 10**9
MIB = 1024 * 1024

DISCOVER_SERVICE_NAME = (
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
)


@dataclass
class Limits:
    """Loki's per-tenant limits with Loki's defaults (except the rate limit: off unless set)."""

    auth_enabled: bool = False
    max_label_names_per_series: int = 15
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    max_line_size: int = 256 * 1024
    max_line_size_truncate: bool = False
    reject_old_samples: bool = True
    reject_old_samples_max_age: int = 7 * 24 * HOUR
    creation_grace_period: int = 10 * 60 * 10**9
    max_chunk_age: int = 2 * HOUR  # out-of-order window is half of it
    allow_structured_metadata: bool = True
    max_structured_metadata_size: int = 64 * 1024
    max_structured_metadata_entries_count: int = 128
    ingestion_rate_bytes: float | None = None  # Loki's default is 4 MB/s
    ingestion_burst_bytes: int = 6 * MIB
    max_entries_limit_per_query: int = 5000
    max_query_length: int = 721 * HOUR
    discover_service_name: tuple[str, ...] = DISCOVER_SERVICE_NAME
    max_returned_errors: int = 10
    head_block_bytes: int = 256 * 1024
    max_recv_msg_size: int = 100 * MIB
    max_query_series: int = 500
    #: Keep metric query results and answer a repeated query from them (Loki's results
    #: cache), unless the request says ``Cache-Control: no-cache``. Off by default.
    results_cache: bool = False


@dataclass
class StoredEntry:
    tenant: str
    labels: dict[str, str]
    ts: int
    line: str
    sm: dict[str, str]


@dataclass
class _Stream:
    labels: dict[str, str]
    key: str
    entries: list[tuple[int, int, str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    highest: int = -1
    count: int = 0
    # Exact-duplicate detection by hash of (timestamp, line): the head block (recent bytes,
    # evicted in order) and everything ever stored (to count stored duplicates).
    head: dict[int, int] = field(default_factory=dict)
    head_order: deque[tuple[int, int]] = field(default_factory=deque)
    seen: set[int] = field(default_factory=set)
    cum: int = 0


@dataclass
class Counters:
    requests: int = 0
    push_requests: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates_stored: int = 0
    duplicates_dropped: int = 0
    faults_served: int = 0
    query_requests: int = 0
    metric_queries: int = 0
    cache_hits: int = 0


class LokiReceiver(Served, FaultInjection):
    """The server. Use as a context manager or ``start()``/``stop()``; ``url`` is its base."""

    def __init__(self, limits: Limits | None = None, *, store: str = "full") -> None:
        self.limits = limits or Limits()
        self.store = store  # "full" keeps entries; "count" only counts (benchmarks)
        self.counters = Counters()
        self.lock = threading.RLock()
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._seq = 0
        self._init_faults()
        self._init_server()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._results_cache: dict[tuple[str, str, int, int, int], dict[str, Any]] = {}
        self.now_ns: Any = time.time_ns  # tests may pin the clock

    # --- inspection ------------------------------------------------------------------------
    def entries(self, tenant: str | None = None) -> list[StoredEntry]:
        """Every stored entry in arrival order."""
        with self.lock:
            rows = []
            for (ten, _), s in self._streams.items():
                if tenant is not None and ten != tenant:
                    continue
                rows += [(seq, ten, s, ts, line, sm) for ts, seq, line, sm in s.entries]
            rows.sort(key=lambda r: r[0])
            return [
                StoredEntry(t, dict(s.labels), ts, ln, dict(sm)) for _, t, s, ts, ln, sm in rows
            ]

    def lines(self, tenant: str | None = None) -> list[str]:
        return [e.line for e in self.entries(tenant)]

    def delete(self, pred: Any, tenant: str | None = None) -> int:
        """Remove the stored entries for which ``pred(StoredEntry)`` is true (a test's way
        to make lines go missing); returns how many."""
        gone = 0
        with self.lock:
            for (ten, _), s in self._streams.items():
                if tenant is not None and ten != tenant:
                    continue
                keep = []
                for item in s.entries:
                    ts, _seq, line, sm = item
                    if pred(StoredEntry(ten, dict(s.labels), ts, line, dict(sm))):
                        gone += 1
                    else:
                        keep.append(item)
                s.entries = keep
        return gone

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(vars(self.counters))

    def wait_for(self, accepted: int, timeout: float = 10.0) -> bool:
        """Wait until ``accepted`` entries are stored (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.counters.accepted >= accepted:
                return True
            time.sleep(0.01)
        return False

    # --- push ------------------------------------------------------------------------------
    def handle_push(self, tenant: str, body: bytes, ctype: str, cenc: str) -> tuple[int, str]:
        lim = self.limits
        try:
            if ctype.startswith("application/json"):
                if cenc == "gzip":
                    body = gzip.decompress(body)
                streams = decode_json(body)
            else:
                try:
                    raw = bytes(cramjam.snappy.decompress_raw(body))
                except Exception as exc:
                    raise DecodeError(f"snappy: corrupt input ({exc})") from exc
                if len(raw) > lim.max_recv_msg_size:
                    return 413, (
                        f"request body too large: {len(raw)} bytes, limit: "
                        f"{lim.max_recv_msg_size} bytes"
                    )
                streams = decode_protobuf(raw)
        except (DecodeError, OSError, EOFError) as exc:
            return 400, str(exc)
        return self.ingest(tenant, streams)

    def handle_otlp(self, tenant: str, body: bytes, ctype: str, cenc: str) -> tuple[int, str]:
        """``POST /otlp/v1/logs``: OTLP/HTTP mapped to streams as Loki does
        (:mod:`.loki_otlp`), then validated and stored like a push."""
        from . import loki_otlp
        from .otlp import decode_request

        if cenc not in ("", "gzip"):
            return (
                400,
                f"unsupported content encoding {cenc}: only gzip, lz4 and zstd are supported",
            )
        if ctype not in ("application/x-protobuf", "application/json"):
            return 400, f"content type: {ctype} is not supported"
        try:
            streams = loki_otlp.to_streams(decode_request(body, ctype, cenc))
        except HTTPError as exc:  # what the OTLP decoder refuses
            return 400, exc.text
        except ValueError as exc:
            return 400, f"symbolizer lookup: {exc}"
        if not streams:
            return 204, ""
        return self.ingest(tenant, streams)

    def ingest(self, tenant: str, streams: list[Stream]) -> tuple[int, str]:
        """Validate and store decoded streams: Loki's distributor and ingester."""
        lim = self.limits
        for st in streams:
            # Loki 3's push parser parses every stream's labels first (to add service_name);
            # one unparsable selector fails the whole request.
            try:
                parse_labels(st.labels)
            except LabelParseError as exc:
                return 400, f"couldn't parse labels: {exc}"
        if not streams:
            return 422, "error at least one valid stream is required for ingestion"
        now = self.now_ns()
        errors: list[str] = []
        valid: list[tuple[dict[str, str], str, list[Any]]] = []
        size = 0
        for st in streams:
            if not st.entries:
                continue
            if lim.max_line_size_truncate and lim.max_line_size:
                for e in st.entries:
                    if len(e.line.encode()) > lim.max_line_size:
                        e.line = e.line.encode()[: lim.max_line_size].decode(errors="ignore")
            try:
                lbls, text = self._stream_labels(st)
            except HTTPError as exc:
                errors.append(exc.text)
                self.counters.rejected += len(st.entries)
                continue
            good = []
            for e in st.entries:
                err = self._validate_entry(text, e, now)
                if err:
                    errors.append(err)
                    self.counters.rejected += 1
                else:
                    good.append(e)
                    size += len(e.line.encode()) + sum(len(k) + len(v) for k, v in e.sm)
            if good:
                valid.append((lbls, text, good))
        validation_err = _grouped(errors) if errors else None
        if not valid:
            return (400, validation_err) if validation_err else (204, "")
        if lim.ingestion_rate_bytes is not None and not self._allow(tenant, size, now):
            n = sum(len(g) for _, _, g in valid)
            self.counters.rejected += n
            return 429, (
                f"Ingestion rate limit exceeded for user {tenant} (limit: "
                f"{int(lim.ingestion_rate_bytes)} bytes/sec) while attempting to ingest '{n}' "
                f"lines totaling '{size}' bytes, reduce log volume or contact your Loki "
                "administrator to see if the limit can be increased"
            )
        append_err: str | None = None
        with self.lock:
            for lbls, text, good in valid:
                append_err = self._ingest(tenant, lbls, text, good)
        if append_err is not None:
            return 400, append_err
        return (400, validation_err) if validation_err else (204, "")

    def _stream_labels(self, st: Stream) -> tuple[dict[str, str], str]:
        lim = self.limits
        pairs = parse_labels(st.labels)  # checked for the whole request in handle_push
        if not pairs:
            raise HTTPError(400, "error at least one label pair is required per stream")
        names = [k for k, _ in pairs]
        lbls = dict(pairs)
        shown = st.labels
        if "service_name" not in lbls and lim.discover_service_name:
            # Loki's push parser adds service_name and re-serialises the labels.
            found = next((lbls[k] for k in lim.discover_service_name if lbls.get(k)), None)
            lbls["service_name"] = found or "unknown_service"
            names.append("service_name")
            if len(lbls) == len(names):
                shown = labels_string(lbls)
        count = len(names) - (1 if "service_name" in lbls else 0)
        if count > lim.max_label_names_per_series:
            raise HTTPError(
                400,
                f"entry for stream '{shown}' has {count} label names; limit "
                f"{lim.max_label_names_per_series}",
            )
        last = ""
        for name in sorted(names):
            if len(name) > lim.max_label_name_length:
                raise HTTPError(400, f"stream '{shown}' has label name too long: '{name}'")
            if len(lbls[name]) > lim.max_label_value_length:
                raise HTTPError(400, f"stream '{shown}' has label value too long: '{lbls[name]}'")
            if name == last:
                raise HTTPError(400, f"stream '{shown}' has duplicate label name: '{name}'")
            last = name
        return lbls, labels_string(lbls)

    def _validate_entry(self, stream: str, e: Any, now: int) -> str | None:
        lim = self.limits
        oldest = now - lim.reject_old_samples_max_age
        if lim.reject_old_samples and e.ts < oldest:
            return (
                f"entry for stream '{stream}' has timestamp too old: {rfc3339(e.ts)}, "
                f"oldest acceptable timestamp is: {rfc3339(oldest)}"
            )
        if e.ts > now + lim.creation_grace_period:
            return f"entry for stream '{stream}' has timestamp too new: {rfc3339(e.ts)}"
        n = len(e.line.encode())
        if lim.max_line_size and n > lim.max_line_size:
            return (
                f"Max entry size '{lim.max_line_size}' bytes exceeded for stream '{stream}' "
                f"while adding an entry with length '{n}' bytes"
            )
        if e.sm:
            if not lim.allow_structured_metadata:
                return (
                    f"stream '{stream}' includes structured metadata, but this feature is "
                    "disallowed. Please see `limits_config.allow_structured_metadata` or "
                    "contact your Loki administrator to enable it."
                )
            sm_size = sum(len(k) + len(v) for k, v in e.sm)
            if lim.max_structured_metadata_size and sm_size > lim.max_structured_metadata_size:
                return (
                    f"stream '{stream}' has structured metadata too large: '{sm_size}' bytes, "
                    f"limit: '{lim.max_structured_metadata_size}' bytes. Please see "
                    "`limits_config.max_structured_metadata_size` or contact your Loki "
                    "administrator to increase it."
                )
            cnt = lim.max_structured_metadata_entries_count
            if cnt and len(e.sm) > cnt:
                return (
                    f"stream '{stream}' has too many structured metadata labels: "
                    f"'{len(e.sm)}', limit: '{cnt}'. Please see "
                    "`limits_config.max_structured_metadata_entries_count` or contact your "
                    "Loki administrator to increase it."
                )
        return None

    def _allow(self, tenant: str, size: int, now: int) -> bool:
        rate = self.limits.ingestion_rate_bytes or 0.0
        burst = float(self.limits.ingestion_burst_bytes)
        with self.lock:
            tokens, last = self._buckets.get(tenant, (burst, now / 1e9))
            tokens = min(burst, tokens + (now / 1e9 - last) * rate)
            ok = size <= tokens
            self._buckets[tenant] = (tokens - size if ok else tokens, now / 1e9)
            return ok

    def _ingest(self, tenant: str, lbls: dict[str, str], text: str, good: list[Any]) -> str | None:
        s = self._streams.get((tenant, text))
        if s is None:
            s = self._streams[(tenant, text)] = _Stream(lbls, text)
        half = self.limits.max_chunk_age // 2
        failed: list[tuple[int, str]] = []
        full = self.store == "full"
        for e in good:
            if s.highest >= 0 and e.ts < s.highest - half:
                cutoff = s.highest - half
                failed.append(
                    (
                        e.ts,
                        "entry too far behind, entry timestamp is: "
                        f"{rfc3339(e.ts)}, oldest acceptable timestamp is: {rfc3339(cutoff)}",
                    )
                )
                continue
            n = len(e.line) + 16
            if full:
                window = self.limits.head_block_bytes
                while s.head_order and s.cum - s.head_order[0][1] >= window:
                    old, at = s.head_order.popleft()
                    if s.head.get(old) == at:
                        del s.head[old]
                key = hash((e.ts, e.line))
                if key in s.head:
                    self.counters.duplicates_dropped += 1
                    continue
                if key in s.seen:
                    self.counters.duplicates_stored += 1
                s.seen.add(key)
                s.head[key] = s.cum
                s.head_order.append((key, s.cum))
                self._seq += 1
                item = (e.ts, self._seq, e.line, tuple(e.sm) if e.sm else ())
                # Kept sorted by time (then arrival) so queries can bisect a time range.
                if not s.entries or e.ts >= s.entries[-1][0]:
                    s.entries.append(item)
                else:
                    bisect.insort(s.entries, item)
            s.cum += n
            s.count += 1
            s.highest = max(s.highest, e.ts)
            self.counters.accepted += 1
        if not failed:
            return None
        self.counters.rejected += len(failed)
        buf = "".join(
            f"entry with timestamp {go_time_string(ts)} ignored, reason: '{why}',\n"
            for ts, why in failed[: self.limits.max_returned_errors or None]
        )
        return (
            f"{buf}user '{tenant}', total ignored: {len(failed)} out of {len(good)} "
            f"for stream: {text}"
        )

    # --- query -----------------------------------------------------------------------------
    def handle_query_range(
        self, tenant: str, params: dict[str, str], categorize: bool, no_cache: bool = False
    ) -> dict[str, Any]:
        lim = self.limits
        if "query" not in params:
            raise HTTPError(400, "query parameter is required")
        try:
            expr = loki_logql.parse_expr(params["query"])
        except loki_logql.LogQLError as exc:
            raise HTTPError(400, str(exc)) from exc
        now = self.now_ns()
        try:
            end = parse_time_param(params["end"]) if "end" in params else now
            if "start" in params:
                start = parse_time_param(params["start"])
            else:
                start = end - (parse_duration(params["since"]) if "since" in params else HOUR)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from exc
        if end < start:
            raise HTTPError(400, "end timestamp must not be before or equal to start time")
        limit = int(params.get("limit", "100") or 100)
        if limit <= 0:
            raise HTTPError(400, "limit must be a positive value")
        if limit > lim.max_entries_limit_per_query:
            raise HTTPError(
                400,
                "max entries limit per query exceeded, limit > max_entries_limit "
                f"({limit} > {lim.max_entries_limit_per_query})",
            )
        if end - start > lim.max_query_length:
            raise HTTPError(
                400,
                f"the query time range exceeds the limit (query length: "
                f"{go_duration(end - start)}, limit: {model_duration(lim.max_query_length)})",
            )
        if not isinstance(expr, loki_logql.Query):
            return self._metric_query(tenant, expr, params, start, end, no_cache)
        q = expr
        direction = params.get("direction", "backward").lower()
        if direction not in ("forward", "backward"):
            raise HTTPError(400, f"invalid direction '{direction}'")
        hits: list[tuple[int, str, int, str, dict[str, str], dict[str, str], dict[str, str]]] = []
        with self.lock:
            for (ten, key), s in self._streams.items():
                if ten != tenant or not q.stream_matches(s.labels):
                    continue
                ents = s.entries
                lo, hi = bisect.bisect_left(ents, (start,)), bisect.bisect_left(ents, (end,))
                for ts, seq, line, sm_t in ents[lo:hi]:
                    sm = dict(sm_t)
                    ok, parsed = q.run(line, s.labels, sm)
                    if ok:
                        hits.append((ts, key, seq, line, s.labels, sm, parsed))
        hits.sort(key=lambda h: (h[0], h[1], h[2]), reverse=direction == "backward")
        hits = hits[:limit]
        result: dict[str, dict[str, Any]] = {}
        for ts, _, _, line, labels, sm, parsed in hits:
            if categorize:
                skey = labels_string(labels)
                slot = result.setdefault(skey, {"stream": dict(labels), "values": []})
                extra: dict[str, Any] = {}
                if sm:
                    extra["structuredMetadata"] = sm
                if parsed:
                    extra["parsed"] = parsed
                # Loki writes the third element on every entry when categorizing, even empty.
                slot["values"].append([str(ts), line, extra])
            else:
                folded = {**labels, **sm, **parsed}
                skey = labels_string(folded)
                slot = result.setdefault(skey, {"stream": folded, "values": []})
                slot["values"].append([str(ts), line])
        data: dict[str, Any] = {
            "resultType": "streams",
            "result": list(result.values()),
            "stats": {"summary": {"totalEntriesReturned": len(hits)}},
        }
        if categorize:
            data["encodingFlags"] = ["categorize-labels"]
        return {"status": "success", "data": data}

    def _metric_query(
        self,
        tenant: str,
        expr: loki_logql.Metric,
        params: dict[str, str],
        start: int,
        end: int,
        no_cache: bool,
    ) -> dict[str, Any]:
        """A metric ``query_range`` (Loki's engine, ``pkg/logql/engine.go`` and
        ``pkg/loghttp/query.go``): matrix result, ``step`` validation, at most 11,000 points,
        ``max_query_series``; the results cache is bypassed by ``Cache-Control: no-cache``."""
        lim = self.limits
        if "step" in params:
            try:
                step = parse_duration(params["step"])
            except ValueError as exc:
                raise HTTPError(400, str(exc)) from exc
        else:
            # Loki's defaultQueryRangeStep: a 250th of the range, at least a second.
            step = max((end - start) // 10**9 // 250, 1) * 10**9
        if step <= 0:
            raise HTTPError(
                400,
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
            )
        if (end - start) // step > 11000:
            raise HTTPError(
                400,
                "exceeded maximum resolution of 11,000 points per time series. Try increasing "
                "the value of the step parameter",
            )
        cache_key = (tenant, params["query"], start, end, step)
        with self.lock:
            self.counters.metric_queries += 1
            if lim.results_cache and not no_cache and cache_key in self._results_cache:
                self.counters.cache_hits += 1
                return self._results_cache[cache_key]
            log_q = loki_logql.selector_of(expr)
            lo = start - loki_logql.range_of(expr)
            samples: list[loki_logql.Sample] = []
            for (ten, _), st in self._streams.items():
                if ten != tenant or not log_q.stream_matches(st.labels):
                    continue
                ents = st.entries
                # (start - range, end]: the engine fetches [lo, end + 1ns) and drops ts <= lo.
                a, b = bisect.bisect_left(ents, (lo + 1,)), bisect.bisect_left(ents, (end + 1,))
                for ts, _seq, line, sm_t in ents[a:b]:
                    sm = dict(sm_t)
                    ok, parsed = log_q.run(line, st.labels, sm)
                    if ok:
                        samples.append((ts, {**st.labels, **sm, **parsed}))
        series = loki_logql.evaluate(expr, samples, start, end, step)
        if len(series) > lim.max_query_series:
            raise HTTPError(
                400,
                f"maximum number of series ({lim.max_query_series}) reached for a single "
                "query; consider reducing query cardinality by adding more specific stream "
                "selectors, reducing the time range, or aggregating results with functions "
                "like sum(), count() or topk()",
            )
        result = [
            {
                "metric": dict(key),
                "values": [[_prom_time(t), _prom_value(v)] for t, v in sorted(pts.items())],
            }
            for key, pts in sorted(series.items())
        ]
        doc = {
            "status": "success",
            "data": {"resultType": "matrix", "result": result, "stats": {}},
        }
        if lim.results_cache and not no_cache:  # no-cache bypasses the cache both ways
            with self.lock:
                self._results_cache[cache_key] = doc
        return doc

    def label_values(self, tenant: str, name: str, params: dict[str, str]) -> dict[str, Any]:
        """``GET /loki/api/v1/label/<name>/values``: values of ``name`` in streams with entries
        in ``[start, end]`` (matching ``query`` when given)."""
        now = self.now_ns()
        try:
            end = parse_time_param(params["end"]) if "end" in params else now
            start = parse_time_param(params["start"]) if "start" in params else end - 6 * HOUR
            q = loki_logql.parse(params["query"]) if params.get("query") else None
        except (ValueError, loki_logql.LogQLError) as exc:
            raise HTTPError(400, str(exc)) from exc
        values: set[str] = set()
        with self.lock:
            for (ten, _), st in self._streams.items():
                if ten != tenant or name not in st.labels:
                    continue
                if q is not None and not q.stream_matches(st.labels):
                    continue
                a = bisect.bisect_left(st.entries, (start,))
                if a < len(st.entries) and st.entries[a][0] <= end:
                    values.add(st.labels[name])
        return {"status": "success", "data": sorted(values)}


def _prom_time(t_ns: int) -> int | float:
    """Prometheus ``model.Time`` in JSON: seconds, with milliseconds when not whole."""
    ms = t_ns // 10**6
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _prom_value(v: float) -> str:
    """Prometheus ``SampleValue.String()``: shortest decimal form (``12``, ``0.5``)."""
    return str(int(v)) if v == int(v) else repr(v)


def model_duration(ns: int) -> str:
    """Prometheus ``model.Duration.String()`` (how Loki prints limits): ``30d1h``, ``12h``,
    ``1w``; years and weeks only when they divide exactly."""
    ms = ns // 10**6
    if ms == 0:
        return "0s"
    out = ""
    for unit, mult, exact in (
        ("y", 365 * 86400_000, True),
        ("w", 7 * 86400_000, True),
        ("d", 86400_000, False),
        ("h", 3600_000, False),
        ("m", 60_000, False),
        ("s", 1000, False),
        ("ms", 1, False),
    ):
        if exact and ms % mult:
            continue
        v = ms // mult
        if v:
            out += f"{v}{unit}"
            ms -= v * mult
    return out


def _grouped(errors: list[str]) -> str:
    """Loki's ``util.GroupedErrors.Error()``: distinct messages with their counts."""
    counts: dict[str, int] = {}
    for e in errors:
        counts[e] = counts.get(e, 0) + 1
    many = len(counts) > 1
    return "; ".join(
        (f"{n} errors like: {msg}" if many or n > 1 else msg) for msg, n in counts.items()
    )


def _default_body(status: int) -> str:
    return {
        429: "Ingestion rate limit exceeded (injected)",
        500: "rpc error: code = Unknown desc = context deadline exceeded",
        502: "bad gateway",
        503: "Service Unavailable",
        504: "gateway timeout",
    }.get(status, "injected failure")


class _Handler(BaseHTTPRequestHandler):
    rx: LokiReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(
        self,
        status: int,
        body: bytes | str = b"",
        ctype: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        if status != 204 and data and not data.endswith(b"\n") and ctype.startswith("text/"):
            data += b"\n"
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)

    def _tenant(self) -> str | None:
        org = self.headers.get("X-Scope-OrgID")
        if self.rx.limits.auth_enabled:
            return org or None
        return org or "fake"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self._route(b"")

    def do_POST(self) -> None:
        self._route(self._body())

    def _route(self, body: bytes) -> None:
        rx = self.rx
        with rx.lock:
            rx.counters.requests += 1
        path, _, qs = self.path.partition("?")
        if path in ("/ready", "/loki/api/v1/status/buildinfo"):
            self._reply(200, "ready" if path == "/ready" else '{"version":"3.5.0"}')
            return
        tenant = self._tenant()
        if tenant is None:
            self._reply(401, "no org id")
            return
        if path == "/loki/api/v1/push" and self.command == "POST":
            self._push(tenant, body)
        elif path == "/otlp/v1/logs" and self.command == "POST":
            self._push(tenant, body, otlp=True)
        elif path in ("/loki/api/v1/query_range", "/loki/api/v1/query"):
            params = dict(urllib.parse.parse_qsl(qs))
            if self.command == "POST" and body:
                params.update(urllib.parse.parse_qsl(body.decode()))
            with rx.lock:
                rx.counters.query_requests += 1
            if path.endswith("/query"):
                self._reply(
                    400,
                    "log queries are not supported as an instant query type, please change "
                    "your query to a range query type",
                )
                return
            flags = self.headers.get("X-Loki-Response-Encoding-Flags", "")
            no_cache = self.headers.get("Cache-Control", "").strip().lower() == "no-cache"
            try:
                doc = rx.handle_query_range(tenant, params, "categorize-labels" in flags, no_cache)
            except HTTPError as exc:
                self._reply(exc.status, exc.text)
                return
            self._reply(200, json.dumps(doc), "application/json; charset=UTF-8")
        elif path.startswith("/loki/api/v1/label/") and path.endswith("/values"):
            name = urllib.parse.unquote(path[len("/loki/api/v1/label/") : -len("/values")])
            params = dict(urllib.parse.parse_qsl(qs))
            try:
                doc = rx.label_values(tenant, name, params)
            except HTTPError as exc:
                self._reply(exc.status, exc.text)
                return
            self._reply(200, json.dumps(doc), "application/json; charset=UTF-8")
        else:
            self._reply(404, "404 page not found")

    def _push(self, tenant: str, body: bytes, otlp: bool = False) -> None:
        rx = self.rx
        fault = rx.take_fault()
        with rx.lock:
            rx.counters.push_requests += 1
            if fault is not None:
                rx.counters.faults_served += 1
        ctype = self.headers.get("Content-Type", "application/x-protobuf")
        cenc = self.headers.get("Content-Encoding", "")
        status, text = 204, ""
        if fault is None or fault.store:
            handle = rx.handle_otlp if otlp else rx.handle_push
            status, text = handle(tenant, body, ctype.split(";")[0].strip(), cenc)
        reply = self._otlp_reply if otlp else self._reply
        if fault is None:
            reply(status, text)
            return
        serve_fault(
            self,
            fault,
            rx._stopping,
            lambda code, msg, hdrs: reply(
                code, msg if msg is not None else _default_body(code), headers=hdrs
            ),
            lambda: reply(status, text),
        )

    def _otlp_reply(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        """Loki's ``OTLPError``: 500 becomes 503 (retryable for OTLP clients), the body is a
        protobuf ``google.rpc.Status`` with the text, and (a quirk of Loki: the header is set
        after ``WriteHeader``) no Content-Type."""
        if status < 300:
            self._reply(204)
            return
        from .otlp import status_body

        data = status_body(text, False)
        self.send_response(503 if status == 500 else status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


LokiReceiver.handler = _Handler


@contextmanager
def running(limits: Limits | None = None, store: str = "full") -> Iterator[LokiReceiver]:
    """``with running() as loki: ...``: a receiver on 127.0.0.1 with an ephemeral port."""
    rx = LokiReceiver(limits, store=store).start()
    try:
        yield rx
    finally:
        rx.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.receivers.loki --port 0 --port-file F --store count [--accept-old]``."""

    def options(ap: argparse.ArgumentParser) -> None:
        ap.add_argument(
            "--accept-old",
            action="store_true",
            help="accept entries of any age (benchmarks replay a fixed corpus)",
        )

    def make(args: argparse.Namespace) -> LokiReceiver:
        old = Limits(reject_old_samples=False, max_chunk_age=10**6 * HOUR)
        return LokiReceiver(old if args.accept_old else None, store=args.store)

    return serve_cli(make, __doc__.splitlines()[0], argv, options)


if __name__ == "__main__":
    raise SystemExit(main())
