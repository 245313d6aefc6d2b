"""Organisation policy on top of schema v1, from ``obskit.toml`` or ``[tool.obskit]``."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from obskit.schema.encoding import TextFileError, read_text_file
from obskit.schema.rules import DEFAULT_MAX_LINE_BYTES, LEVELS, SERVICE_RE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]


T = TypeVar("T")


class PolicyError(ValueError):
    """The policy file is unreadable or has a wrong value (message names file and key)."""


@dataclass(frozen=True)
class Policy:
    """What an organisation asks beyond schema v1. The default asks nothing more."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    allow_blank: bool = False
    #: Extra top-level keys every record must carry (e.g. ``env``).
    required_fields: tuple[str, ...] = ()
    #: Allowed service names; entries may be exact names or ``re:`` regular expressions.
    allowed_services: tuple[str, ...] = ()
    #: Minimum fraction (0..1) of lines at or above ``trace_min_level`` that carry trace_id.
    trace_min_fraction: float = 0.0
    trace_min_level: str = "INFO"
    #: Report duplicate non-schema keys (OBS101 warnings); scans every line, so slower.
    warn_duplicate_keys: bool = False
    _service_res: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_line_bytes < 16:
            raise PolicyError(f"max_line_bytes must be at least 16, got {self.max_line_bytes}")
        if not 0.0 <= self.trace_min_fraction <= 1.0:
            raise PolicyError(
                "trace_coverage.min_fraction must be between 0 and 1, "
                f"got {self.trace_min_fraction}"
            )
        if self.trace_min_level not in LEVELS:
            raise PolicyError(
                f"trace_coverage.min_level must be one of {', '.join(LEVELS)}, "
                f"got {self.trace_min_level!r}"
            )
        res = []
        for entry in self.allowed_services:
            if entry.startswith("re:"):
                try:
                    res.append(re.compile(entry[3:]))
                except re.error as exc:
                    raise PolicyError(f"allowed_services: bad pattern {entry!r}: {exc}") from exc
            elif not SERVICE_RE.fullmatch(entry):
                raise PolicyError(f"allowed_services: {entry!r} is not a valid service name")
        object.__setattr__(self, "_service_res", tuple(res))

    def service_allowed(self, service: str) -> bool:
        """Whether ``service`` passes ``allowed_services`` (always, when that list is empty)."""
        if not self.allowed_services:
            return True
        if service in self.allowed_services:
            return True
        return any(r.fullmatch(service) for r in self._service_res)

    @property
    def is_default(self) -> bool:
        """True when the policy adds nothing to schema v1 except possibly line length."""
        return not (
            self.required_fields
            or self.allowed_services
            or self.trace_min_fraction
            or self.warn_duplicate_keys
        )


_KEYS = {
    "max_line_bytes",
    "allow_blank",
    "required_fields",
    "allowed_services",
    "trace_coverage",
    "warn_duplicate_keys",
}


def policy_from_mapping(data: dict[str, Any], source: str = "<policy>") -> Policy:
    """Build a :class:`Policy` from the ``[tool.obskit]`` / ``obskit.toml`` table.

    Types are checked strictly: a TOML string where a list is expected would otherwise be
    split into characters, and ``"no"`` would be a true boolean.
    """
    # Tables read by other commands (`obskit trace` reads [trace]) are not policy keys.
    unknown = set(data) - _KEYS - {"validate", "trace"}
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    tc = data.get("trace_coverage", {})
    if not isinstance(tc, dict):
        raise PolicyError(f"{source}: trace_coverage must be a table")
    unknown = set(tc) - {"min_fraction", "min_level"}
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) trace_coverage.{', '.join(sorted(unknown))}")
    try:
        return Policy(
            max_line_bytes=_typed(data, "max_line_bytes", int, DEFAULT_MAX_LINE_BYTES),
            allow_blank=_typed(data, "allow_blank", bool, False),
            required_fields=_strings(data, "required_fields"),
            allowed_services=_strings(data, "allowed_services"),
            trace_min_fraction=float(_typed(tc, "min_fraction", float, 0.0, "trace_coverage.")),
            trace_min_level=_typed(tc, "min_level", str, "INFO", "trace_coverage."),
            warn_duplicate_keys=_typed(data, "warn_duplicate_keys", bool, False),
        )
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


_TYPE_NAMES = {int: "an integer", bool: "true or false", float: "a number", str: "a string"}


def _typed(data: dict[str, Any], key: str, typ: type[T], default: T, prefix: str = "") -> T:
    value = data.get(key, default)
    ok = isinstance(value, typ) and not (typ is not bool and isinstance(value, bool))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise PolicyError(f"{prefix}{key} must be {_TYPE_NAMES[typ]}, got {value!r}")
    return value  # type: ignore[no-any-return]


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise PolicyError(f"{key} must be a list of strings, got {value!r}")
    return tuple(value)


def load_policy(path: Path | None = None, start: Path | None = None) -> Policy:
    """Load the policy from ``path``, or find ``obskit.toml`` / ``pyproject.toml`` upwards
    from ``start`` (default: the current directory). No file found means the default policy."""
    if path is not None:
        return _load_file(path)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        cand = folder / "obskit.toml"
        if cand.is_file():
            return _load_file(cand)
        pp = folder / "pyproject.toml"
        if pp.is_file():
            try:
                data = tomllib.loads(read_text_file(pp))
            except (OSError, TextFileError, tomllib.TOMLDecodeError):
                continue  # someone else's broken pyproject.toml is not our policy
            table = data.get("tool", {}).get("obskit")
            if isinstance(table, dict):
                return policy_from_mapping(table, f"{pp} [tool.obskit]")
    return Policy()


def _load_file(path: Path) -> Policy:
    try:
        data = tomllib.loads(read_text_file(path))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror or exc}") from None
    except TextFileError as exc:
        raise PolicyError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("obskit", {})
    return policy_from_mapping(data, str(path))
