"""An in-process OTLP/HTTP logs receiver for tests: ``POST .../v1/logs``, decoded with the
official ``opentelemetry-proto`` runtime, answering by the specification
(``opentelemetry-proto`` ``docs/specification.md``, OTLP/HTTP), with fault injection.

What it enforces:

* ``POST`` to a path ending in ``/v1/logs`` (404 otherwise, 405 for other methods);
* ``Content-Type`` ``application/x-protobuf`` or ``application/json`` (415 otherwise);
  ``Content-Encoding`` absent, ``identity`` or ``gzip`` (415 otherwise);
* the body, after decompression, at most ``max_body_bytes`` (413, 64 MiB by default as the
  specification recommends);
* a body that cannot be decoded (bad gzip, bad protobuf, bad JSON, a trace or span id that is
  not 16 / 8 bytes, hex in JSON) is a 400 with a ``google.rpc.Status``;
* OTLP/JSON: lowerCamelCase keys, hex ``traceId``/``spanId`` (converted for the official JSON
  parser, which expects base64), integer enums;
* answers in the request's content type: ``ExportLogsServiceResponse`` on 200 (empty
  ``partial_success`` when everything was accepted), ``Status`` on errors.

Rejections (``Limits.reject``, a function of one record returning a reason or None) model a
backend's validation: ``reject_mode="partial_success"`` stores the others and answers 200 with
``rejected_log_records`` and the first reason (the specification); ``"400_partial"`` stores
the others and answers 400 with the reasons (what Loki's ``/otlp`` endpoint does);
``"400_all"`` stores nothing and answers 400 (a strict server).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from .faults import FaultInjection, serve_fault
from .served import HTTPError, Served, serve_cli

MIB = 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def any_value(av: AnyValue) -> Any:
    """An ``AnyValue`` as a Python value (``None`` for an empty one)."""
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in av.array_value.values]
    if kind == "kvlist_value":
        return attributes(av.kvlist_value.values)
    return getattr(av, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict (a repeated key would be a protocol error: kept last)."""
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class StoredRecord:
    """One accepted ``LogRecord`` with its resource and scope, as Python values."""

    resource: dict[str, Any]
    scope: tuple[str, str]
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    flags: int = 0

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", ""))


@dataclass
class Limits:
    max_body_bytes: int = 64 * MIB
    #: A backend's per-record validation: a reason to reject, or None.
    reject: Callable[[StoredRecord], str | None] | None = None
    reject_mode: str = "partial_success"  # | "400_partial" | "400_all"


@dataclass
class Counters:
    requests: int = 0
    export_requests: int = 0
    accepted: int = 0
    rejected: int = 0
    partial_successes: int = 0
    bad_requests: int = 0
    faults_served: int = 0
    gzip_requests: int = 0
    json_requests: int = 0


def _hex_ids_to_base64(doc: Any) -> None:
    """OTLP/JSON carries ``traceId``/``spanId`` in hex; the proto3 JSON parser wants base64."""
    if not isinstance(doc, dict):
        raise HTTPError(400, "request body is not a JSON object")
    for rl in doc.get("resourceLogs") or []:
        for sl in rl.get("scopeLogs") or []:
            for lr in sl.get("logRecords") or []:
                for key, size in (("traceId", 16), ("spanId", 8)):
                    value = lr.get(key)
                    if value in (None, ""):
                        continue
                    try:
                        raw = bytes.fromhex(value)
                    except (TypeError, ValueError):
                        raise HTTPError(400, f"invalid {key}: {value!r} is not hex") from None
                    if len(raw) != size:
                        raise HTTPError(400, f"invalid {key}: length {len(raw)}, want {size}")
                    lr[key] = base64.b64encode(raw).decode()


