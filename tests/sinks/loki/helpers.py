"""Batches of schema v1 lines for the Loki sink tests."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import Any

import orjson

from obskit._http import RetryConfig
from obskit.schema import Policy, validate_chunk
from sidecar.sinks.base import Batch, SinkMetrics
from sidecar.sinks.loki import Config, LokiSink

_seq = itertools.count(1)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def iso(ns: int) -> str:
    sec, frac = divmod(ns, 10**9)
    base = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def record(
    i: int,
    *,
    ts: int | None = None,
    service: str = "api",
    level: str = "INFO",
    trace: str | None = TRACE,
    span: str | None = SPAN,
    **extra: Any,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timestamp": iso(ts if ts is not None else time.time_ns() - 10**9 + i * 1000),
        "level": level,
        "service": service,
        "message": f"line {i}",
    }
    if trace:
        rec["trace_id"] = trace
        if span:
            rec["span_id"] = span
    rec.update(extra)
    return rec


def batch(records: list[dict[str, Any]], static: dict[str, str] | None = None) -> Batch:
    chunk = b"".join(orjson.dumps(r) + b"\n" for r in records)
    res = validate_chunk(chunk, Policy())
    assert not res.violations, res.violations
    recs = [r for r in res.records if r is not None]
    return Batch(
        seq=next(_seq),
        lines=res.lines,
        records=recs,
        offsets=list(range(len(recs))),
        runs=[(0, "f")],
        static=static if static is not None else {"host": "node-1"},
    )


class RecordingMetrics(SinkMetrics):
    def __init__(self) -> None:
        self.retries: list[str] = []
        self.requests: list[str] = []
        self.dead: dict[str, int] = {}
        self.sent_lines = 0

    def request(self, seconds: float, outcome: str) -> None:
        self.requests.append(outcome)

    def retry(self, cause: str) -> None:
        self.retries.append(cause)

    def sent(self, lines: int, nbytes: int) -> None:
        self.sent_lines += lines

    def dead_lettered(self, reason: str, lines: int = 1) -> None:
        self.dead[reason] = self.dead.get(reason, 0) + lines


def sink(url: str, **kw: Any) -> tuple[LokiSink, RecordingMetrics]:
    kw.setdefault("retry", RetryConfig(initial=0.01, max=0.05))
    s = LokiSink("loki", Config(url=url, **kw))
    m = RecordingMetrics()
    s.metrics = m
    s.start()
    return s, m
