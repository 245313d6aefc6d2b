"""The lifecycle the in-process HTTP receivers share: a threading server on 127.0.0.1 (an
ephemeral port by default, HTTPS with a certificate if asked), a context manager, and a
bounded shutdown."""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import threading
from collections.abc import Callable
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


def serve_cli(
    make: Callable[[argparse.Namespace], Served],
    description: str,
    argv: list[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """A receiver as a process, for benchmarks: ``--port 0 --port-file F --store count
    --stats-file S``; serves until SIGTERM/SIGINT, then writes its counters (``stats()``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--store", choices=("full", "count"), default="count")
    ap.add_argument("--stats-file", help="write counters here as JSON on exit")
    if options is not None:
        options(ap)
    args = ap.parse_args(argv)
    rx = make(args).start(port=args.port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(rx.port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"listening on {rx.url}", flush=True)
    done.wait()
    if args.stats_file:
        with open(args.stats_file, "w") as f:
            json.dump(rx.stats(), f)  # type: ignore[attr-defined]
    rx.stop()
    return 0


class HTTPError(Exception):
    """A receiver's refusal: the status and the server's text, as the handler answers it."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