def decode_request(body: bytes, content_type: str, content_encoding: str) -> Any:
    """The ``ExportLogsServiceRequest`` of a request body, or :class:`HTTPError`."""
    if content_encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise HTTPError(400, f"invalid gzip body: {exc}") from None
    req = ExportLogsServiceRequest()
    if content_type == JSON:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from None
        _hex_ids_to_base64(doc)
        try:
            json_format.ParseDict(doc, req, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise HTTPError(400, f"invalid OTLP/JSON: {exc}") from None
    else:
        try:
            req.ParseFromString(body)
        except DecodeError as exc:
            raise HTTPError(400, f"invalid protobuf: {exc}") from None
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                if len(lr.trace_id) not in (0, 16) or len(lr.span_id) not in (0, 8):
                    raise HTTPError(400, "invalid trace_id or span_id length")
    return req


def flatten(req: Any) -> list[StoredRecord]:
    out = []
    for rl in req.resource_logs:
        res = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            scope = (sl.scope.name, sl.scope.version)
            for lr in sl.log_records:
                out.append(
                    StoredRecord(
                        resource=res,
                        scope=scope,
                        time_unix_nano=lr.time_unix_nano,
                        observed_time_unix_nano=lr.observed_time_unix_nano,
                        severity_number=int(lr.severity_number),
                        severity_text=lr.severity_text,
                        body=any_value(lr.body) if lr.HasField("body") else None,
                        attributes=attributes(lr.attributes),
                        trace_id=lr.trace_id.hex(),
                        span_id=lr.span_id.hex(),
                        flags=lr.flags,
                    )
                )
    return out


class OTLPReceiver(Served, FaultInjection):
    """The server. Use as a context manager or ``start()``/``stop()``; :attr:`url` is its
    base (append ``/v1/logs``, or give it to the sink, which does)."""

    def __init__(self, limits: Limits | None = None, *, store: str = "full") -> None:
        self.limits = limits or Limits()
        self.store = store  # "full" keeps records; "count" only counts (benchmarks)
        self.counters = Counters()
        self.lock = threading.RLock()
        self._records: list[StoredRecord] = []
        self.requests_seen: list[dict[str, str]] = []  # headers of each export request
        self._init_faults()
        self._init_server()

    # --- inspection ------------------------------------------------------------------------
    def records(self) -> list[StoredRecord]:
        """Every stored record in arrival order."""
        with self.lock:
            return list(self._records)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return dict(vars(self.counters))

    def wait_for(self, accepted: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.counters.accepted >= accepted:
                return True
            time.sleep(0.01)
        return False

    # --- export ----------------------------------------------------------------------------
    def handle_export(self, body: bytes, ctype: str, cenc: str) -> tuple[int, Any]:
        """``(status, response message or error text)`` for one export request."""
        lim = self.limits
        if cenc == "gzip":
            try:
                body = gzip.GzipFile(fileobj=_Bytes(body)).read(lim.max_body_bytes + 1)
            except (OSError, EOFError) as exc:
                return 400, f"invalid gzip body: {exc}"
            cenc = ""
        if len(body) > lim.max_body_bytes:
            return 413, f"request body too large: more than {lim.max_body_bytes} bytes"
        try:
            req = decode_request(body, ctype, cenc)
        except HTTPError as exc:
            with self.lock:
                self.counters.bad_requests += 1
            return exc.status, exc.text
        recs = flatten(req)
        reasons: list[str] = []
        good = recs
        if lim.reject is not None:
            good = []
            for r in recs:
                why = lim.reject(r)
                if why is None:
                    good.append(r)
                else:
                    reasons.append(why)
        if reasons and lim.reject_mode == "400_all":
            with self.lock:
                self.counters.rejected += len(recs)
            return 400, "; ".join(dict.fromkeys(reasons))
        with self.lock:
            self.counters.accepted += len(good)
            self.counters.rejected += len(reasons)
            if self.store == "full":
                self._records += good
        if reasons and lim.reject_mode == "400_partial":
            return 400, "; ".join(dict.fromkeys(reasons))
        resp = ExportLogsServiceResponse()
        if reasons:
            with self.lock:
                self.counters.partial_successes += 1
            resp.partial_success.rejected_log_records = len(reasons)
            resp.partial_success.error_message = "; ".join(dict.fromkeys(reasons))
        return 200, resp


class _Bytes:
    """A minimal file object over bytes for ``GzipFile`` (bounded reads)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out = self.data[self.pos : end]
        self.pos += len(out)
        return out


def _default_text(status: int) -> str:
    return {
        429: "too many requests (injected)",
        500: "internal error (injected)",
        502: "bad gateway (injected)",
        503: "service unavailable (injected)",
        504: "gateway timeout (injected)",
    }.get(status, "injected failure")


def status_body(message: str, json_reply: bool) -> bytes:
    """A ``google.rpc.Status`` with ``message`` (field 2), protobuf or JSON."""
    if json_reply:
        return json.dumps({"message": message}).encode()
    data = message.encode()
    n, size = len(data), bytearray()
    while n >= 0x80:
        size.append((n & 0x7F) | 0x80)
        n >>= 7
    size.append(n)
    return b"\x12" + bytes(size) + data


class _Handler(BaseHTTPRequestHandler):
    rx: OTLPReceiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(
        self, status: int, text: str, json_reply: bool, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, status_body(text, json_reply), JSON if json_reply else PROTOBUF, headers)

    def _length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            return -1

    def do_GET(self) -> None:
        with self.rx.lock:
            self.rx.counters.requests += 1
        self._error(405, "method not allowed, use POST", False)

    def do_POST(self) -> None:
        rx = self.rx
        with rx.lock:
            rx.counters.requests += 1
        n = self._length()
        if n < 0 or n > rx.limits.max_body_bytes:
            # Not read (bounded memory): the connection cannot be reused.
            self.close_connection = True
            self._error(413, f"request body too large: {n} bytes", False, {"Connection": "close"})
            return
        body = self.rfile.read(n) if n else b""
        path = self.path.partition("?")[0]
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        json_reply = ctype == JSON
        if not path.endswith("/v1/logs"):
            self._error(404, f"{path}: not found", json_reply)
            return
        if ctype not in (PROTOBUF, JSON):
            self._error(415, f"unsupported Content-Type {ctype!r}", False)
            return
        cenc = (self.headers.get("Content-Encoding") or "").strip().lower()
        if cenc == "identity":
            cenc = ""
        if cenc not in ("", "gzip"):
            self._error(415, f"unsupported Content-Encoding {cenc!r}", json_reply)
            return
        fault = rx.take_fault()
        with rx.lock:
            rx.counters.export_requests += 1
            rx.counters.gzip_requests += cenc == "gzip"
            rx.counters.json_requests += json_reply
            rx.requests_seen.append(dict(self.headers.items()))
            if fault is not None:
                rx.counters.faults_served += 1
        status, result = 200, ExportLogsServiceResponse()
        if fault is None or fault.store:
            status, result = rx.handle_export(body, ctype, cenc)

        def outcome() -> None:
            if status == 200:
                msg = result
                data = (
                    json_format.MessageToJson(msg, indent=None).encode()
                    if json_reply
                    else msg.SerializeToString()
                )
                self._send(200, data, JSON if json_reply else PROTOBUF, None)
            else:
                self._error(status, str(result), json_reply)

        if fault is None:
            outcome()
            return
        serve_fault(
            self,
            fault,
            rx._stopping,
            lambda code, text, hdrs: self._error(
                code, text if text is not None else _default_text(code), json_reply, hdrs
            ),
            outcome,
        )


OTLPReceiver.handler = _Handler


@contextmanager
def running(limits: Limits | None = None, store: str = "full") -> Iterator[OTLPReceiver]:
    """``with running() as rx: ...``: a receiver on 127.0.0.1 with an ephemeral port."""
    rx = OTLPReceiver(limits, store=store).start()
    try:
        yield rx
    finally:
        rx.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.receivers.otlp --port 0 --port-file F --store count``."""
    return serve_cli(lambda args: OTLPReceiver(store=args.store), __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
