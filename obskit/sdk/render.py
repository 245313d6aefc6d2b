"""The one place a schema v1 line is built: both the structlog and the stdlib path end here.

Output field order: ``timestamp``, ``level``, ``service``, ``message``, ``trace_id``,
``span_id``, ``logger``, ``level_name``, bound context fields, the call's own fields, then
``error.type``/``error.message``/``error.stack`` (flat dotted keys).
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson

from obskit._jsonsafe import json_default, json_safe
from obskit.sdk.context import CONTEXT
from obskit.sdk.otel import current_ids
from obskit.sdk.redact import MASK, Redactor

#: Keys the SDK writes itself; a user field with one of these names is renamed ``ctx_<name>``.
RESERVED = frozenset(
    (
        "timestamp",
        "level",
        "service",
        "trace_id",
        "span_id",
        "message",
        "logger",
        "level_name",
        "error.type",
        "error.message",
        "error.stack",
    )
)
RENAME_PREFIX = "ctx_"

_OPTS = orjson.OPT_NON_STR_KEYS
_TRUNCATE_CHARS = 8192


def dumps(record: dict[str, Any]) -> bytes:
    """``record`` as one JSON line (no newline); never raises."""
    try:
        return orjson.dumps(record, default=json_default, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(json_safe(record), default=json_default, option=_OPTS)


# (second, formatted date-time prefix) in ONE object so concurrent threads never pair a new
# second with an old prefix.
_ts_cache: tuple[int, str] = (-1, "")


def format_ns(ns: int) -> str:
    """``ns`` since the epoch as RFC 3339 UTC with microseconds and ``Z``."""
    global _ts_cache
    sec, rem = divmod(ns, 1_000_000_000)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        # Formatting the date once per second keeps the per-call cost to one small f-string.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return f"{prefix}.{rem // 1000:06d}Z"


def exc_fields(exc_info: Any) -> dict[str, str] | None:
    """``error.*`` fields from ``True`` (current exception), an exception or an exc_info tuple."""
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return None
    etype, value, tb = exc_info
    try:
        stack = "".join(traceback.format_exception(etype, value, tb)).rstrip("\n")
    except Exception:  # pragma: no cover - a pathological exception object
        stack = "<traceback unavailable>"
    try:
        message = str(value)
    except Exception:
        message = f"<unprintable {etype.__name__}>"
    name = etype.__qualname__
    module = etype.__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return {"error.type": name, "error.message": message, "error.stack": stack}


class Renderer:
    """Precomputed per-configuration state and the hot path that turns a call into bytes."""

    __slots__ = ("_plan", "max_line_bytes", "min_levelno", "redactor", "service")

    def __init__(
        self, service: str, redactor: Redactor, max_line_bytes: int, min_levelno: int = 0
    ) -> None:
        self.service = service
        self.min_levelno = min_levelno
        self.redactor = redactor
        self.max_line_bytes = max_line_bytes
        # key -> (output key, is secret); one dict lookup per field on the hot path.
        self._plan: dict[str, tuple[str, bool]] = {}

    def _plan_key(self, key: str) -> tuple[str, bool]:
        out = key
        if key in RESERVED:
            out = RENAME_PREFIX + key
        plan = (out, self.redactor.is_secret(key))
        if len(self._plan) > 8192:
            self._plan.clear()
        self._plan[key] = plan
        return plan

    def _put(self, d: dict[str, Any], fields: Mapping[str, Any]) -> None:
        plans = self._plan
        nested = self.redactor.nested
        for key, value in fields.items():
            plan = plans.get(key) if type(key) is str else None
            if plan is None:
                plan = self._plan_key(str(key))
            out, secret = plan
            if secret:
                d[out] = MASK
            elif type(value) in _CONTAINERS:
                d[out] = nested(value)
            else:
                d[out] = value

    def render(
        self,
        ns: int,
        level: str,
        message: str,
        logger: str | None,
        fields: Mapping[str, Any] | None,
        level_name: str | None = None,
        exc_info: Any = None,
    ) -> bytes:
        """One schema v1 line (no newline) for a log call; never raises for bad values."""
        d: dict[str, Any] = {
            "timestamp": format_ns(ns),
            "level": level,
            "service": self.service,
            "message": message,
        }
        ids = current_ids()
        if ids is not None:
            d["trace_id"], d["span_id"] = ids
        if logger:
            d["logger"] = logger
        if level_name is not None:
            d["level_name"] = level_name
        ctx = CONTEXT.get()
        if ctx:
            self._put(d, ctx)
        if fields:
            self._put(d, fields)
        if exc_info:
            err = exc_fields(exc_info)
            if err is not None:
                d.update(err)
        line = dumps(d)
        if len(line) > self.max_line_bytes:
            line = self._shrink(d)
        return line

    def _shrink(self, d: dict[str, Any]) -> bytes:
        """Keep a too-long record under the line limit: cut long strings, then drop fields."""
        cut: dict[str, Any] = {}
        for key, value in d.items():
            if isinstance(value, str) and len(value) > _TRUNCATE_CHARS:
                value = f"{value[:_TRUNCATE_CHARS]}…[truncated {len(value) - _TRUNCATE_CHARS}]"
            elif isinstance(value, (dict, list, tuple)):
                value = _truncate_repr(value)
            cut[key] = value
        cut["truncated"] = True
        line = dumps(cut)
        if len(line) <= self.max_line_bytes:
            return line
        keep = ("timestamp", "level", "service", "message", "trace_id", "span_id", "logger")
        small = {k: cut[k] for k in keep if k in cut}
        small["message"] = small["message"][:1024]
        small["truncated"] = True
        return dumps(small)


def _truncate_repr(value: Any) -> Any:
    text = dumps({"v": value})
    if len(text) <= _TRUNCATE_CHARS:
        return value
    return text[:_TRUNCATE_CHARS].decode("utf-8", "ignore") + "…[truncated]"


_CONTAINERS = (dict, list, tuple)
