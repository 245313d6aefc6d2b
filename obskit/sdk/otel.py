"""trace_id and span_id of the current OpenTelemetry span (opentelemetry-api only)."""

from __future__ import annotations

from opentelemetry.trace import get_current_span

# Formatting a 128-bit int as hex costs more than a dict lookup; a process sees a few
# thousand live traces at most between clears.
_HEX_CACHE: dict[tuple[int, int], tuple[str, str]] = {}


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` as lower-case hex when a valid span is current, else ``None``."""
    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    key = (ctx.trace_id, ctx.span_id)
    ids = _HEX_CACHE.get(key)
    if ids is None:
        if len(_HEX_CACHE) > 4096:
            _HEX_CACHE.clear()
        ids = _HEX_CACHE[key] = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    return ids
