"""``obskit trace`` against a real Loki and/or Elasticsearch/OpenSearch.

Runs only with ``-m live`` and when ``OBSKIT_TEST_LOKI_URL`` / ``OBSKIT_TEST_ES_URL`` name the
servers (``OBSKIT_TEST_LOKI_TENANT``, ``OBSKIT_TEST_ES_INDEX`` optional). Each test writes a
fresh trace (a random id), larger than one page and with tied timestamps, then looks it up.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import httpx
import orjson
import pytest

from obskit.trace.config import ElasticsearchConfig, LokiConfig, TraceConfig
from obskit.trace.lookup import LookupResult, run_lookup
from obskit.trace.model import Window, format_ns

pytestmark = pytest.mark.live

LOKI = os.environ.get("OBSKIT_TEST_LOKI_URL")
ES = os.environ.get("OBSKIT_TEST_ES_URL")
N = 1200  # more than the pages used below


def _records(trace_id: str, now: int) -> list[dict[str, Any]]:
    out = []
    for i in range(N):
        ts = now - 60 * 10**9 + (i // 300) * 10**6  # groups of 300 lines share one instant
        out.append(
            {
                "timestamp": format_ns(ts, 9),
                "level": "INFO",
                "service": ["gateway", "checkout", "payments"][i % 3],
                "message": f"live {i:05d}",
                "trace_id": trace_id,
                "span_id": f"{i + 1:016x}",
            }
        )
    return out


def _wait(fn: Any, want: int, timeout: float = 60.0) -> LookupResult:
    deadline = time.monotonic() + timeout
    while True:
        res: LookupResult = fn()
        assert not res.errors, res.errors
        if len(res.entries) >= want or time.monotonic() > deadline:
            return res
        time.sleep(2)


@pytest.mark.skipif(not LOKI, reason="OBSKIT_TEST_LOKI_URL not set")
@pytest.mark.parametrize("metadata", [True, False])
def test_live_loki(metadata: bool) -> None:
    assert LOKI
    tid, now = secrets.token_hex(16), time.time_ns()
    recs = _records(tid, now)
    tenant = os.environ.get("OBSKIT_TEST_LOKI_TENANT")
    streams: dict[str, list[list[Any]]] = {}
    for r in recs:
        v: list[Any] = [str(now - 60 * 10**9 + int(r["message"][5:]) // 300 * 10**6)]
        v.append(orjson.dumps(r).decode())
        if metadata:
            v.append({"trace_id": tid, "span_id": r["span_id"]})
        streams.setdefault(r["service"], []).append(v)
    body = {"streams": [{"stream": {"service": s}, "values": v} for s, v in streams.items()]}
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    resp = httpx.post(f"{LOKI}/loki/api/v1/push", json=body, headers=headers, timeout=30)
    assert resp.status_code == 204, resp.text
    cfg = TraceConfig(loki=LokiConfig(url=LOKI, tenant=tenant, page_size=500))
    window = Window(now - 3600 * 10**9, now + 60 * 10**9)
    res = _wait(lambda: run_lookup(cfg, tid, window), N)
    assert sorted(e.message for e in res.entries) == sorted(r["message"] for r in recs)


@pytest.mark.skipif(not ES, reason="OBSKIT_TEST_ES_URL not set")
def test_live_elasticsearch() -> None:
    assert ES
    tid, now = secrets.token_hex(16), time.time_ns()
    recs = _records(tid, now)
    index = os.environ.get("OBSKIT_TEST_ES_INDEX", "logs-obskit-trace-test")
    lines = []
    for r in recs:
        lines.append(orjson.dumps({"create": {"_index": index}}))
        lines.append(orjson.dumps({"@timestamp": r["timestamp"], **r}))
    resp = httpx.post(
        f"{ES}/_bulk?refresh=wait_for",
        content=b"\n".join(lines) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert resp.status_code == 200 and not resp.json()["errors"], resp.text[:500]
    cfg = TraceConfig(elasticsearch=ElasticsearchConfig(url=ES, index=index, page_size=250))
    window = Window(now - 3600 * 10**9, now + 60 * 10**9)
    res = _wait(lambda: run_lookup(cfg, tid, window), N)
    assert sorted(e.message for e in res.entries) == sorted(r["message"] for r in recs)
