"""Against a real Loki (3.x, schema v13): set OBSKIT_TEST_LOKI_URL (and optionally
OBSKIT_TEST_LOKI_TENANT) and run ``pytest -m live tests/live/test_loki_live.py``."""

from __future__ import annotations

import os
import secrets
import time

import httpx
import pytest

from obskit._http import RetryConfig
from sidecar.sinks.loki import Config, LokiSink
from tests.sinks.loki.helpers import batch, record

URL = os.environ.get("OBSKIT_TEST_LOKI_URL")
TENANT = os.environ.get("OBSKIT_TEST_LOKI_TENANT")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="OBSKIT_TEST_LOKI_URL is not set"),
]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_push_then_query_by_trace_id(encoding: str) -> None:
    assert URL
    trace = secrets.token_hex(16)
    now = time.time_ns()
    recs = [
        record(i, ts=now - 1000 * (50 - i), service="obskit-live", trace=trace) for i in range(50)
    ]
    recs.append(record(99, ts=now - 8 * 24 * 3600 * 10**9, service="obskit-live", trace=trace))
    b = batch(recs, static={"host": "obskit-live-test"})
    sink = LokiSink(
        "live",
        Config(url=URL, tenant=TENANT, encoding=encoding, retry=RetryConfig(initial=0.2, max=2)),
    )
    sink.start()
    try:
        res = sink.send(b)
    finally:
        sink.close()
    # The week-old line is Loki's to refuse, everything else is stored. Its reason depends on
    # the limits: "too old" with reject_old_samples (the default), "too far behind" when that
    # is off and the out-of-order window refuses it instead (seen with Loki 3.8).
    assert [i for i, _ in res.rejected] == [50], res.rejected
    assert any(r in res.rejected[0][1] for r in ("too old", "too far behind")), res.rejected

    headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    if TENANT:
        headers["X-Scope-OrgID"] = TENANT
    params = {
        "query": f'{{service="obskit-live"}} | trace_id="{trace}"',
        "start": str(now - 3600 * 10**9),
        "end": str(now + 60 * 10**9),
        "limit": "1000",
        "direction": "forward",
    }
    deadline = time.monotonic() + 60  # ingestion to query visibility takes a moment
    got: list[list[object]] = []
    while time.monotonic() < deadline:
        r = httpx.get(
            URL.rstrip("/") + "/loki/api/v1/query_range", params=params, headers=headers, timeout=30
        )
        r.raise_for_status()
        got = [v for s in r.json()["data"]["result"] for v in s["values"]]
        if len(got) >= 50:
            break
        time.sleep(1)
    assert len(got) == 50
    assert {v[1] for v in got} == {line.decode() for line in b.lines[:50]}
    meta = got[0][2] if len(got[0]) > 2 else {}
    assert isinstance(meta, dict) and meta.get("structuredMetadata", {}).get("trace_id") == trace
