"""Batches and sinks for the OTLP sink tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec

from obskit._durations import dec_hook
from obskit.schema import Policy, validate_chunk
from sidecar.sinks.base import Batch
from sidecar.sinks.otlp import Config, OTLPSink
from tests.sinks.loki.helpers import RecordingMetrics

_seq = itertools.count(1)


def batch_of_lines(
    lines: list[bytes], static: dict[str, str] | None = None, read_time: float = 1.7e9
) -> Batch:
    """A batch of already-encoded lines (each must be a valid schema v1 line)."""
    res = validate_chunk(b"".join(x + b"\n" for x in lines), Policy())
    assert not [v for v in res.violations if v.severity == "error"], res.violations
    recs = [r for r in res.records if r is not None]
    assert len(recs) == len(lines)
    return Batch(
        seq=next(_seq),
        lines=res.lines,
        records=recs,
        offsets=list(range(len(recs))),
        runs=[(0, "f")],
        static=static if static is not None else {"host": "node-1"},
        read_time=read_time,
    )


def batch(records: list[dict[str, Any]], **kw: Any) -> Batch:
    """A batch of records (``json.dumps``: integers of any size are kept exact)."""
    return batch_of_lines(
        [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in records], **kw
    )


def sink(url: str, **kw: Any) -> tuple[OTLPSink, RecordingMetrics]:
    """A started sink; ``kw`` as in the YAML file (``"2KiB"``, ``{"ca_file": ...}``)."""
    kw.setdefault("retry", {"initial": 0.01, "max": 0.05})
    s = OTLPSink("otlp", msgspec.convert({"url": url, **kw}, Config, dec_hook=dec_hook))
    m = RecordingMetrics()
    s.metrics = m
    s.start()
    return s, m
