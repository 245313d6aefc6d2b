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
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Literal

import cramjam
import httpx
import msgspec

from obskit._durations import ByteSize, Duration
from obskit._http import (
    RETRYABLE_STATUS,
    AuthConfig,
    Backoff,
    Credentials,
    RetryConfig,
    TLSConfig,
    describe_error,
    make_client,
    retry_after,
)
from sidecar.sinks.base import Batch, SendResult, Sink, SinkStopped
from sidecar.sinks.es_bulk import (
    BulkResponseError,
    DocumentBuilder,
    TargetResolver,
    item_statuses,
    request_error,
)

log = logging.getLogger(__name__)

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
    #: Informational (``es-setup`` detects the flavour from ``GET /``); the sink speaks the
    #: API both share.
    flavor: Literal["auto", "elasticsearch", "opensearch"] = "auto"
    #: Extra HTTP headers on every request (e.g. for a proxy).
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not self.url and not self.urls:
            raise ValueError("url: give the cluster address (url or urls)")
        for u in self.endpoints:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"url: {u!r} must start with http:// or https://")
        ns = self.namespace
        if not ns or len(ns) > 100 or ns != ns.lower() or any(c in ns for c in '-\\/*?"<>| ,#:'):
            raise ValueError(
                "namespace: lower case, at most 100 characters, without '-' (the data stream "
                'naming scheme) or any of \\ / * ? " < > | , # : and spaces'
            )
        if self.batch_max_bytes < 1024:
            raise ValueError("batch_max_bytes: must be at least 1KiB")
        if not 1 <= self.concurrency <= 16:
            raise ValueError("concurrency: 1 to 16")
        if self.batch_max_docs < 1:
            raise ValueError("batch_max_docs: must be at least 1")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError("gzip_level: 0-9")
        if self.timeout <= 0:
            raise ValueError("timeout: must be positive")
        target = self.index or self.data_stream
        try:
            target.format(service="s", dataset="s", namespace="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"{'index' if self.index else 'data_stream'}: {target!r} may only use "
                f"{{service}}, {{dataset}} and {{namespace}} ({exc})"
            ) from None
        if not self.index and self.op_type != "create":
            raise ValueError("op_type: data streams accept only create (or set index:)")
        if not self.index and "%" in self.data_stream:
            raise ValueError(
                "data_stream: date codes belong in index mode (data streams roll over)"
            )

    @property
    def endpoints(self) -> list[str]:
        return [u.rstrip("/") for u in ([self.url] if self.url else []) + list(self.urls)]


def _gzip(data: bytes, level: int) -> bytes:
    if level <= 2:
        # cramjam's gzip is ~1.6x faster than zlib at level 1 here (the sink's biggest
        # per-byte cost), at a slightly lower ratio; higher levels are faster with zlib.
        return bytes(cramjam.gzip.compress(data, level=level))
    # compressobj with wbits=31 writes the gzip framing (zlib.compress(wbits=) needs 3.11).
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def build(name: str, config: Config) -> ElasticsearchSink:
    """The sink for ``type: elasticsearch`` / ``type: opensearch``."""
    return ElasticsearchSink(name, config)


class _Round:
    """One pass over the pending items: what was delivered, what must be retried."""

    def __init__(self) -> None:
        self.retry: list[int] = []
        self.hint: float | None = None  # longest Retry-After seen
        self.cause = ""


