"""``obskit audit``: did every line arrive? Lines per service and minute in log files (or the
file sink's archive) against the same minutes in Loki or Elasticsearch/OpenSearch.

Library use (e.g. as the oracle of a chaos test)::

    from obskit.audit import compare
    from obskit.trace.config import LokiConfig

    result = compare(files=["/var/log/app"], backend=LokiConfig(url="http://127.0.0.1:3100"),
                     settle=0)
    assert result.ok, (result.missing, result.duplicated, result.diffs[:5])
"""

from obskit.audit.buckets import MINUTE_NS, BackendCounts, BucketRange, Edges
from obskit.audit.compare import (
    AuditResult,
    BucketDiff,
    ServiceTotals,
    compare,
    compare_all,
)
from obskit.audit.files import FileCounts, count_files

__all__ = [
    "MINUTE_NS",
    "AuditResult",
    "BackendCounts",
    "BucketDiff",
    "BucketRange",
    "Edges",
    "FileCounts",
    "ServiceTotals",
    "compare",
    "compare_all",
    "count_files",
]
