"""Against a real Elasticsearch 8/9 or OpenSearch 2/3: set OBSKIT_TEST_ES_URL and run
``pytest -m live tests/live/test_es_live.py``.

Credentials (optional): OBSKIT_TEST_ES_API_KEY, or OBSKIT_TEST_ES_USERNAME with
OBSKIT_TEST_ES_PASSWORD; OBSKIT_TEST_ES_CA_FILE for a private CA. Documents go to data
streams ``logs-obskit_live-<namespace>`` (namespace OBSKIT_TEST_ES_NAMESPACE, default
``obskittest``), which the test deletes at the end.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from obskit._http import AuthConfig, Credentials, RetryConfig, TLSConfig, make_client
from sidecar.es_setup import es_setup
from sidecar.sinks.elasticsearch import Config, ElasticsearchSink

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sinks" / "elasticsearch"))
from es_batches import line, make_batch

URL = os.environ.get("OBSKIT_TEST_ES_URL", "").rstrip("/")
NAMESPACE = os.environ.get("OBSKIT_TEST_ES_NAMESPACE", "obskittest")
SERVICE = "obskit_live"

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="OBSKIT_TEST_ES_URL is not set"),
]


def _auth() -> tuple[AuthConfig | None, list[str]]:
    if os.environ.get("OBSKIT_TEST_ES_API_KEY"):
        return AuthConfig(api_key_env="OBSKIT_TEST_ES_API_KEY"), [
            "--api-key-env",
            "OBSKIT_TEST_ES_API_KEY",
        ]
    if os.environ.get("OBSKIT_TEST_ES_USERNAME"):
        user = os.environ["OBSKIT_TEST_ES_USERNAME"]
        return AuthConfig(username=user, password_env="OBSKIT_TEST_ES_PASSWORD"), [
            "--username",
            user,
            "--password-env",
            "OBSKIT_TEST_ES_PASSWORD",
        ]
    return None, []


def _tls() -> tuple[TLSConfig | None, list[str]]:
    ca = os.environ.get("OBSKIT_TEST_ES_CA_FILE")
    return (TLSConfig(ca_file=ca), ["--ca-file", ca]) if ca else (None, [])


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    auth, _ = _auth()
    tls, _ = _tls()
    with make_client(timeout=30, tls=tls, credentials=Credentials.resolve(auth)) as c:
        yield c
    c2 = make_client(timeout=30, tls=tls, credentials=Credentials.resolve(auth))
    c2.delete(f"{URL}/_data_stream/logs-{SERVICE}-{NAMESPACE}")
    c2.close()


def test_setup_ship_and_find_the_trace(client: httpx.Client) -> None:
    auth, auth_args = _auth()
    tls, tls_args = _tls()
    res = CliRunner().invoke(es_setup, ["--url", URL, *auth_args, *tls_args])
    assert res.exit_code == 0, res.output
    again = CliRunner().invoke(es_setup, ["--url", URL, *auth_args, *tls_args])
    assert again.exit_code == 0, again.output

    trace = secrets.token_hex(16)
    now = time.time()
    lines = []
    for i in range(60):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 60 + i)) + f".{i:06d}123Z"
        rec = orjson.loads(line(i, SERVICE, trace=trace if i % 2 == 0 else None))
        lines.append(orjson.dumps({**rec, "timestamp": ts}))
    batch = make_batch(lines, file_key=f"live-{trace}", static={"host": "obskit-live-test"})
    cfg = Config(
        url=URL, namespace=NAMESPACE, auth=auth, tls=tls, retry=RetryConfig(initial=0.2, max=2)
    )
    sink = ElasticsearchSink("live", cfg)
    sink.start()
    try:
        assert sink.send(batch).rejected == []
        # Sent again (a restart replaying unacknowledged lines): 409s, nothing stored twice.
        assert sink.send(batch).rejected == []
        assert sink.duplicates == 60
    finally:
        sink.close()

    stream = f"logs-{SERVICE}-{NAMESPACE}"
    client.post(f"{URL}/{stream}/_refresh")
    body = {
        "size": 100,
        "query": {"bool": {"filter": [{"term": {"trace_id": trace}}]}},
        "sort": [{"@timestamp": "asc"}, {"timestamp": "asc"}],
    }
    resp = client.post(f"{URL}/{stream}/_search", json=body)
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]["hits"]
    assert [h["_source"]["message"] for h in hits] == [
        f"handled request {i}" for i in range(0, 60, 2)
    ]
    src = hits[0]["_source"]
    assert src["host"] == "obskit-live-test" and src["@timestamp"] == src["timestamp"]
    count = client.post(f"{URL}/{stream}/_count", json={}).json()["count"]
    assert count == 60
    ds = client.get(f"{URL}/_data_stream/{stream}").json()["data_streams"][0]
    assert ds["template"] == "obskit-logs"
