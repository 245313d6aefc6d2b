"""Against a real OTLP endpoint: set OBSKIT_TEST_OTLP_URL (a Loki 3's ``http://loki:3100/otlp``,
or a Collector) and, to query the lines back, OBSKIT_TEST_LOKI_URL (that Loki's base URL;
OBSKIT_TEST_LOKI_TENANT for a multi-tenant one). Run
``pytest -m live tests/live/test_otlp_live.py``."""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import httpx
import pytest

from obskit.trace.config import LokiConfig, TraceConfig
from obskit.trace.lookup import run_lookup
from obskit.trace.model import Window
from tests.sinks.otlp.helpers import batch, sink

URL = os.environ.get("OBSKIT_TEST_OTLP_URL")
LOKI = os.environ.get("OBSKIT_TEST_LOKI_URL")
TENANT = os.environ.get("OBSKIT_TEST_LOKI_TENANT")
LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="OBSKIT_TEST_OTLP_URL is not set"),
]


def records(trace: str, service: str, now_ns: int, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        t = now_ns - 1000 * (n - i)
        out.append(
            {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9))
                + f".{t % 10**9:09d}Z",
                "level": LEVELS[i % 4],
                "service": service,
                "message": f"otlp live {i}",
                "trace_id": trace,
                "span_id": f"{i + 1:016x}",
                "seq": i,
                "http": {"status": 200 + i},
            }
        )
    return out


def query(trace: str, service: str, now_ns: int, want: int) -> list[list[Any]]:
    assert LOKI
    headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    if TENANT:
        headers["X-Scope-OrgID"] = TENANT
    params = {
        "query": f'{{service_name="{service}"}} | trace_id="{trace}"',
        "start": str(now_ns - 3600 * 10**9),
        "end": str(now_ns + 60 * 10**9),
        "limit": "1000",
        "direction": "forward",
    }
    deadline = time.monotonic() + 60  # ingestion to query visibility takes a moment
    got: list[list[Any]] = []
    while time.monotonic() < deadline:
        r = httpx.get(
            LOKI.rstrip("/") + "/loki/api/v1/query_range",
            params=params,
            headers=headers,
            timeout=30,
        )
        r.raise_for_status()
        got = [
            [*v[:2], {**s["stream"], **v[2].get("structuredMetadata", {})}]
            for s in r.json()["data"]["result"]
            for v in s["values"]
        ]
        if len(got) >= want:
            break
        time.sleep(1)
    return got


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_ship_then_query_back_by_trace_id(encoding: str) -> None:
    assert URL
    trace = secrets.token_hex(16)
    service = f"obskit-otlp-live-{encoding}"
    now = time.time_ns()
    recs = records(trace, service, now, 40)
    if LOKI:
        # A week-old line: Loki's to refuse (reject_old_samples) while it stores the others.
        recs.append({**recs[0], "timestamp": "2020-01-01T00:00:00Z", "seq": 99})
    b = batch(recs, static={"host": "obskit-live-test", "environment": "live"})
    s, m = sink(URL, encoding=encoding, retry={"initial": 0.2, "max": 2})
    try:
        res = s.send(b)
    finally:
        s.close()
    if not LOKI:
        assert res.rejected == [] and m.sent_lines == 40
        return
    assert [i for i, _ in res.rejected] == [40], res.rejected
    assert "too old" in res.rejected[0][1]

    got = query(trace, service, now, 40)
    assert len(got) == 40
    assert [v[1] for v in got] == [f"otlp live {i}" for i in range(40)]
    for i, (ts, _, labels) in enumerate(got):
        assert labels["service_name"] == service
        assert labels["deployment_environment_name"] == "live"
        assert labels["severity_text"] == LEVELS[i % 4]
        assert labels["severity_number"] == str({0: 5, 1: 9, 2: 13, 3: 17}[i % 4])
        assert (labels["trace_id"], labels["span_id"]) == (trace, f"{i + 1:016x}")
        assert labels["http_status"] == str(200 + i) and labels["seq"] == str(i)
        assert int(ts) == now - 1000 * (40 - i)

    # obskit trace finds them (service_name streams, structured metadata), levels included.
    cfg = TraceConfig(loki=LokiConfig(url=LOKI, tenant=TENANT, mode="metadata"))
    found = run_lookup(cfg, trace, Window(now - 3600 * 10**9, now + 60 * 10**9))
    assert not found.errors, found.errors
    assert [(e.service, e.level, e.message, e.problems) for e in found.entries] == [
        (service, LEVELS[i % 4], f"otlp live {i}", []) for i in range(40)
    ]
