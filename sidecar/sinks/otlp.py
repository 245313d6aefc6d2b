"""The OTLP sink: OpenTelemetry logs over HTTP (``POST <url>/v1/logs``), protobuf by default or
OTLP/JSON, gzip-compressed, to any OpenTelemetry backend (the Collector, Grafana Alloy, Loki 3's
``/otlp`` endpoint, Elastic, vendors).

Each line becomes a ``LogRecord`` (:mod:`.otlp_encode` has the mapping); the lines of one
request are grouped into one ``ResourceLogs`` per service, whose resource carries
``service.name`` and this sidecar's enrichment under semantic-convention names
(:func:`resource_attributes`), with one ``ScopeLogs`` (scope ``obskit-sidecar``).

Delivery (the loop in :mod:`.delivery` does the waiting and splitting):

- **2xx** with no ``partial_success``: every record was accepted.
- **2xx with ``partial_success``**: ``rejected_log_records`` is only a count. When it covers
  the whole request nothing was stored, so the request is halved down to single records, and
  one still rejected alone is dead-lettered with the server's ``error_message``. When only
  some were rejected, ``partial_success: isolate`` (default) does the same, which sends the
  records the server had accepted again (duplicates at backends that do not deduplicate,
  counted in :attr:`OTLPSink.resent_after_partial`); ``partial_success: dead_letter`` sends
  nothing again and dead-letters the request's lines as "possibly rejected".
- **400** (bad data; Loki also answers 400 when it stored some records and refused others):
  the request is halved; a record refused alone is dead-lettered with ``Status.message``.
  **413**: halved; a single record too large is dead-lettered.
- **429, 502, 503, 504** and every other 5xx, network errors, timeouts: retried with backoff,
  ``Retry-After`` honoured. The specification calls a 500 final; a sidecar does not drop
  lines on a server's bug, it retries (and Loki maps its 500s to 503 itself).
- **401, 403, 404, 405, 415**: a credential, URL or content type an operator must fix;
  retried with backoff and logged, never dead-lettered.

gRPC is left out on purpose: every OTLP receiver that speaks gRPC also speaks OTLP/HTTP on
port 4318 (Loki speaks only HTTP), and gRPC would bring ``grpcio`` (a large native wheel with
threads of its own) into an image that is otherwise pure wheels of small C extensions.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import msgspec

import obskit
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
from obskit.secrets import resolve_secret
from sidecar.sinks.base import Batch, cut_by_size
from sidecar.sinks.compress import gzip
from sidecar.sinks.delivery import Outcome
from sidecar.sinks.http import HTTPSink
from sidecar.sinks.otlp_encode import LogEncoder
from sidecar.sinks.otlp_reply import MAX_REPLY_BYTES, error_message, partial_success
from sidecar.sinks.timestamps import Timestamps

LOGS_PATH = "/v1/logs"

#: Enrichment field -> resource attribute (OpenTelemetry semantic conventions).
RESOURCE_NAMES = {
    "environment": "deployment.environment.name",
    "host": "host.name",
    "pod": "k8s.pod.name",
    "container": "container.name",
    "image_version": "service.version",
}

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Header names whose values are credentials: only by reference (``secret_headers``).
_SECRET_HEADER = re.compile(r"(?i)authorization|cookie|api[-_]?key|token|secret|password")
#: Headers the sink sets itself.
_OWN_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "host"})


class SecretRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A secret by reference: the name of an environment variable, or a file."""

    #: Environment variable holding the value.
    env: str | None = None
    #: File holding the value (a trailing newline is stripped).
    file: str | None = None

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``type: otlp`` settings. See docs/otlp.md."""

    #: Endpoint; ``/v1/logs`` is appended unless the URL already ends with it
    #: (``http://collector:4318``, ``http://loki:3100/otlp``).
    url: str
    #: ``protobuf`` (``application/x-protobuf``) or ``json`` (OTLP/JSON).
    encoding: Literal["protobuf", "json"] = "protobuf"
    #: ``gzip`` (``Content-Encoding: gzip``) or ``none``.
    compression: Literal["gzip", "none"] = "gzip"
    #: ``message``: the record's message is the body, the line's other keys are attributes;
    #: ``line``: the whole JSON line is the body (no attributes).
    body: Literal["message", "line"] = "message"
    #: Extra resource attributes, e.g. ``service.namespace: shop`` (win over enrichment).
    resource: dict[str, str] = {}
    #: Extra HTTP headers (not secrets), e.g. ``X-Scope-OrgID: team-a``.
    headers: dict[str, str] = {}
    #: Headers whose values are secrets, by reference: ``{x-api-key: {env: API_KEY}}``.
    secret_headers: dict[str, SecretRef] = {}
    #: Basic auth, a bearer token or an API key, by reference (see ``sinks[].auth``).
    auth: AuthConfig | None = None
    #: CA bundle, client certificate (see ``sinks[].tls``).
    tls: TLSConfig | None = None
    #: Per request; a timed-out request is retried.
    timeout: Duration = Duration(10.0)
    #: Largest request body before compression; larger batches are split.
    batch_max_bytes: ByteSize = ByteSize(1024 * 1024)
    #: Requests of one batch in flight at once.
    concurrency: int = 1
    #: ``isolate``: on a partial success, halve and resend to find the rejected records
    #: (accepted ones are sent again); ``dead_letter``: resend nothing, dead-letter the
    #: request's lines as possibly rejected.
    partial_success: Literal["isolate", "dead_letter"] = "isolate"
    #: Backoff between retries.
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    #: Give up (dead-letter) after this long of transient failures; none: retry until
    #: delivered.
    max_retry_duration: Duration | None = None

    def __post_init__(self) -> None:
        if not re.match(r"https?://[^/?#]", self.url):
            raise ValueError(f"url: expected http:// or https://, got {display_url(self.url)!r}")
        if self.batch_max_bytes < 1024:
            raise ValueError("batch_max_bytes: must be at least 1KiB")
        if self.timeout <= 0:
            raise ValueError("timeout: must be positive")
        if not 1 <= self.concurrency <= 16:
            raise ValueError("concurrency: 1 to 16")
        for name in [*self.headers, *self.secret_headers]:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"headers: {name!r} is not a valid header name")
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"headers: {name!r} is set by the sink")
        for name, value in self.headers.items():
            if _SECRET_HEADER.search(name):
                raise ValueError(
                    f"headers.{name}: looks like a credential; give it by reference with "
                    "secret_headers ({env: VAR} or {file: PATH}) or auth"
                )
            if "\n" in value or "\r" in value:
                raise ValueError(f"headers.{name}: must be one line")
        for name in self.resource:
            if not name:
                raise ValueError("resource: attribute names must not be empty")


def build(name: str, config: Config) -> OTLPSink:
    """The sink for ``type: otlp``."""
    return OTLPSink(name, config)


def logs_endpoint(url: str) -> str:
    """The OpenTelemetry exporter convention: a URL ending in ``/v1/logs`` is used as is,
    otherwise ``/v1/logs`` is appended to its path (before any query string)."""
    base, sep, query = url.partition("?")
    base = base.rstrip("/")
    if not base.endswith(LOGS_PATH):
        base += LOGS_PATH
    return base + sep + query


def resource_attributes(
    service: str, static: dict[str, str], extra: dict[str, str]
) -> list[tuple[str, Any]]:
    """The resource of one service's records: ``service.name``, the enrichment fields under
    their semantic-convention names (:data:`RESOURCE_NAMES`; the image version also as
    ``container.image.tags``), other enrichment fields under their own names, then ``extra``
    (the sink's ``resource`` setting). Later entries win; names are unique."""
    attrs: dict[str, Any] = {"service.name": service}
    for key, value in static.items():
        attrs[RESOURCE_NAMES.get(key, key)] = value
        if key == "image_version":
            attrs["container.image.tags"] = [value]
    attrs.update(extra)
    attrs["service.name"] = extra.get("service.name", service)
    return list(attrs.items())


@dataclass
class _Ctx:
    """One batch encoded once: each record's bytes (None: it could not be encoded; its
    attempt raises again and the delivery loop isolates it)."""

    batch: Batch
    records: list[bytes | None]


class OTLPSink(HTTPSink):
    """Ships batches to an OTLP/HTTP logs endpoint; see the module docstring."""

    kind = "otlp"

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config, config.max_retry_duration)
        self.config = config
        self.concurrency = config.concurrency
        self.endpoint = logs_endpoint(config.url)
        self.encoder = LogEncoder(config.encoding, config.body, obskit.__version__)
        self._headers = {"Content-Type": self.encoder.content_type, **config.headers}
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._ts = Timestamps()
        self._ctx: _Ctx | None = None
        self._ctx_lock = threading.Lock()
        self._resources: dict[str, bytes] = {}
        self._static: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._unknown = False
        #: Requests whose outcome was unknown (timeout, reset after sending) and were sent
        #: again: their records may be stored twice.
        self.resent_after_unknown = 0
        #: Records a server had accepted in a partial success and that were sent again to
        #: isolate the rejected ones (``partial_success: isolate``): possible duplicates.
        self.resent_after_partial = 0

    # --- lifecycle -------------------------------------------------------------------------
    def client_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        for name, ref in self.config.secret_headers.items():
            secret = resolve_secret(env=ref.env, file=ref.file)
            if secret is not None:
                headers[name] = secret.reveal()
        return headers

    def describe_target(self) -> str:
        return display_url(self.endpoint)

    # --- planning --------------------------------------------------------------------------
    def _context(self, batch: Batch) -> _Ctx:
        with self._ctx_lock:
            ctx = self._ctx
            if ctx is not None and ctx.batch is batch:
                return ctx
            ts = self._ts(batch.records)
            observed = int(batch.read_time * 1e9) if batch.read_time > 0 else 0
            encode = self.encoder.record
            records: list[bytes | None] = []
            for line, rec, t in zip(batch.lines, batch.records, ts, strict=True):
                try:
                    records.append(encode(line, rec, t, observed))
                except Exception:  # encoded again in its attempt, which raises for isolation
                    records.append(None)
            ctx = self._ctx = _Ctx(batch, records)
            return ctx

    def parts(self, batch: Batch) -> list[list[int]]:
        """Requests of at most ``batch_max_bytes`` of encoded records (in batch order); a
        record that cannot be encoded goes alone."""
        return cut_by_size(self._context(batch).records, int(self.config.batch_max_bytes))

    def _resource(self, service: str, static: dict[str, str]) -> bytes:
        with self._lock:
            if static is not self._static:
                if self._static is None or static != self._static:
                    self._resources.clear()
                self._static = static
            res = self._resources.get(service)
            if res is None:
                res = self._resources[service] = self.encoder.resource(
                    resource_attributes(service, static, self.config.resource)
                )
            return res

    def body(self, batch: Batch, part: list[int]) -> bytes:
        """The encoded (uncompressed) request for ``part``: one ``ResourceLogs`` per service,
        in order of first appearance."""
        ctx = self._context(batch)
        groups: dict[str, list[bytes]] = {}
        records = batch.records
        for i in part:
            data = ctx.records[i]
            if data is None:  # raises again: the delivery loop isolates this line
                data = self.encoder.record(batch.lines[i], records[i], self._ts([records[i]])[0], 0)
            svc = records[i].service
            got = groups.get(svc)
            if got is None:
                groups[svc] = [data]
            else:
                got.append(data)
        return self.encoder.request(
            [(self._resource(svc, batch.static), recs) for svc, recs in groups.items()]
        )

    # --- one attempt -----------------------------------------------------------------------
    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        """One request for ``part`` (see the module docstring for what each answer does)."""
        if self._client is None:
            self.start()
        assert self._client is not None
        body = self.body(batch, part)
        wire = gzip(body) if self.config.compression == "gzip" else body
        t0 = time.monotonic()
        try:
            with self._client.stream("POST", self.endpoint, content=wire) as resp:
                reply = _read_limited(resp, MAX_REPLY_BYTES)
        except httpx.TransportError as exc:
            self.metrics.request(time.monotonic() - t0, describe_error(exc))
            with self._lock:
                # A timeout or a reset after the body was sent may have been stored.
                self._unknown = self._unknown or not isinstance(exc, httpx.ConnectError)
            raise
        code = resp.status_code
        self.metrics.request(time.monotonic() - t0, str(code))
        with self._lock:
            if self._unknown:
                self.resent_after_unknown += 1
                self._unknown = False
        if 200 <= code < 300:
            return self._accepted(part, reply, len(wire))
        detail = f"HTTP {code}: {error_message(reply)}"
        if code in (400, 422):
            return Outcome.refused(f"otlp {code}: {error_message(reply)}", f"http_{code}")
        if code == 413:
            return Outcome.refused(
                f"otlp 413: request of {len(body)} bytes too large: {error_message(reply)}",
                "too_large",
            )
        if code >= 500 or code in RETRYABLE_STATUS:
            cause = "429" if code == 429 else "5xx" if code >= 500 else str(code)
            return Outcome.transient(part, cause, detail, retry_after(resp))
        # 401/403/404/405/415...: configuration an operator fixes; the lines are not at fault.
        return Outcome.transient(part, f"http_{code}", detail, retry_after(resp))

    def _accepted(self, part: list[int], reply: bytes, wire_bytes: int) -> Outcome:
        ps = partial_success(reply, self.encoder.json)
        n = len(part)
        if ps.rejected <= 0:
            if ps.message:
                self.delivery.failures.failed(
                    "partial_success_warning", ps.message, "accepted, server warning"
                )
            return Outcome.ok(n, wire_bytes)
        reason = f"otlp partial success: {ps.rejected} of {n} records rejected: {ps.message}"
        if ps.rejected >= n or n == 1:
            # Nothing of this request was stored: halving sends nothing twice.
            return Outcome.refused(reason, "partial_success")
        if self.config.partial_success == "dead_letter":
            why = (
                f"otlp partial success: {ps.rejected} of these {n} records were rejected and "
                f"the server does not say which (the others were stored): {ps.message}"
            )
            return Outcome(rejected={i: (why, "partial_success_unattributed") for i in part})
        with self._lock:
            self.resent_after_partial += n - ps.rejected
        self.delivery.failures.failed(
            "partial_success", reason, f"isolating the rejected records of {n}"
        )
        return Outcome.refused(reason, "partial_success")


def _read_limited(resp: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the answer (a misbehaving server cannot exhaust memory)."""
    buf = bytearray()
    for chunk in resp.iter_bytes():
        buf += chunk
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])
