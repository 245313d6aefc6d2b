"""The standard-library path: a python-json-logger formatter and a queueing handler.

``ObskitJsonFormatter`` is a :class:`pythonjsonlogger.core.BaseJsonFormatter`, so it can also
be named in a ``logging.config.dictConfig``; it renders through the same
:class:`~obskit.sdk.render.Renderer` as the structlog path, so both produce identical fields.
``extra={...}`` fields become top-level keys (schema names renamed ``ctx_<name>``).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, BaseJsonFormatter

from obskit.sdk.hub import HUB, Hub
from obskit.sdk.render import dumps

#: LogRecord attributes that are not user ``extra`` fields.
STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"taskName", "message", "asctime"}
_SAME_NAME = frozenset(("DEBUG", "INFO", "WARNING", "ERROR"))


def map_level(levelno: int, levelname: str) -> tuple[str, str | None]:
    """Schema level for a stdlib level, and ``level_name`` when the mapping loses detail.

    ``WARNING`` becomes ``WARN``; ``CRITICAL`` becomes ``ERROR`` with ``level_name`` =
    ``CRITICAL``; a custom level maps to the nearest lower standard level and keeps its name.
    """
    if levelno >= logging.ERROR:
        level = "ERROR"
    elif levelno >= logging.WARNING:
        level = "WARN"
    elif levelno >= logging.INFO:
        level = "INFO"
    else:
        level = "DEBUG"
    return level, (None if levelname in _SAME_NAME else levelname)


def _message(record: logging.LogRecord) -> tuple[str, dict[str, Any] | None]:
    msg = record.msg
    if isinstance(msg, dict) and not record.args:
        return "", msg
    try:
        return record.getMessage(), None
    except Exception:  # bad %-args must not lose the record
        return f"{msg!r} % {record.args!r}", None


class ObskitJsonFormatter(BaseJsonFormatter):
    """Formats a ``LogRecord`` as one schema v1 JSON line."""

    def __init__(self, *args: Any, hub: Hub = HUB, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hub = hub

    def fields(self, record: logging.LogRecord) -> dict[str, Any] | None:
        """The user fields of ``record`` (``extra`` and a dict message)."""
        extra = {k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRS}
        if record.stack_info:
            extra["stack"] = record.stack_info
        return extra

    def render(self, record: logging.LogRecord) -> bytes:
        """One schema v1 line as bytes (no newline)."""
        renderer = self.hub.renderer
        if renderer is None:
            raise RuntimeError("obskit is not configured: call obskit.configure() first")
        message, msg_fields = _message(record)
        fields = self.fields(record)
        if msg_fields:
            fields = {**msg_fields, **(fields or {})}
        level, level_name = map_level(record.levelno, record.levelname)
        return renderer.render(
            int(record.created * 1e9),
            level,
            message,
            record.name,
            fields,
            level_name,
            record.exc_info,
        )

    def format(self, record: logging.LogRecord) -> str:
        return self.render(record).decode("utf-8")

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """python-json-logger hook, for subclasses that call the base ``format``."""
        log_data.update(self.fields(record) or {})
        log_data.update(message_dict)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return dumps(log_data).decode("utf-8")


class ObskitHandler(logging.Handler):
    """Renders in the calling thread (context, span and exception are read there) and queues
    the line; the obskit writer thread does the I/O."""

    def __init__(self, level: int = logging.NOTSET, hub: Hub = HUB) -> None:
        super().__init__(level)
        self.hub = hub
        self.setFormatter(ObskitJsonFormatter(hub=hub))

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock: rendering is reentrant and the queue is thread-safe.
        rv: object = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fmt = self.formatter
            if isinstance(fmt, ObskitJsonFormatter):
                line = fmt.render(record)
            else:
                line = self.format(record).encode("utf-8", "backslashreplace")
            self.hub.emit(line)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        writer = self.hub.writer
        if writer is not None:
            writer.flush(timeout=2.0)
