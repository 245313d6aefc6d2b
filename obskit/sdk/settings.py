"""Every SDK option, its environment variable and its default, in one place."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Keys masked by default (matched as substrings of the lower-cased key, ``-`` read as ``_``).
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "private_key",
    "credential",
)


def default_log_dir() -> Path:
    """``C:\\app\\logs`` on Windows, ``/app/logs`` elsewhere."""
    if sys.platform == "win32":
        return Path("C:\\app\\logs")
    return Path("/", "app", "logs")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks an option that was not passed, so the environment variable (then default) applies.
UNSET: Any = _Unset()


@dataclass(frozen=True)
class Settings:
    """The resolved configuration (see docs/sdk.md for every option)."""

    service: str = "unknown-service"
    level: str = "INFO"
    log_dir: Path | None = field(default_factory=default_log_dir)
    stdout: bool = False
    max_bytes: int = 50 * 1024 * 1024
    rotate_seconds: float = 0.0
    keep_segments: int = 20
    keep_bytes: int = 500 * 1024 * 1024
    queue_size: int = 10_000
    flush_interval: float = 0.2
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    redact_patterns: tuple[str, ...] = ()
    max_line_bytes: int = 256 * 1024
    keep_handlers: bool = False
    capture_warnings: bool = True
    capture_exceptions: bool = True


_ENV: dict[str, str] = {
    "service": "OBSKIT_SERVICE",
    "level": "OBSKIT_LEVEL",
    "log_dir": "OBSKIT_LOG_DIR",
    "stdout": "OBSKIT_STDOUT",
    "max_bytes": "OBSKIT_MAX_BYTES",
    "rotate_seconds": "OBSKIT_ROTATE_SECONDS",
    "keep_segments": "OBSKIT_KEEP_SEGMENTS",
    "keep_bytes": "OBSKIT_KEEP_BYTES",
    "queue_size": "OBSKIT_QUEUE_SIZE",
    "flush_interval": "OBSKIT_FLUSH_INTERVAL",
    "redact_keys": "OBSKIT_REDACT_KEYS",
    "redact_patterns": "OBSKIT_REDACT_PATTERNS",
    "max_line_bytes": "OBSKIT_MAX_LINE_BYTES",
    "keep_handlers": "OBSKIT_KEEP_HANDLERS",
    "capture_warnings": "OBSKIT_CAPTURE_WARNINGS",
    "capture_exceptions": "OBSKIT_CAPTURE_EXCEPTIONS",
}

ENV_VARS: dict[str, str] = dict(_ENV)
_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """An option or environment variable has a value obskit cannot use."""


def _convert(name: str, value: Any, source: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if name == "log_dir":
            if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
                return None
            return Path(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if kind == "int":
            out = int(value)
            if out < 0:
                raise ValueError("must not be negative")
            return out
        if kind == "float":
            out_f = float(value)
            if out_f < 0:
                raise ValueError("must not be negative")
            return out_f
        if name in ("redact_keys", "redact_patterns"):
            if isinstance(value, str):
                sep = "," if name == "redact_keys" else ";;"
                return tuple(p.strip() for p in value.split(sep) if p.strip())
            return tuple(str(v) for v in value)
        if name == "level":
            text = str(value).strip().upper()
            if text not in _LEVELS:
                raise ValueError("expected DEBUG, INFO, WARN, ERROR (or WARNING, CRITICAL)")
            return "WARN" if text == "WARNING" else text
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"obskit: {source} = {value!r}: {exc}") from None


def resolve(env: dict[str, str] | None = None, **given: Any) -> Settings:
    """Merge explicit arguments over ``OBSKIT_*`` environment variables over defaults."""
    env = dict(os.environ) if env is None else env
    unknown = set(given) - set(_ENV)
    if unknown:
        raise ConfigError(f"obskit.configure: unknown option(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for name, var in _ENV.items():
        value = given.get(name, UNSET)
        if value is not UNSET:
            values[name] = _convert(name, value, name)
        elif var in env:
            values[name] = _convert(name, env[var], var)
    settings = Settings(**values)
    from obskit.schema.rules import check_service

    why = check_service(settings.service)
    if why is not None:
        raise ConfigError(f"obskit: service name {settings.service!r}: {why}")
    return settings
