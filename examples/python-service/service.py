"""A tiny HTTP service configured by obskit, traced with OpenTelemetry.

    python service.py --service frontend --port 8080 --downstream http://127.0.0.1:8081
    python service.py --service backend --port 8081

``GET /work`` starts (or continues, from the ``traceparent`` header) a trace, logs, and calls
the downstream service if there is one, propagating ``traceparent``; both services' log lines
carry the same ``trace_id``. ``GET /fail`` logs an exception. The first line on stdout is
``LISTENING <port>`` (useful with ``--port 0``). ``--crash`` fails at start-up with an
uncaught exception: its traceback goes to stderr (and the SDK logs it as a record too); with
stdout and stderr in the log folder, obskit-sidecar ships the traceback as one record.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

import obskit

log = obskit.get_logger("service.http")  # structlog path
std = logging.getLogger("service.access")  # stdlib path, same schema


class Handler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        # The propagator looks up lower-case names; urllib sends "Traceparent".
        ctx = propagate.extract({k.lower(): v for k, v in self.headers.items()})
        tracer = trace.get_tracer("example")
        with (
            tracer.start_as_current_span(f"GET {self.path}", context=ctx, kind=SpanKind.SERVER),
            obskit.bound(http_path=self.path),
        ):
            log.info("request received", method="GET")
            if self.path == "/fail":
                try:
                    raise RuntimeError("requested failure")
                except RuntimeError:
                    log.exception("request failed")
                self._reply(500, {"error": "requested failure"})
                return
            body: dict[str, Any] = {"service": self.server.service}
            if self.server.downstream:
                body["downstream"] = self._call_downstream()
            span = trace.get_current_span().get_span_context()
            body["trace_id"] = format(span.trace_id, "032x")
            self._reply(200, body)

    def _call_downstream(self) -> Any:
        tracer = trace.get_tracer("example")
        with tracer.start_as_current_span("call downstream", kind=SpanKind.CLIENT):
            headers: dict[str, str] = {}
            propagate.inject(headers)  # adds traceparent
            req = urllib.request.Request(self.server.downstream + "/work", headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.loads(resp.read())
            log.info("downstream answered", downstream=self.server.downstream, status=resp.status)
            return answer

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's access log goes through logging instead of raw stderr text.
        std.info("http access", extra={"client": self.client_address[0], "line": format % args})


def _crash() -> None:
    # What a real start-up failure looks like: a bad setting, re-raised with context.
    settings = {"port": "eighty"}
    try:
        int(settings["port"])
    except ValueError as exc:
        raise RuntimeError("cannot start: invalid port setting") from exc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--service", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--downstream", default="")
    ap.add_argument("--log-dir", default=None, help="default: OBSKIT_LOG_DIR or /app/logs")
    ap.add_argument("--crash", action="store_true", help="fail at start-up (uncaught exception)")
    args = ap.parse_args()

    options: dict[str, Any] = {"service": args.service}
    if args.log_dir:
        options["log_dir"] = args.log_dir
    obskit.configure(**options)
    trace.set_tracer_provider(
        TracerProvider(resource=Resource.create({"service.name": args.service}))
    )
    if args.crash:
        log.info("starting", crash=True)
        _crash()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.service = args.service  # type: ignore[attr-defined]
    server.downstream = args.downstream.rstrip("/")  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("listening", port=server.server_address[1], downstream=args.downstream or None)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping")
        server.server_close()
        obskit.shutdown()


if __name__ == "__main__":
    main()
