"""Fault injection shared by the in-process receivers (Loki, OTLP): status codes with
``Retry-After``, answers slower than the client's timeout, connection resets before or after
the request was processed, and outages."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler


@dataclass
class Fault:
    kind: str  # "status" | "stall" | "reset"
    status: int = 500
    body: str | None = None  # None: the receiver's usual text for the status
    retry_after: str | None = None
    seconds: float = 0.0
    store: bool = False  # process the request before failing (the request DID land)


class FaultInjection:
    """Mixin: arm faults for the next requests; the receiver takes one per request with
    :meth:`take_fault` and serves it with :func:`serve_fault`. Needs ``self.lock`` (an
    RLock) and ``self._stopping`` (an Event) from the receiver."""

    lock: threading.RLock
    _stopping: threading.Event

    def _init_faults(self) -> None:
        self._faults: list[Fault] = []
        self._outage_until = 0.0
        self._outage_status = 503

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        body: str | None = None,
        retry_after: str | None = None,
        store: bool = False,
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (after processing them if
        ``store``)."""
        with self.lock:
            self._faults += [Fault("status", status, body, retry_after, store=store)] * n

    def stall_next(self, n: int = 1, seconds: float = 5.0, *, store: bool = True) -> None:
        """Hold the next ``n`` requests for ``seconds`` before answering (processed first by
        default, so a client that timed out and resends makes a duplicate)."""
        with self.lock:
            self._faults += [Fault("stall", seconds=seconds, store=store)] * n

    def reset_next(self, n: int = 1, *, store: bool = False) -> None:
        """Reset the TCP connection on the next ``n`` requests without an answer."""
        with self.lock:
            self._faults += [Fault("reset", store=store)] * n

    def outage(self, seconds: float, status: int = 503) -> None:
        """Answer every request with ``status`` for ``seconds`` from now."""
        with self.lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._outage_until = 0.0

    def take_fault(self) -> Fault | None:
        """The fault for the request being served, if one is armed."""
        with self.lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault is None and time.monotonic() < self._outage_until:
                fault = Fault("status", self._outage_status)
            return fault


def serve_fault(
    handler: BaseHTTPRequestHandler,
    fault: Fault,
    stopping: threading.Event,
    answer: Callable[[int, str | None, dict[str, str] | None], None],
    success: Callable[[], None],
) -> None:
    """Serve ``fault`` on ``handler``. ``answer(status, text, headers)`` writes an error reply
    (``text`` None: the receiver's usual text for the status); ``success()`` writes what a
    stalled request finally gets (its real outcome when it was processed)."""
    if fault.kind == "reset":
        handler.close_connection = True
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        return
    if fault.kind == "stall":
        stopping.wait(fault.seconds)
        # The client has usually given up by now: that is the point.
        with contextlib.suppress(OSError):
            success()
        return
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    answer(fault.status, fault.body, headers)
