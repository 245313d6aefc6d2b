"""The Elasticsearch / OpenSearch sink: ``_bulk`` with ``create`` into data streams (or
indices), deterministic ids, and per-item retries.

Delivery: every line gets an ``_id`` derived from its file identity and byte offset
(:func:`sidecar.sinks.es_bulk.doc_id`), and is sent with ``op_type: create``. A line that
reaches Elasticsearch twice (a retry after a timeout whose request was in fact applied, a
restart that replays unacknowledged lines) is answered ``409 version_conflict_engine_exception``
the second time, which this sink counts as delivered. So delivery is at-least-once on the
wire and effectively-once in the index.

Per item: 2xx and 409 are delivered; 429 and 5xx are retried (only those items) with
exponential backoff; anything else (400 mapping/parse errors, 404...) is dead-lettered with
Elasticsearch's ``type: reason``. Per request: 413 splits the request in halves (a single
document too large is dead-lettered); 429, 5xx, 401/403/404 and network errors are retried
with backoff honouring ``Retry-After``; a 400 splits to isolate the culprit line. Retries never give
up (the engine's checkpoints wait); :attr:`Sink.stopping` interrupts them with
:class:`SinkStopped`.

No Elasticsearch client library: plain ``httpx``, so there is no product check and the same
code talks to Elasticsearch 7/8/9 and OpenSearch 1/2/3.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import ClassVar, Literal

import httpx
import msgspec

from obskit._durations import ByteSize, Duration
from obskit._http import (
    RETRYABLE_STATUS,
    AuthConfig,
    RetryConfig,
    TLSConfig,
    describe_error,
    display_url,
    retry_after,
)
from sidecar.config_convert import check, shown
from sidecar.sinks.base import Batch, cut_by_size
from sidecar.sinks.compress import gzip as _gzip
from sidecar.sinks.delivery import Outcome
from sidecar.sinks.es_bulk import (
    BulkResponseError,
    DocumentBuilder,
    TargetResolver,
    item_statuses,
    request_error,
)
from sidecar.sinks.http import HTTPSink

#: Request-level statuses retried as they are (credentials and permissions get fixed by an
#: operator; the lines are not at fault, so they must not be dead-lettered).
_RETRY_AS_IS = RETRYABLE_STATUS | {401, 403}


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``type: elasticsearch`` (or ``opensearch``) settings. See docs/elasticsearch.md."""

    #: Cluster address, e.g. ``https://es.example:9200`` (``url`` or ``urls`` is required).
    url: str | None = None
    #: More nodes of the same cluster; on a connection error the next one is tried.
    urls: list[str] = []
    #: Data stream name; ``{service}`` (as a dataset: ``-`` -> ``_``) and ``{namespace}``.
    data_stream: str = "logs-{service}-{namespace}"
    #: Data stream namespace (lower case, no ``-``), e.g. ``prod``.
    namespace: str = "default"
    #: Index mode (OpenSearch without data streams, older clusters): an index name, may use
    #: ``{service}``, ``{namespace}`` and strftime codes from the record's UTC time.
    index: str | None = None
    #: ``create`` (never overwrites: a resent line answers 409 and counts as delivered) or
    #: ``index`` (overwrites; index mode only).
    op_type: Literal["create", "index"] = "create"
    #: Ingest pipeline to run on every document (``?pipeline=``).
    pipeline: str | None = None
    #: Basic auth or API key, by reference (see ``sinks[].auth``).
    auth: AuthConfig | None = None
    #: CA bundle, client certificate (see ``sinks[].tls``).
    tls: TLSConfig | None = None
    #: Per request; a timed-out request is retried (ids make that safe).
    timeout: Duration = Duration(60.0)
    #: Compress request bodies (``Content-Encoding: gzip``).
    gzip: bool = True
    #: 1 (fastest) to 9 (smallest).
    gzip_level: int = 1
    #: Largest ``_bulk`` body before compression; larger batches are split.
    batch_max_bytes: ByteSize = ByteSize(2 * 1024 * 1024)
    #: Most documents per ``_bulk`` request.
    batch_max_docs: int = 10_000
    #: ``_bulk`` requests of one batch in flight at once (the next is encoded meanwhile).
    concurrency: int = 2
    #: Backoff between retries of 429s, 5xx and network errors (never gives up).
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    #: Extra HTTP headers on every request (e.g. for a proxy).
    headers: dict[str, str] = {}

    #: Accepted with a warning, ignored (see ``sidecar.config_convert``).
    deprecated_settings: ClassVar[dict[str, str]] = {
        "flavor": "it never changed anything (the sink speaks the API Elasticsearch and "
        "OpenSearch share; es-setup detects the flavour itself); remove it, a later "
        "release will refuse it"
    }

    def __post_init__(self) -> None:
        problems = []
        if not self.url and not self.urls:
            problems.append("url: give the cluster address (url or urls)")
        for u in self.endpoints:
            if not u.startswith(("http://", "https://")):
                problems.append(f"url: {shown(u)} must start with http:// or https://")
        ns = self.namespace
        if not ns or len(ns) > 100 or ns != ns.lower() or any(c in ns for c in '-\\/*?"<>| ,#:'):
            problems.append(
                "namespace: lower case, at most 100 characters, without '-' (the data stream "
                'naming scheme) or any of \\ / * ? " < > | , # : and spaces'
            )
        if self.batch_max_bytes < 1024:
            problems.append("batch_max_bytes: must be at least 1KiB")
        if not 1 <= self.concurrency <= 16:
            problems.append("concurrency: 1 to 16")
        if self.batch_max_docs < 1:
            problems.append("batch_max_docs: must be at least 1")
        if not 0 <= self.gzip_level <= 9:
            problems.append("gzip_level: 0-9")
        if self.timeout <= 0:
            problems.append("timeout: must be positive")
        target = self.index or self.data_stream
        try:
            target.format(service="s", dataset="s", namespace="n")
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(
                f"{'index' if self.index else 'data_stream'}: {target!r} may only use "
                f"{{service}}, {{dataset}} and {{namespace}} ({exc})"
            )
        if not self.index and self.op_type != "create":
            problems.append("op_type: data streams accept only create (or set index:)")
        if not self.index and "%" in self.data_stream:
            problems.append("data_stream: date codes belong in index mode (data streams roll over)")
        check(problems)

    @property
    def endpoints(self) -> list[str]:
        return [u.rstrip("/") for u in ([self.url] if self.url else []) + list(self.urls)]


