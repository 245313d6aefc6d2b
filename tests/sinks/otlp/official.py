"""The schema v1 -> OTLP mapping written a second time, straightforwardly, with the official
``opentelemetry-proto`` runtime: the reference the hand-written encoder is compared with
(byte for byte) and the baseline of ``bench/bench_otlp.py``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from obskit.schema.record import Record

SEVERITY = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}
MAX_DEPTH = 16
SCHEMA = ("timestamp", "level", "service", "message", "trace_id", "span_id")


class _Text(str):
    pass


def _float(text: str) -> Any:
    v = float(text)
    return v if math.isfinite(v) else _Text(text)


def set_any(av: AnyValue, v: Any, depth: int) -> None:
    if isinstance(v, bool):
        av.bool_value = v
    elif isinstance(v, int):
        if -(2**63) <= v < 2**63:
            av.int_value = v
        else:
            av.string_value = str(v)
    elif isinstance(v, float):
        av.double_value = v
    elif isinstance(v, str):
        av.string_value = str(v)
    elif v is None:
        pass
    elif depth > MAX_DEPTH:
        av.string_value = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(v, list):
        arr = av.array_value
        for x in v:
            set_any(arr.values.add(), x, depth + 1)
        if not v:
            av.array_value.SetInParent()
    elif isinstance(v, dict):
        kvl = av.kvlist_value
        for k, x in v.items():
            kv = kvl.values.add(key=k)
            kv.value.SetInParent()
            set_any(kv.value, x, depth + 1)
        if not v:
            av.kvlist_value.SetInParent()


def _id(value: Any, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == size and any(raw) else None


def official_request(
    groups: Sequence[tuple[Sequence[tuple[str, Any]], Sequence[tuple[bytes, Record, int, int]]]],
    *,
    body: str = "message",
    scope_version: str = "",
) -> ExportLogsServiceRequest:
    """``groups``: (resource attributes, [(line, record, time ns, observed ns)]) each."""
    req = ExportLogsServiceRequest()
    for res_attrs, recs in groups:
        rl = req.resource_logs.add()
        rl.resource.SetInParent()
        for k, v in res_attrs:
            kv = rl.resource.attributes.add(key=k)
            kv.value.SetInParent()
            set_any(kv.value, v, 1)
        sl = rl.scope_logs.add()
        sl.scope.name = "obskit-sidecar"
        if scope_version:
            sl.scope.version = scope_version
        for line, rec, ts, observed in recs:
            lr = sl.log_records.add()
            lr.time_unix_nano = ts
            lr.observed_time_unix_nano = observed
            lr.severity_number = SEVERITY[rec.level]  # type: ignore[assignment]
            lr.severity_text = rec.level
            tid = _id(rec.trace_id, 16)
            sid = _id(rec.span_id, 8) if tid else None
            if tid:
                lr.trace_id = tid
            if sid:
                lr.span_id = sid
            if body == "line":
                lr.body.string_value = line.decode()
                continue
            lr.body.string_value = rec.message
            obj = json.loads(line, parse_float=_float)
            for k, v in obj.items():
                carried = {
                    "timestamp": v == rec.timestamp,
                    "level": v == rec.level,
                    "service": v == rec.service,
                    "message": v == rec.message,
                    "trace_id": tid is not None and v == rec.trace_id,
                    "span_id": sid is not None and v == rec.span_id,
                }
                if carried.get(k, False):
                    continue
                kv = lr.attributes.add(key=k)
                kv.value.SetInParent()
                set_any(kv.value, v, 1)
    return req
