"""Helpers for the audit tests: log lines with chosen timestamps, written to real files and
shipped with the sidecar's real sinks (in-process) to the receivers over HTTP."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from obskit.audit.buckets import MINUTE_NS
from obskit.trace.model import Window, format_ns
from sidecar.sinks.base import Batch
from sidecar.sinks.elasticsearch import Config as EsConfig
from sidecar.sinks.elasticsearch import ElasticsearchSink
from sidecar.sinks.loki import Config as LokiConfig
from sidecar.sinks.loki import LokiSink
from tests.sinks.elasticsearch.es_batches import FAST_RETRY, make_batch

DAY_NS = 86_400 * 10**9
#: Test windows are at most this long; base_minute keeps them within one UTC day.
MAX_SPAN_NS = 150 * MINUTE_NS


def base_minute(minutes_ago: int = 90) -> int:
    """A whole minute a while ago: recent enough for Loki's reject_old_samples (7 days),
    old enough to have settled, and early enough in its UTC day that a test window of up to
    150 minutes does not cross midnight (the audit queries one day at a time, which would
    change the number of requests a test expects)."""
    start = (time.time_ns() // MINUTE_NS - minutes_ago) * MINUTE_NS
    midnight = (start // DAY_NS + 1) * DAY_NS
    if start + MAX_SPAN_NS > midnight:
        start = midnight - MAX_SPAN_NS
    return start


def line(ts_ns: int, service: str = "checkout", i: int = 0, **extra: Any) -> bytes:
    rec: dict[str, Any] = {
        "timestamp": format_ns(ts_ns, 9),
        "level": "INFO",
        "service": service,
        "message": f"line {i}",
    }
    rec.update(extra)
    return orjson.dumps(rec)


def spread(
    start_ns: int, minutes: int, per_minute: int, service: str = "checkout", first: int = 0
) -> list[bytes]:
    """``per_minute`` lines in each of ``minutes`` minutes, strictly inside the minute (never on
    a boundary), numbered from ``first``."""
    out = []
    i = first
    for m in range(minutes):
        for k in range(per_minute):
            ts = start_ns + m * MINUTE_NS + (k + 1) * (MINUTE_NS // (per_minute + 1))
            out.append(line(ts, service, i))
            i += 1
    return out


def write(path: Path, lines: Iterable[bytes], *, crlf: bool = False, gz: bool = False) -> Path:
    nl = b"\r\n" if crlf else b"\n"
    data = b"".join(raw + nl for raw in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def batch(lines: Sequence[bytes], file_key: str = "f1", seq: int = 1) -> Batch:
    """A batch as the engine builds it, from host ``node-1``."""
    return make_batch(list(lines), file_key, {"host": "node-1"}, seq)


def ship_loki(url: str, lines: Sequence[bytes], instance: str = "node-1", **cfg: Any) -> None:
    sink = LokiSink("loki", LokiConfig(url=url, instance=instance, retry=FAST_RETRY, **cfg))
    sink.start()
    try:
        for i in range(0, len(lines), 500):
            res = sink.send(batch(lines[i : i + 500], seq=i))
            assert not res.rejected, res.rejected[:3]
    finally:
        sink.close()


def ship_es(url: str, lines: Sequence[bytes], file_key: str = "f1", **cfg: Any) -> None:
    sink = ElasticsearchSink("es", EsConfig(url=url, retry=FAST_RETRY, **cfg))
    sink.start()
    try:
        res = sink.send(batch(lines, file_key))
        assert not res.rejected, res.rejected[:3]
    finally:
        sink.close()


def window(start_ns: int, minutes: int) -> Window:
    return Window(start_ns, start_ns + minutes * MINUTE_NS)
