"""``/healthz``, ``/readyz`` and ``/metrics`` on a small threaded HTTP server (127.0.0.1:9300
by default; set ``http.listen: 0.0.0.0:9300`` inside a container)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class OpsServer:
    """Serves the endpoints from a daemon thread; :meth:`close` stops it."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
    ) -> None:
        reg, is_ready = registry, ready

        class Handler(BaseHTTPRequestHandler):
            server_version = "obskit-sidecar"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    ok = is_ready()
                    self._send(
                        200 if ok else 503,
                        b"ready\n" if ok else b"not ready\n",
                        "text/plain; charset=utf-8",
                    )
                elif path == "/metrics":
                    self._send(200, generate_latest(reg), CONTENT_TYPE_LATEST)
                else:
                    self._send(
                        404,
                        b"not found: try /healthz, /readyz, /metrics\n",
                        "text/plain; charset=utf-8",
                    )

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
