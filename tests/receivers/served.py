"""The lifecycle the in-process HTTP receivers share: a threading server on 127.0.0.1 (an
ephemeral port by default, HTTPS with a certificate if asked), a context manager, and a
bounded shutdown."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Served:
    """Mixin: ``start()``/``stop()``, ``with``, :attr:`port` and :attr:`url`. The receiver sets
    :attr:`handler` (a handler class with an ``rx`` attribute, bound to the receiver on start)
    and calls :meth:`_init_server` in its ``__init__``."""

    handler: type[BaseHTTPRequestHandler]

    def _init_server(self) -> None:
        self._stopping = threading.Event()
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.scheme = "http"

    def start(
        self, host: str = "127.0.0.1", port: int = 0, tls: tuple[str, str] | None = None
    ) -> Any:
        """Serve on ``host:port``; ``tls``: (certificate, key) PEM files to serve HTTPS."""
        handler = type("Handler", (self.handler,), {"rx": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Any:
        return self.start() if self.server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"
