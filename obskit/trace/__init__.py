"""``obskit trace``: every log line of one trace, across services, from Loki,
Elasticsearch/OpenSearch or local files, merged into one timeline."""

from obskit.trace.lookup import BackendResult, LookupResult, run_lookup
from obskit.trace.model import (
    BackendError,
    Entry,
    TraceUsageError,
    Window,
    entry_from_line,
    merge,
    parse_trace_id,
)

__all__ = [
    "BackendError",
    "BackendResult",
    "Entry",
    "LookupResult",
    "TraceUsageError",
    "Window",
    "entry_from_line",
    "merge",
    "parse_trace_id",
    "run_lookup",
]
