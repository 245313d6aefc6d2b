"""A TCP proxy on 127.0.0.1 that cuts a backend off the way networks do: ``refuse``
(connections refused: the port is closed), ``blackhole`` (connections accepted, requests
read, nothing ever answered: client timeouts), ``forward`` (a transparent pipe). Switching
mode drops the connections already open, as a link going down does."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

Mode = Literal["forward", "refuse", "blackhole"]


class NetFault:
    """``NetFault(target_port).start()``; ``.url``; ``.set("refuse")``; ``.close()``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "forward"
        self.port = 0
        self._srv: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NetFault:
        self._listen()
        return self

    def _listen(self) -> None:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        srv.settimeout(0.2)
        self.port = srv.getsockname()[1]
        self._srv = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def set(self, mode: Mode) -> None:
        """Switch mode; open connections are dropped."""
        with self._lock:
            if mode == self.mode:
                return
            old, self.mode = self.mode, mode
            conns, self._conns = self._conns, set()
            srv = self._srv
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()
        if mode == "refuse" and srv is not None:
            self._srv = None
            srv.close()
        elif old == "refuse":
            self._listen()

    def close(self) -> None:
        self._closed = True
        self.set("refuse")

    def _accept(self, srv: socket.socket) -> None:
        while not self._closed and self._srv is srv:
            try:
                client, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                mode = self.mode
                self._conns.add(client)
            if mode == "blackhole":
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.add(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _swallow(self, c: socket.socket) -> None:
        c.settimeout(60)
        with contextlib.suppress(OSError):
            while c.recv(65536):
                pass

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
