"""The sidecar's own logs: schema v1 lines on stdout, through the obskit SDK.

``log("INFO", "message", key=value)``. Falls back to a minimal writer of the same format when
the SDK cannot be configured (so the sidecar never fails to start because of its own logs).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import orjson

SERVICE = "obskit-sidecar"
_lock = threading.Lock()
_sdk_logger: Any = None
_configured = False


def setup(level: str = "INFO") -> None:
    """Route :func:`log` through ``obskit.configure(stdout=True, log_dir=None)``."""
    global _sdk_logger, _configured
    _configured = True
    try:
        import obskit

        obskit.configure(service=SERVICE, stdout=True, log_dir=None, level=level)
        _sdk_logger = obskit.get_logger("obskit.sidecar")
        # httpx logs every request at INFO with its full URL (user:password included) through
        # the stdlib logging the SDK captures: noise per push, and a credential leak.
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    except Exception as exc:  # the fallback below keeps the same line format
        _sdk_logger = None
        _fallback(
            "WARN",
            "obskit SDK unavailable for own logs; using the built-in writer",
            {"error": f"{type(exc).__name__}: {exc}"},
        )


def log(level: str, message: str, **fields: Any) -> None:
    """Write one schema v1 line (``level`` one of DEBUG, INFO, WARN, ERROR)."""
    if _sdk_logger is not None:
        method = {"WARN": "warning"}.get(level, level.lower())
        getattr(_sdk_logger, method)(message, **fields)
        return
    _fallback(level, message, fields)


def _fallback(level: str, message: str, fields: dict[str, Any]) -> None:
    t = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
    rec = {"timestamp": ts, "level": level, "service": SERVICE, "message": message}
    for k, v in fields.items():
        rec.setdefault(k, v)
    data = orjson.dumps(rec, default=str) + b"\n"
    with _lock:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except (OSError, ValueError, AttributeError):
            pass


def shutdown() -> None:
    """Flush the SDK's writer (own logs written just before exit must not be lost)."""
    if _sdk_logger is None:
        return
    try:
        import obskit

        obskit.shutdown()
    except Exception:
        pass
