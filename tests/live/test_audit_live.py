"""``obskit audit`` against a real Loki and a real Elasticsearch/OpenSearch: set
OBSKIT_TEST_LOKI_URL (and optionally OBSKIT_TEST_LOKI_TENANT) and/or OBSKIT_TEST_ES_URL (with
the credentials described in test_es_live.py) and run ``pytest -m live
tests/live/test_audit_live.py``.

Each test ships three minutes of lines of a service name of its own with the real sink, writes
the same lines to a file plus three that are never shipped, stores two lines a second time,
and expects exactly those differences. The Elasticsearch test deletes its data stream.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from obskit._http import AuthConfig, Credentials, TLSConfig, make_client
from obskit.audit import AuditResult, compare
from obskit.audit.buckets import MINUTE_NS
from obskit.trace.config import ElasticsearchConfig, LokiConfig
from obskit.trace.model import Window
from tests.audit.audithelp import base_minute, ship_es, ship_loki, spread, write

LOKI_URL = os.environ.get("OBSKIT_TEST_LOKI_URL", "")
LOKI_TENANT = os.environ.get("OBSKIT_TEST_LOKI_TENANT")
ES_URL = os.environ.get("OBSKIT_TEST_ES_URL", "").rstrip("/")
ES_NAMESPACE = os.environ.get("OBSKIT_TEST_ES_NAMESPACE", "obskittest")

pytestmark = pytest.mark.live
MINUTES = 3


def _until_settled(run: Callable[[], AuditResult], want_backend: int) -> AuditResult:
    """Ingestion to query visibility takes a moment on a real server."""
    deadline = time.monotonic() + 60
    while True:
        res = run()
        if res.backend_total >= want_backend or time.monotonic() > deadline:
            return res
        time.sleep(1)


def _expected(res: AuditResult, t0: int) -> list[tuple[int, int, int]]:
    return [((d.start_ns - t0) // MINUTE_NS, d.files, d.backend) for d in res.diffs]


@pytest.mark.skipif(not LOKI_URL, reason="OBSKIT_TEST_LOKI_URL is not set")
def test_audit_against_real_loki(tmp_path: Path) -> None:
    service = f"obskit-audit-{secrets.token_hex(4)}"
    t0 = base_minute(20)
    lines = spread(t0, MINUTES, 6, service)
    never = spread(t0 + 2 * MINUTE_NS, 1, 3, service, first=900)
    write(tmp_path / "a.log", lines + never)
    ship_loki(LOKI_URL, lines, tenant=LOKI_TENANT)
    # The same two lines from a second instance: another stream, so Loki stores them again.
    ship_loki(LOKI_URL, lines[:2], instance="obskit-live-other", tenant=LOKI_TENANT)
    cfg = LokiConfig(url=LOKI_URL, tenant=LOKI_TENANT)
    w = Window(t0, t0 + MINUTES * MINUTE_NS)
    res = _until_settled(
        lambda: compare([tmp_path], cfg, window=w, services=[service], settle=0), 20
    )
    assert _expected(res, t0) == [(0, 6, 8), (2, 9, 6)], res.diffs
    assert (res.missing, res.duplicated) == (3, 2)
    mine = compare(
        [tmp_path],
        cfg,
        window=w,
        services=[service],
        instance="node-1",
        by_instance=True,
        settle=0,
    )
    assert _expected(mine, t0) == [(2, 9, 6)]


@pytest.mark.skipif(not LOKI_URL, reason="OBSKIT_TEST_LOKI_URL is not set")
def test_audit_counts_lines_shipped_over_otlp_in_real_loki(tmp_path: Path) -> None:
    # The OTLP sink into the same Loki's /otlp endpoint: streams labelled service_name.
    from tests.sinks.otlp.helpers import batch_of_lines
    from tests.sinks.otlp.helpers import sink as otlp_sink

    service = f"obskit-audit-otlp-{secrets.token_hex(4)}"
    t0 = base_minute(20)
    lines = spread(t0, MINUTES, 6, service)
    never = spread(t0 + 2 * MINUTE_NS, 1, 3, service, first=900)
    write(tmp_path / "a.log", lines + never)
    headers = {"X-Scope-OrgID": LOKI_TENANT} if LOKI_TENANT else {}
    sink, _ = otlp_sink(LOKI_URL.rstrip("/") + "/otlp", headers=headers)
    try:
        assert not sink.send(batch_of_lines(lines)).rejected
    finally:
        sink.close()
    cfg = LokiConfig(url=LOKI_URL, tenant=LOKI_TENANT)
    w = Window(t0, t0 + MINUTES * MINUTE_NS)
    res = _until_settled(
        lambda: compare([tmp_path], cfg, window=w, services=[service], settle=0), 18
    )
    assert _expected(res, t0) == [(2, 9, 6)], res.diffs
    assert (res.missing, res.duplicated, res.backend_total) == (3, 0, 18)


def _es_auth() -> tuple[ElasticsearchConfig, AuthConfig | None, TLSConfig | None]:
    """One set of credentials for the sink, the audit and the test's own requests."""
    auth = None
    if os.environ.get("OBSKIT_TEST_ES_API_KEY"):
        auth = AuthConfig(api_key_env="OBSKIT_TEST_ES_API_KEY")
    elif os.environ.get("OBSKIT_TEST_ES_USERNAME"):
        user = os.environ["OBSKIT_TEST_ES_USERNAME"]
        auth = AuthConfig(username=user, password_env="OBSKIT_TEST_ES_PASSWORD")
    ca = os.environ.get("OBSKIT_TEST_ES_CA_FILE")
    tls = TLSConfig(ca_file=ca) if ca else None
    cfg = ElasticsearchConfig(url=ES_URL, auth=auth or AuthConfig(), tls=tls)
    return cfg, auth, tls


@pytest.mark.skipif(not ES_URL, reason="OBSKIT_TEST_ES_URL is not set")
def test_audit_against_real_elasticsearch(tmp_path: Path) -> None:
    service = f"obskit_audit_{secrets.token_hex(4)}"
    stream = f"logs-{service}-{ES_NAMESPACE}"
    cfg, auth, tls = _es_auth()
    t0 = base_minute(20)
    lines = spread(t0, MINUTES, 6, service)
    never = spread(t0 + 2 * MINUTE_NS, 1, 3, service, first=900)
    write(tmp_path / "a.log", lines + never)
    with make_client(timeout=30, tls=tls, credentials=Credentials.resolve(auth)) as client:
        try:
            ship_es(ES_URL, lines, namespace=ES_NAMESPACE, auth=auth, tls=tls)
            # Two lines again without an id (another shipper): stored a second time.
            body = b"".join(
                orjson.dumps({"create": {}})
                + b"\n"
                + orjson.dumps({"@timestamp": orjson.loads(x)["timestamp"], **orjson.loads(x)})
                + b"\n"
                for x in lines[:2]
            )
            r = client.post(
                f"{ES_URL}/{stream}/_bulk",
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert r.status_code == 200 and not r.json()["errors"], r.text[:500]
            client.post(f"{ES_URL}/{stream}/_refresh")
            w = Window(t0, t0 + MINUTES * MINUTE_NS)
            res = _until_settled(
                lambda: compare([tmp_path], cfg, window=w, services=[service], settle=0), 20
            )
            assert _expected(res, t0) == [(0, 6, 8), (2, 9, 6)], res.diffs
            assert (res.missing, res.duplicated) == (3, 2)
        finally:
            client.delete(f"{ES_URL}/_data_stream/{stream}")
