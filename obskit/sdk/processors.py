"""The structlog path: one final processor and a logger that queues bytes.

obskit configures structlog with a single processor (:meth:`StructlogRenderer.__call__`) so a
call costs one dict walk and one ``orjson.dumps``; the bound logger class is structlog's
``make_filtering_bound_logger`` (calls below the level are a no-op method).
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from structlog import DropEvent

from obskit.sdk.hub import HUB, Hub

#: structlog method name -> (schema level, ``level_name`` kept when the mapping loses detail,
#: stdlib level number).
METHOD_LEVELS: dict[str, tuple[str, str | None, int]] = {
    "debug": ("DEBUG", None, 10),
    "info": ("INFO", None, 20),
    "msg": ("INFO", None, 20),
    "warning": ("WARN", None, 30),
    "warn": ("WARN", None, 30),
    "error": ("ERROR", None, 40),
    "exception": ("ERROR", None, 40),
    "critical": ("ERROR", "CRITICAL", 50),
    "fatal": ("ERROR", "CRITICAL", 50),
}


class StructlogRenderer:
    """structlog processor: event dict -> one schema v1 line (bytes)."""

    __slots__ = ("hub",)

    def __init__(self, hub: Hub = HUB) -> None:
        self.hub = hub

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> bytes:
        renderer = self.hub.renderer
        if renderer is None:  # pragma: no cover - configure() installs the renderer first
            raise RuntimeError("obskit is not configured: call obskit.configure() first")
        event = event_dict.pop("event", "")
        if type(event) is not str:
            event = str(event)
        exc = event_dict.pop("exc_info", None) if "exc_info" in event_dict else None
        level, level_name, levelno = METHOD_LEVELS.get(
            method_name, ("INFO", method_name.upper(), 20)
        )
        if levelno < renderer.min_levelno:
            # A logger cached before configure() raised the level still has the old filter.
            raise DropEvent
        return renderer.render(
            time.time_ns(),
            level,
            event,
            getattr(logger, "name", None),
            event_dict,
            level_name,
            exc,
        )


class ObskitLogger:
    """The wrapped logger structlog calls with the rendered bytes; it queues them."""

    __slots__ = ("hub", "name")

    def __init__(self, name: str | None = None, hub: Hub = HUB) -> None:
        self.name = name
        self.hub = hub

    def msg(self, line: bytes) -> None:
        """Queue one rendered line."""
        self.hub.emit(line)

    debug = info = warning = warn = error = exception = critical = fatal = log = msg

    def __repr__(self) -> str:
        return f"<ObskitLogger name={self.name!r}>"


class ObskitLoggerFactory:
    """``structlog.get_logger(name)`` -> :class:`ObskitLogger` named ``name``."""

    def __init__(self, hub: Hub = HUB) -> None:
        self.hub = hub

    def __call__(self, *args: Any) -> ObskitLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return ObskitLogger(name, self.hub)
