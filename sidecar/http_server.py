"""``/healthz``, ``/readyz`` and ``/metrics`` on a small threaded HTTP server (127.0.0.1:9300
by default; set ``http.listen: 0.0.0.0:9300`` inside a container).

``/healthz``: 200 while the process is alive and its main loop turns (a liveness probe); 503
with the reason when it should be restarted. ``/readyz``: 200 while it is delivering
normally; 503 with one reason per line (source folder missing, a sink failing, a spool full,
checkpoints not saved, a worker stopped). See docs/operations.md for the Kubernetes probes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class OpsServer:
    """Serves the endpoints from a daemon thread; :meth:`close` stops it."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Callable[[], list[str]],
        alive: Callable[[], list[str]] = list,
        notes: Callable[[], list[str]] = list,
    ) -> None:
        reg, not_ready, not_alive, info = registry, ready, alive, notes

        class Handler(BaseHTTPRequestHandler):
            server_version = "obskit-sidecar"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._status(not_alive(), b"ok\n", b"unhealthy\n")
                elif path == "/readyz":
                    extra = "".join(f"note: {n}\n" for n in info()).encode()
                    self._status(not_ready(), b"ready\n", b"not ready\n", extra)
                elif path == "/metrics":
                    self._send(200, generate_latest(reg), CONTENT_TYPE_LATEST)
                else:
                    self._send(
                        404,
                        b"not found: try /healthz, /readyz, /metrics\n",
                        "text/plain; charset=utf-8",
                    )

            def _status(
                self, reasons: list[str], ok: bytes, bad: bytes, extra: bytes = b""
            ) -> None:
                body = ok if not reasons else bad + "".join(f"- {r}\n" for r in reasons).encode()
                body += extra
                self._send(503 if reasons else 200, body, "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the sidecar's own logs

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="ops-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
