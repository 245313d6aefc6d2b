"""obskit: structured logging and observability kit for containerised services.

``import obskit`` is cheap: the SDK (structlog, OpenTelemetry) is imported on first use of
one of the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SDK = {
    "configure": "obskit.sdk.configure",
    "get_logger": "obskit.sdk.configure",
    "shutdown": "obskit.sdk.configure",
    "flush": "obskit.sdk.configure",
    "stats": "obskit.sdk.configure",
    "current_settings": "obskit.sdk.configure",
    "bind": "obskit.sdk.context",
    "unbind": "obskit.sdk.context",
    "bound": "obskit.sdk.context",
    "clear": "obskit.sdk.context",
    "get_bound": "obskit.sdk.context",
    "Settings": "obskit.sdk.settings",
    "ConfigError": "obskit.sdk.settings",
    "ObskitJsonFormatter": "obskit.sdk.stdlib_formatter",
    "ObskitHandler": "obskit.sdk.stdlib_formatter",
}

__all__ = ["__version__", *_SDK]

if TYPE_CHECKING:
    from obskit.sdk.configure import (
        configure as configure,
    )
    from obskit.sdk.configure import (
        current_settings as current_settings,
    )
    from obskit.sdk.configure import (
        flush as flush,
    )
    from obskit.sdk.configure import (
        get_logger as get_logger,
    )
    from obskit.sdk.configure import (
        shutdown as shutdown,
    )
    from obskit.sdk.configure import (
        stats as stats,
    )
    from obskit.sdk.context import (
        bind as bind,
    )
    from obskit.sdk.context import (
        bound as bound,
    )
    from obskit.sdk.context import (
        clear as clear,
    )
    from obskit.sdk.context import (
        get_bound as get_bound,
    )
    from obskit.sdk.context import (
        unbind as unbind,
    )
    from obskit.sdk.settings import (
        ConfigError as ConfigError,
    )
    from obskit.sdk.settings import (
        Settings as Settings,
    )
    from obskit.sdk.stdlib_formatter import (
        ObskitHandler as ObskitHandler,
    )
    from obskit.sdk.stdlib_formatter import (
        ObskitJsonFormatter as ObskitJsonFormatter,
    )


def __getattr__(name: str) -> Any:
    module = _SDK.get(name)
    if module is None:
        raise AttributeError(f"module 'obskit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
