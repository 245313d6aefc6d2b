"""Elasticsearch/OpenSearch backend against the in-process receiver (both flavours) and the
third-party osmem-server (an OpenSearch-API server from PyPI), over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from trace_helpers import OTHER, TRACE, es_bulk, record

from obskit._http import AuthConfig
from obskit.trace.config import ElasticsearchConfig, TraceConfig
from obskit.trace.elasticsearch import ElasticsearchBackend
from obskit.trace.lookup import run_lookup
from obskit.trace.model import Window
from tests.receivers.elasticsearch import EsReceiver

T0 = 1_795_600_800_000_000_000  # 2026-11-25T10:00:00Z
WINDOW = Window(T0 - 86400 * 10**9, T0 + 86400 * 10**9)


def dataset() -> list[dict[str, Any]]:
    """A 430-line trace: 250 lines share one millisecond (and one nanosecond), others spread,
    plus lines of another trace interleaved."""
    recs = [record(T0 + i * 10**6, service="gateway", message=f"a{i:03d}") for i in range(80)]
    tie = T0 + 10**9
    recs += [
        record(tie, service=["checkout", "payments"][i % 2], message=f"t{i:03d}")
        for i in range(250)
    ]
    recs += [record(tie + (i + 1) * 10**6, message=f"z{i:03d}") for i in range(100)]
    recs += [record(T0 + i * 10**7, trace_id=OTHER, message="other") for i in range(60)]
    return recs


def expected(recs: list[dict[str, Any]]) -> list[str]:
    return sorted(r["message"] for r in recs if r.get("trace_id") == TRACE)


def lookup(url: str, window: Window = WINDOW, **kw: Any) -> tuple[list[str], Any]:
    cfg = TraceConfig(elasticsearch=ElasticsearchConfig(url=url, **kw))
    res = run_lookup(cfg, TRACE, window)
    assert not res.errors, res.errors
    return [e.message for e in res.entries], res


@pytest.mark.parametrize("pit", [True, False])
@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_ties_across_pages_every_paging_mode(flavor: str, pit: bool) -> None:
    recs = dataset()
    with EsReceiver(flavor) as es:
        es_bulk(es.url, recs)
        got, res = lookup(es.url, page_size=100, pit=pit, shard="7d")
    assert len(got) == 430 and sorted(got) == expected(recs)
    # In time order: the timeline is sorted by the lines' own timestamps.
    assert got[:80] == [f"a{i:03d}" for i in range(80)]
    assert got[-100:] == [f"z{i:03d}" for i in range(100)]
    assert res.backends[0].requests == 5


def test_elasticsearch_pit_uses_search_after_on_shard_doc(es_receiver: EsReceiver) -> None:
    es_bulk(es_receiver.url, dataset())
    b = ElasticsearchBackend(ElasticsearchConfig(url=es_receiver.url, page_size=100), TRACE)
    b.prepare()
    assert b.flavor == "elasticsearch" and b.pit_kind == "_pit" and b.uses_search_after()
    assert b.sort()[1] == {"_shard_doc": "asc"}
    assert len(b.search(WINDOW)) == 430
    assert b.stats.requests == 5  # 430 hits / 100 per page -> 4 full pages + 1 short
    b.close()
    assert not es_receiver.cluster.pits  # the PIT was closed


def test_opensearch_pit_pages_on_cursor(os_receiver: EsReceiver) -> None:
    es_bulk(os_receiver.url, dataset())
    b = ElasticsearchBackend(ElasticsearchConfig(url=os_receiver.url, page_size=100), TRACE)
    b.prepare()
    assert b.flavor == "opensearch" and b.pit_kind == "_search/point_in_time"
    assert not b.uses_search_after() and len(b.sort()) == 1
    assert len(b.search(WINDOW)) == 430
    b.close()


def test_shards_across_a_week(es_receiver: EsReceiver) -> None:
    start = T0 - 7 * 86400 * 10**9
    recs = [record(start + i * 6 * 3600 * 10**9, message=f"d{i:02d}") for i in range(28)]
    es_bulk(es_receiver.url, recs)
    got, res = lookup(es_receiver.url, Window(start, T0), shard="1d")
    assert got == [f"d{i:02d}" for i in range(28)]
    assert res.backends[0].requests == 7  # one page per day shard


def test_index_pattern_and_missing_index(es_receiver: EsReceiver) -> None:
    es_bulk(es_receiver.url, [record(T0, message="in app")], index="logs-app-default")
    es_bulk(es_receiver.url, [record(T0, message="in web")], index="logs-web-default")
    assert lookup(es_receiver.url, index="logs-app-*")[0] == ["in app"]
    assert lookup(es_receiver.url, index="nothing-*")[0] == []


def test_credentials_and_auth_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    good = EsReceiver.basic("elastic", "s3cret-pw")
    with EsReceiver(auth=[good, "ApiKey a2V5OnNlY3JldA=="]) as es:
        httpx.post(
            es.url + "/_bulk",
            content=orjson.dumps({"create": {"_index": "logs-a-b"}})
            + b"\n"
            + orjson.dumps({"@timestamp": "2026-11-25T10:00:00Z", **record(T0)})
            + b"\n",
            headers={"Content-Type": "application/x-ndjson", "Authorization": good},
        )
        monkeypatch.setenv("OBSKIT_ES_PASSWORD", "s3cret-pw")
        assert lookup(es.url, auth=AuthConfig(username="elastic"))[0] == ["handled"]
        monkeypatch.setenv("MY_KEY", "a2V5OnNlY3JldA==")
        assert lookup(es.url, auth=AuthConfig(api_key_env="MY_KEY"))[0] == ["handled"]
        monkeypatch.setenv("OBSKIT_ES_PASSWORD", "wrong-pw")
        cfg = TraceConfig(
            elasticsearch=ElasticsearchConfig(url=es.url, auth=AuthConfig(username="elastic"))
        )
        res = run_lookup(cfg, TRACE, WINDOW)
        assert res.errors and "HTTP 401" in res.errors[0] and "credentials" in res.errors[0]
        assert "wrong-pw" not in res.errors[0]


# --- osmem-server (third party, OpenSearch API) ---------------------------------------------


def test_osmem_whole_trace_with_ties(osmem_url: str) -> None:
    recs = dataset()
    parts = []
    for r in recs:
        parts += [
            orjson.dumps({"create": {"_index": "logs-osmem"}}),
            orjson.dumps(r | {"@timestamp": r["timestamp"]}),
        ]
    resp = httpx.post(
        osmem_url + "/_bulk?refresh=true",
        content=b"\n".join(parts) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200 and not resp.json()["errors"]
    for pit in (True, False):
        got, res = lookup(osmem_url, page_size=100, pit=pit)
        assert sorted(got) == expected(recs), f"pit={pit}"
        assert res.backends[0].requests >= 5


def test_transient_answers_are_retried(es_receiver: EsReceiver) -> None:
    es_bulk(es_receiver.url, dataset())
    es_receiver.faults.fail_requests(2, status=429, retry_after=0.1, path="_search")
    got, res = lookup(es_receiver.url, page_size=100, shard="7d")
    assert len(got) == 430 and res.backends[0].requests == 5
    es_receiver.faults.fail_requests(10, status=503, path="_search")
    cfg = TraceConfig(elasticsearch=ElasticsearchConfig(url=es_receiver.url, shard="7d"))
    res = run_lookup(cfg, TRACE, WINDOW)
    assert res.errors and "HTTP 503" in res.errors[0]
