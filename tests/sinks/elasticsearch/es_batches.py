"""Batches for the Elasticsearch sink tests, built as the engine builds them."""

from __future__ import annotations

import orjson

from obskit._http import RetryConfig
from obskit.schema import Policy, validate_chunk
from sidecar.sinks.base import Batch

FAST_RETRY = RetryConfig(initial=0.02, max=0.2, multiplier=2.0)


def line(i: int, service: str = "checkout", trace: str | None = None, **extra: object) -> bytes:
    rec: dict[str, object] = {
        "timestamp": f"2026-11-25T10:00:{i % 60:02d}.{i:06d}123Z",
        "level": "INFO",
        "service": service,
        "message": f"handled request {i}",
    }
    if trace:
        rec["trace_id"] = trace
        rec["span_id"] = f"{i + 1:016x}"
    rec.update(extra)
    return orjson.dumps(rec)


def make_batch(
    lines: list[bytes], file_key: str = "f1", static: dict[str, str] | None = None, seq: int = 1
) -> Batch:
    """A batch as the engine builds it: validated records, ids ``<file_key>-<offset>``."""
    res = validate_chunk(b"\n".join(lines) + b"\n", Policy())
    assert all(r is not None for r in res.records), res.violations
    offsets, off = [], 0
    for raw in res.lines:
        offsets.append(off)
        off += len(raw) + 1
    return Batch(
        seq,
        list(res.lines),
        list(res.records),  # type: ignore[arg-type]
        offsets=offsets,
        runs=[(0, file_key)],
        static=dict(static or {}),
    )
