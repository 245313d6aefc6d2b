"""Sink types by name (``type:`` in config), imported lazily so a sidecar shipping only to
Loki never imports the Elasticsearch code, and a missing module is a config error."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Protocol, cast

from sidecar.sinks.base import Sink

#: ``type:`` value -> module implementing it (``Config`` struct and ``build(name, config)``).
SINK_TYPES: dict[str, str] = {
    "file": "sidecar.sinks.file",
    "loki": "sidecar.sinks.loki",
    "elasticsearch": "sidecar.sinks.elasticsearch",
    "opensearch": "sidecar.sinks.elasticsearch",
    "otlp": "sidecar.sinks.otlp",
}


class SinkTypeError(ValueError):
    """Unknown sink type, or its module is not available in this build."""


class SinkModule(Protocol):
    """What a sink module exposes."""

    Config: type[Any]

    def build(self, name: str, config: Any) -> Sink: ...


def sink_module(type_name: str) -> SinkModule:
    """The module implementing sink ``type_name``; raises :class:`SinkTypeError`."""
    modname = SINK_TYPES.get(type_name)
    if modname is None:
        known = ", ".join(sorted(SINK_TYPES))
        raise SinkTypeError(f"unknown sink type {type_name!r} (known: {known})")
    try:
        mod: ModuleType = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name != modname:
            raise
        raise SinkTypeError(
            f"sink type {type_name!r} is not available in this build ({modname} is missing)"
        ) from None
    if not hasattr(mod, "Config") or not hasattr(mod, "build"):
        raise SinkTypeError(f"sink type {type_name!r}: {modname} has no Config/build yet")
    return cast(SinkModule, mod)
