"""Helpers for the trace lookup tests: write log lines the way services and shippers do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import orjson

from obskit.schema import timestamp_ns
from obskit.trace.model import format_ns

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"


def record(
    ts_ns: int,
    service: str = "checkout",
    level: str = "INFO",
    message: str = "handled",
    trace_id: str | None = TRACE,
    span_id: str | None = "00f067aa0ba902b7",
    **extra: Any,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timestamp": format_ns(ts_ns, 9),
        "level": level,
        "service": service,
        "message": message,
    }
    if trace_id:
        rec["trace_id"] = trace_id
        if span_id:
            rec["span_id"] = span_id
    rec.update(extra)
    return rec


def line(rec: dict[str, Any]) -> str:
    return orjson.dumps(rec).decode()


def loki_push(
    url: str,
    records: Iterable[dict[str, Any]],
    *,
    metadata: bool = True,
    tenant: str | None = None,
) -> None:
    """Push records like the sidecar: stream labels service+level, trace ids as structured
    metadata (``metadata=False``: like a shipper that only sends the line)."""
    streams: dict[tuple[str, str], list[list[Any]]] = {}
    for rec in records:
        value: list[Any] = [str(timestamp_ns(rec["timestamp"])), line(rec)]
        if metadata and rec.get("trace_id"):
            sm = {"trace_id": rec["trace_id"]}
            if rec.get("span_id"):
                sm["span_id"] = rec["span_id"]
            value.append(sm)
        streams.setdefault((rec["service"], rec["level"]), []).append(value)
    body = {
        "streams": [
            {"stream": {"service": s, "level": lvl}, "values": v} for (s, lvl), v in streams.items()
        ]
    }
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    r = httpx.post(f"{url}/loki/api/v1/push", json=body, headers=headers, timeout=30)
    assert r.status_code == 204, r.text


def es_bulk(url: str, records: Sequence[dict[str, Any]], index: str = "logs-app-default") -> None:
    """Index records like the sidecar's Elasticsearch sink: the record plus ``@timestamp``."""
    parts = []
    for rec in records:
        parts.append(orjson.dumps({"create": {"_index": index}}))
        parts.append(orjson.dumps({"@timestamp": rec["timestamp"], **rec}))
    r = httpx.post(
        f"{url}/_bulk",
        content=b"\n".join(parts) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert not r.json()["errors"], r.text[:500]