def build(name: str, config: Config) -> ElasticsearchSink:
    """The sink for ``type: elasticsearch`` / ``type: opensearch``."""
    return ElasticsearchSink(name, config)


@dataclass
class _Ctx:
    """One batch's encoded items, built once (a retried item is not encoded again). ``None``
    marks a line the builder could not encode: its attempt raises again, and the delivery
    loop isolates it."""

    batch: Batch
    items: list[bytes | None]


class ElasticsearchSink(HTTPSink):
    """See the module docstring."""

    kind = "elasticsearch"

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        self.config = config
        self.concurrency = config.concurrency
        self._urls = itertools.cycle(config.endpoints)
        self._url = next(self._urls)
        self.data_stream_mode = config.index is None
        self._target = TargetResolver(config.index or config.data_stream, config.namespace)
        self._query = {"pipeline": config.pipeline} if config.pipeline else None
        self._headers = {"Content-Type": "application/x-ndjson", **config.headers}
        if config.gzip:
            self._headers["Content-Encoding"] = "gzip"
        #: Lines Elasticsearch already held (409 on create): delivered, not stored again.
        self.duplicates = 0
        self._lock = threading.Lock()
        self._ctx: _Ctx | None = None
        self._builder: DocumentBuilder | None = None

    # ------------------------------------------------------------------ lifecycle

    def client_headers(self) -> dict[str, str]:
        return self._headers

    def describe_target(self) -> str:
        return ", ".join(display_url(u) for u in self.config.endpoints)

    # ----------------------------------------------------------------------- plan

    def _builder_for(self, static: dict[str, str]) -> DocumentBuilder:
        b = self._builder
        if b is None or b.static != static:
            b = self._builder = DocumentBuilder(
                self._target,
                self.config.op_type,
                static,
                self.data_stream_mode,
                self.config.namespace,
            )
        return b

    def _context(self, batch: Batch) -> _Ctx:
        ctx = self._ctx
        if ctx is not None and ctx.batch is batch:
            return ctx
        builder = self._builder_for(batch.static)
        lines, records = batch.lines, batch.records
        items: list[bytes | None] = []
        for key, offsets, start in batch.keys_and_offsets():
            for n, off in enumerate(offsets):
                i = start + n
                try:
                    items.append(builder.item(lines[i], records[i], key, off))
                except Exception:  # encoded again in its attempt, which raises for isolation
                    items.append(None)
        ctx = self._ctx = _Ctx(batch, items)
        return ctx

    def parts(self, batch: Batch) -> list[list[int]]:
        """``_bulk`` requests bounded by bytes (before compression) and documents; a line
        that cannot be encoded goes alone (its attempt fails, and is isolated)."""
        items = self._context(batch).items
        return cut_by_size(items, self.config.batch_max_bytes, self.config.batch_max_docs)

    # -------------------------------------------------------------------- attempt

    def _body(self, batch: Batch, ctx: _Ctx, part: list[int]) -> bytes:
        items = ctx.items
        out = []
        for i in part:
            data = items[i]
            if data is None:
                ident = batch.line_id(i)
                data = self._builder_for(batch.static).item(
                    batch.lines[i], batch.records[i], ident.key, ident.offset
                )
            out.append(data)
        return b"".join(out)

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        """One ``_bulk`` request for ``part`` (see the module docstring for the rules)."""
        if self._client is None:
            self.start()
        assert self._client is not None
        ctx = self._context(batch)
        body = self._body(batch, ctx, part)
        wire = _gzip(body, self.config.gzip_level) if self.config.gzip else body
        url = self._url
        t0 = time.perf_counter()
        try:
            resp = self._client.post(url + "/_bulk", content=wire, params=self._query)
            content = resp.content
        except httpx.TransportError as exc:
            self.metrics.request(time.perf_counter() - t0, describe_error(exc))
            if not isinstance(exc, httpx.TimeoutException):
                self._url = next(self._urls)  # try the next node of the cluster
            raise
        status = resp.status_code
        self.metrics.request(time.perf_counter() - t0, str(status))
        if status == 200:
            try:
                statuses = item_statuses(content, len(part))
            except BulkResponseError as exc:
                return Outcome.transient(part, "bad_response", str(exc))
            return self._items(part, statuses, len(wire))
        if status == 413:
            return Outcome.refused(
                "413 request_entity_too_large: document larger than the cluster's "
                f"http.max_content_length ({len(body)} bytes)",
                "too_large",
            )
        if status in _RETRY_AS_IS:
            cause = "5xx" if status >= 500 else str(status)
            return Outcome.transient(part, cause, request_error(content), retry_after(resp))
        if status != 400:
            # 404/405/...: a wrong URL or a proxy in the way, not the lines' fault.
            return Outcome.transient(part, f"http_{status}", request_error(content))
        # A 400 for the whole request: some document or action line is at fault.
        return Outcome.refused(f"{status} {request_error(content)}", f"http_{status}")

    def _items(
        self, part: list[int], statuses: list[tuple[int, str]] | None, wire_bytes: int
    ) -> Outcome:
        if statuses is None:
            return Outcome.ok(len(part), wire_bytes)
        out = Outcome()
        dups = 0
        for i, (status, reason) in zip(part, statuses, strict=True):
            if status < 300:
                out.delivered += 1
            elif status == 409 and self.config.op_type == "create":
                out.delivered += 1
                dups += 1
            elif status == 429 or status >= 500:
                out.retry.append(i)
                out.cause = "429" if status == 429 else "5xx"
                out.detail = reason
            else:
                short = reason.split(":", 1)[0] or f"http_{status}"
                out.rejected[i] = (f"{status} {reason}", short)
        if dups:
            with self._lock:
                self.duplicates += dups
        if out.delivered:
            out.wire_bytes = wire_bytes * out.delivered // len(part)
        return out
