"""JSON for values orjson refuses, without losing the record: used by the SDK's render step
and by ``obskit trace``'s JSON output (a log line may hold a lone ``\\ud800`` escape)."""

from __future__ import annotations

from typing import Any


def json_default(obj: Any) -> Any:
    """orjson fallback: sets become lists, everything else its repr (never raise)."""
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    try:
        return repr(obj)
    except Exception:  # a broken __repr__ must not lose the record
        return f"<unrepresentable {type(obj).__name__}>"


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy for the rare values orjson refuses: integers beyond 64 bits become
    text, lone surrogates ``\\udXXX``, nesting past 32 levels (or a cycle) a marker."""
    if depth > 32:
        return "<nested too deep>"
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {
            (json_safe(k, depth + 1) if isinstance(k, str) else str(k)): json_safe(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    return json_safe(json_default(value), depth + 1)