class ElasticsearchSink(Sink):
    """See the module docstring."""

    kind = "elasticsearch"

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name)
        self.config = config
        self._urls = itertools.cycle(config.endpoints)
        self._url = next(self._urls)
        self._client: httpx.Client | None = None
        self.data_stream_mode = config.index is None
        self._target = TargetResolver(config.index or config.data_stream, config.namespace)
        self._query = {"pipeline": config.pipeline} if config.pipeline else None
        self._headers = {"Content-Type": "application/x-ndjson", **config.headers}
        if config.gzip:
            self._headers["Content-Encoding"] = "gzip"
        #: Lines Elasticsearch already held (409 on create): delivered, not stored again.
        self.duplicates = 0
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._pool is None and self.config.concurrency > 1:
            self._pool = ThreadPoolExecutor(
                self.config.concurrency, thread_name_prefix=f"sink-{self.name}"
            )
        if self._client is None:
            self._client = make_client(
                timeout=float(self.config.timeout),
                tls=self.config.tls,
                credentials=Credentials.resolve(self.config.auth),
                headers=self._headers,
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # ----------------------------------------------------------------------- send

    def send(self, batch: Batch) -> SendResult:
        if self._client is None:
            self.start()
        builder = DocumentBuilder(
            self._target,
            self.config.op_type,
            batch.static,
            self.data_stream_mode,
            self.config.namespace,
        )
        lines, records, ids = batch.lines, batch.records, batch.ids

        def item(i: int) -> bytes:
            return builder.item(lines[i], records[i], ids[i])

        rejected: dict[int, str] = {}
        pending = list(range(len(batch)))
        backoff = Backoff(self.config.retry)
        while pending:
            rnd = _Round()
            self._send_all(pending, item, rnd, rejected)
            if not rnd.retry:
                break
            pending = sorted(rnd.retry)
            self.metrics.retry(rnd.cause)
            delay = backoff.next_delay(rnd.hint)
            log.warning(
                "%s: %d of %d lines to retry in %.1fs (%s)",
                self.name,
                len(pending),
                len(batch),
                delay,
                rnd.cause,
            )
            if self.stopping.wait(delay):
                raise SinkStopped(f"{self.name}: stopping with {len(pending)} lines unsent")
        return SendResult(sorted(rejected.items()))

    def _send_all(
        self,
        pending: list[int],
        item: Callable[[int], bytes],
        rnd: _Round,
        rejected: dict[int, str],
    ) -> None:
        """Encode requests in this thread and send up to ``concurrency`` at a time, so the
        next request is encoded while the cluster works on the previous one."""
        pool = self._pool
        if pool is None:
            for chunk, body in self._requests(pending, item):
                self._send_chunk(chunk, body, item, rnd, rejected)
            return
        running: set[Future[None]] = set()
        try:
            for chunk, body in self._requests(pending, item):
                if len(running) >= self.config.concurrency:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                running.add(pool.submit(self._send_chunk, chunk, body, item, rnd, rejected))
        finally:
            # Never leave a request behind: results (or SinkStopped) after all have ended.
            done, _ = wait(running)
        for f in done:
            f.result()

    def _requests(
        self, pending: list[int], item: Callable[[int], bytes]
    ) -> Iterator[tuple[list[int], bytes]]:
        """``pending`` as request bodies bounded by bytes (before compression) and docs.
        Items are encoded here, one request at a time, so memory stays at one request (a
        retried item is simply encoded again: the encoding is deterministic)."""
        max_bytes, max_docs = self.config.batch_max_bytes, self.config.batch_max_docs
        idx: list[int] = []
        parts: list[bytes] = []
        size = 0
        for i in pending:
            data = item(i)
            if parts and (size + len(data) > max_bytes or len(parts) >= max_docs):
                yield idx, b"".join(parts)
                idx, parts, size = [], [], 0
            idx.append(i)
            parts.append(data)
            size += len(data)
        if parts:
            yield idx, b"".join(parts)

    def _send_chunk(
        self,
        chunk: list[int],
        chunk_body: bytes,
        item: Callable[[int], bytes],
        rnd: _Round,
        rejected: dict[int, str],
    ) -> None:
        """Send ``chunk`` until each of its items is delivered, rejected or queued in
        ``rnd.retry``. Request-level trouble is retried here; 413 and other 4xx split."""
        stack = [chunk]
        backoff = Backoff(self.config.retry)
        while stack:
            part = stack.pop()
            if self.stopping.is_set():
                raise SinkStopped(f"{self.name}: stopping")
            # Halves after a 413 or 400 are encoded again from their lines.
            body = chunk_body if part is chunk else b"".join(item(i) for i in part)
            wire = _gzip(body, self.config.gzip_level) if self.config.gzip else body
            assert self._client is not None
            t0 = time.perf_counter()
            try:
                resp = self._client.post(self._url + "/_bulk", content=wire, params=self._query)
                content = resp.content
            except httpx.TransportError as exc:
                cause = describe_error(exc)
                self.metrics.request(time.perf_counter() - t0, cause)
                self._wait(backoff, None, cause, len(part))
                if not isinstance(exc, httpx.TimeoutException):
                    self._url = next(self._urls)  # try the next node of the cluster
                stack.append(part)
                continue
            status = resp.status_code
            self.metrics.request(time.perf_counter() - t0, str(status))
            if status == 200:
                try:
                    statuses = item_statuses(content, len(part))
                except BulkResponseError as exc:
                    self._wait(backoff, None, "bad_response", len(part), str(exc))
                    stack.append(part)
                    continue
                backoff.reset()
                self._items(part, statuses, rnd, rejected, len(wire))
                continue
            if status == 413:
                if len(part) == 1:
                    self._reject(
                        rejected,
                        part[0],
                        "413 request_entity_too_large: document larger than the cluster's "
                        f"http.max_content_length ({len(body)} bytes)",
                        "too_large",
                    )
                else:
                    half = len(part) // 2
                    stack.extend([part[half:], part[:half]])
                continue
            if status in _RETRY_AS_IS:
                cause = "5xx" if status >= 500 else str(status)
                self._wait(backoff, retry_after(resp), cause, len(part), request_error(content))
                stack.append(part)
                continue
            if status != 400:
                # 404/405/...: a wrong URL or a proxy in the way, not the lines' fault.
                self._wait(backoff, None, f"http_{status}", len(part), request_error(content))
                stack.append(part)
                continue
            # A 400 for the whole request: some document or action line is at fault.
            if len(part) == 1:
                self._reject(
                    rejected, part[0], f"{status} {request_error(content)}", f"http_{status}"
                )
            else:
                half = len(part) // 2
                stack.extend([part[half:], part[:half]])

    def _items(
        self,
        part: list[int],
        statuses: list[tuple[int, str]] | None,
        rnd: _Round,
        rejected: dict[int, str],
        wire_bytes: int,
    ) -> None:
        if statuses is None:
            self.metrics.sent(len(part), wire_bytes)
            return
        ok = 0
        for i, (status, reason) in zip(part, statuses, strict=True):
            if status < 300:
                ok += 1
            elif status == 409 and self.config.op_type == "create":
                ok += 1
                with self._lock:
                    self.duplicates += 1
            elif status == 429 or status >= 500:
                rnd.retry.append(i)
                rnd.cause = "429" if status == 429 else "5xx"
            else:
                short = reason.split(":", 1)[0] or f"http_{status}"
                self._reject(rejected, i, f"{status} {reason}", short)
        if ok:
            self.metrics.sent(ok, wire_bytes * ok // len(part))

    def _reject(self, rejected: dict[int, str], i: int, reason: str, category: str) -> None:
        rejected[i] = reason
        self.metrics.dead_lettered(category)

    def _wait(
        self, backoff: Backoff, hint: float | None, cause: str, lines: int, detail: str = ""
    ) -> None:
        self.metrics.retry(cause)
        delay = backoff.next_delay(hint)
        log.warning(
            "%s: bulk request of %d lines failed (%s%s), retrying in %.1fs",
            self.name,
            lines,
            cause,
            f": {detail}" if detail else "",
            delay,
        )
        if self.stopping.wait(delay):
            raise SinkStopped(f"{self.name}: stopping during retry ({cause})")
