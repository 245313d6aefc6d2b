"""The in-process Elasticsearch receiver answers as Elasticsearch 8 documents it."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.receivers.elasticsearch import EsReceiver

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def es() -> Iterator[EsReceiver]:
    with EsReceiver() as r:
        yield r


@pytest.fixture
def client(es: EsReceiver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=es.url, timeout=5) as c:
        yield c


def bulk(*pairs: tuple[dict[str, object], dict[str, object] | None]) -> bytes:
    out = []
    for action, source in pairs:
        out.append(orjson.dumps(action))
        if source is not None:
            out.append(orjson.dumps(source))
    return b"\n".join(out) + b"\n"


def doc(i: int, trace: str = "a" * 32, **extra: object) -> dict[str, object]:
    return {
        "@timestamp": f"2026-11-25T10:00:{i % 60:02d}.{i:06d}Z",
        "message": f"line {i}",
        "trace_id": trace,
        "service": "checkout",
        **extra,
    }


def items(resp: httpx.Response) -> list[dict[str, object]]:
    body = resp.json()
    return [next(iter(it.values())) for it in body["items"]]


def test_info_flavours(es: EsReceiver, client: httpx.Client) -> None:
    r = client.get("/")
    assert r.json()["version"]["number"].startswith("8.")
    assert r.headers["X-Elastic-Product"] == "Elasticsearch"
    with EsReceiver("opensearch") as os_:
        info = httpx.get(os_.url + "/").json()
        assert info["version"]["distribution"] == "opensearch"


def test_create_into_logs_pattern_makes_a_data_stream(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(({"create": {"_index": "logs-checkout-default", "_id": "x1"}}, doc(1)))
    r = client.post("/_bulk", content=body, headers=NDJSON)
    assert r.status_code == 200 and r.json()["errors"] is False
    (it,) = items(r)
    assert it["status"] == 201
    assert str(it["_index"]).startswith(".ds-logs-checkout-default-")
    ds = client.get("/_data_stream/logs-checkout-default").json()["data_streams"][0]
    assert ds["template"] == "logs" and ds["timestamp_field"] == {"name": "@timestamp"}
    # The built-in logs mapping: strings are keyword, message is match_only_text.
    mapping = client.get("/logs-checkout-default/_mapping").json()
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["trace_id"]["type"] == "keyword"
    assert props["message"]["type"] == "match_only_text"


def test_data_stream_rules(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(
        ({"create": {"_index": "logs-a-default", "_id": "1"}}, {"message": "no timestamp"}),
        ({"index": {"_index": "logs-a-default", "_id": "2"}}, doc(2)),
        ({"create": {"_index": "logs-a-default", "_id": "3"}}, doc(3)),
    )
    r = client.post("/_bulk", content=body, headers=NDJSON)
    assert r.json()["errors"] is True
    a, b, c = items(r)
    assert a["status"] == 400
    assert a["error"]["type"] == "document_parsing_exception"  # type: ignore[index]
    assert "data stream timestamp field [@timestamp] is missing" in a["error"]["reason"]  # type: ignore[index]
    assert b["status"] == 400
    assert "only write ops with an op_type of create" in b["error"]["reason"]  # type: ignore[index]
    assert c["status"] == 201
    assert es.count("logs-a-default") == 1


def test_duplicate_id_on_create_is_409_and_counted(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(({"create": {"_index": "logs-a-default", "_id": "same"}}, doc(1)))
    assert items(client.post("/_bulk", content=body, headers=NDJSON))[0]["status"] == 201
    (it,) = items(client.post("/_bulk", content=body, headers=NDJSON))
    assert it["status"] == 409
    assert it["error"]["type"] == "version_conflict_engine_exception"  # type: ignore[index]
    assert es.stats.docs_stored == 1 and es.stats.duplicates_prevented == 1
    assert es.count("logs-*") == 1


def test_index_op_on_regular_index_updates(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(({"index": {"_index": "app", "_id": "1"}}, {"a": "x"}))
    assert items(client.post("/_bulk", content=body, headers=NDJSON))[0]["status"] == 201
    (it,) = items(client.post("/_bulk", content=body, headers=NDJSON))
    assert it["status"] == 200 and it["result"] == "updated" and it["_version"] == 2
    assert es.count("app") == 1


def test_mapping_conflicts_are_per_item_400(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(
        ({"create": {"_index": "logs-a-default", "_id": "1"}}, doc(1, user="bob")),
        ({"create": {"_index": "logs-a-default", "_id": "2"}}, doc(2, user={"name": "bob"})),
        ({"create": {"_index": "logs-a-default", "_id": "3"}}, doc(3, http={"s": 1})),
        ({"create": {"_index": "logs-a-default", "_id": "4"}}, doc(4, http="flat")),
        ({"create": {"_index": "logs-a-default", "_id": "5"}}, doc(5, n=1)),
        ({"create": {"_index": "logs-a-default", "_id": "6"}}, doc(6, n="many")),
    )
    r = client.post("/_bulk", content=body, headers=NDJSON)
    st = [it["status"] for it in items(r)]
    assert st == [201, 400, 201, 400, 201, 400]
    reasons = [it["error"]["reason"] for it in items(r) if "error" in it]  # type: ignore[index]
    assert "failed to parse field [user] of type [keyword]" in reasons[0]
    assert "Preview of field's value: '{name=bob}'" in reasons[0]
    assert "object mapping for [http] tried to parse field [http] as object" in reasons[1]
    assert "of type [long]" in reasons[2]


def test_bulk_framing_errors(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(({"create": {"_index": "logs-a-default"}}, doc(1)))
    r = client.post("/_bulk", content=body[:-1], headers=NDJSON)
    assert r.status_code == 400
    assert r.json()["error"]["reason"] == "The bulk request must be terminated by a newline [\\n]"
    assert client.post("/_bulk", content=body).status_code == 406  # no Content-Type
    assert es.count("logs-*") == 0


def test_gzip_and_target_in_path(es: EsReceiver, client: httpx.Client) -> None:
    body = bulk(({"create": {"_id": "g1"}}, doc(1)))
    r = client.post(
        "/logs-gz-default/_bulk",
        content=gzip.compress(body),
        headers={**NDJSON, "Content-Encoding": "gzip"},
    )
    assert items(r)[0]["status"] == 201
    assert es.stats.gzip_requests == 1 and es.ids("logs-gz-default") == ["g1"]


def test_request_too_large_is_413() -> None:
    with EsReceiver(max_content_length=200) as es:
        small = bulk(({"create": {"_index": "logs-a-default"}}, doc(1)))
        big = bulk(*[({"create": {"_index": "logs-a-default"}}, doc(i)) for i in range(5)])
        assert httpx.post(es.url + "/_bulk", content=small, headers=NDJSON).status_code == 200
        r = httpx.post(
            es.url + "/_bulk",
            content=gzip.compress(big),
            headers={**NDJSON, "Content-Encoding": "gzip"},
        )
        assert r.status_code == 413
        assert es.count("logs-*") == 1


def test_item_and_request_faults(es: EsReceiver, client: httpx.Client) -> None:
    es.faults.fail_items(2, status=429)
    body = bulk(
        *[({"create": {"_index": "logs-a-default", "_id": str(i)}}, doc(i)) for i in range(3)]
    )
    got = items(client.post("/_bulk", content=body, headers=NDJSON))
    assert [it["status"] for it in got] == [429, 429, 201]
    assert got[0]["error"]["type"] == "es_rejected_execution_exception"  # type: ignore[index]
    es.faults.fail_requests(1, status=429, retry_after=3)
    r = client.post("/_bulk", content=body, headers=NDJSON)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["error"]["type"] == "es_rejected_execution_exception"
    es.faults.outage(0.3, status=503)
    assert client.post("/_bulk", content=body, headers=NDJSON).status_code == 503
    time.sleep(0.35)
    got = items(client.post("/_bulk", content=body, headers=NDJSON))
    assert [it["status"] for it in got] == [201, 201, 409]


def test_reset_and_stall(es: EsReceiver) -> None:
    body = bulk(({"create": {"_index": "logs-a-default", "_id": "r"}}, doc(1)))
    es.faults.reset(1)
    with pytest.raises(httpx.TransportError):
        httpx.post(es.url + "/_bulk", content=body, headers=NDJSON, timeout=5)
    assert es.count("logs-*") == 0 if "logs-a-default" in es.cluster.data_streams else True
    es.faults.stall(0.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(es.url + "/_bulk", content=body, headers=NDJSON, timeout=0.2)
    deadline = time.monotonic() + 5
    while es.stats.docs_stored < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert es.stats.docs_stored == 1  # the cluster finished the work the client gave up on


def test_templates(es: EsReceiver, client: httpx.Client) -> None:
    r = client.put("/_index_template/clash", json={"index_patterns": ["logs-*-*"], "priority": 100})
    assert r.status_code == 400 and "same priority" in r.json()["error"]["reason"]
    r = client.put(
        "/_index_template/bad", json={"index_patterns": ["x-*"], "composed_of": ["nope"]}
    )
    assert r.status_code == 400
    assert client.put(
        "/_component_template/c1",
        json={
            "template": {
                "mappings": {
                    "properties": {
                        "level": {"type": "keyword"},
                        "timestamp": {"type": "date_nanos"},
                    }
                }
            }
        },
    ).json() == {"acknowledged": True}
    tpl = {
        "index_patterns": ["logs-*-*"],
        "priority": 200,
        "data_stream": {},
        "composed_of": ["logs@mappings", "c1"],
    }
    assert client.put("/_index_template/mine", json=tpl).status_code == 200
    assert client.get("/_index_template/mine").json()["index_templates"][0]["name"] == "mine"
    assert client.get("/_index_template/missing").status_code == 404
    body = bulk(
        (
            {"create": {"_index": "logs-t-default"}},
            doc(1, timestamp="2026-11-25T10:00:00.123456789Z"),
        )
    )
    assert items(client.post("/_bulk", content=body, headers=NDJSON))[0]["status"] == 201
    assert (
        client.get("/_data_stream/logs-t-default").json()["data_streams"][0]["template"] == "mine"
    )


def _load(
    client: httpx.Client, n: int, index: str = "logs-a-default", trace: str = "a" * 32
) -> None:
    body = bulk(
        *[
            ({"create": {"_index": index, "_id": f"{index}-{i}"}}, doc(i // 3, trace))
            for i in range(n)
        ]
    )
    assert client.post("/_bulk", content=body, headers=NDJSON).json()["errors"] is False


def test_search_sort_search_after_and_pit(es: EsReceiver, client: httpx.Client) -> None:
    _load(client, 25)
    _load(client, 5, index="logs-b-default", trace="b" * 32)
    _load(client, 4, index="logs-c-default")
    pit = client.post("/logs-*/_pit", params={"keep_alive": "1m"}).json()["id"]
    _load(client, 3, index="logs-d-default")  # after the PIT: invisible to it
    seen: list[str] = []
    after = None
    while True:
        req: dict[str, object] = {
            "size": 7,
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"trace_id": "a" * 32}},
                        {"range": {"@timestamp": {"gte": "2026-11-25T00:00:00Z"}}},
                    ]
                }
            },
            "sort": [{"@timestamp": "asc"}],
            "pit": {"id": pit, "keep_alive": "1m"},
            "track_total_hits": False,
        }
        if after is not None:
            req["search_after"] = after
        res = client.post("/_search", json=req).json()
        hits = res["hits"]["hits"]
        if not hits:
            break
        assert len(hits[0]["sort"]) == 2  # implicit _shard_doc tiebreaker
        seen.extend(h["_id"] for h in hits)
        after = hits[-1]["sort"]
    assert len(seen) == 29 and len(set(seen)) == 29
    assert client.request("DELETE", "/_pit", json={"id": pit}).json()["succeeded"] is True
    r = client.post("/_search", json={"pit": {"id": pit}})
    assert r.status_code == 404
    # index in the path together with a PIT is refused
    assert client.post("/logs-*/_search", json={"pit": {"id": "x"}}).status_code == 400


def test_search_shapes_and_limits(es: EsReceiver, client: httpx.Client) -> None:
    _load(client, 12)
    res = client.post(
        "/logs-*/_search", json={"query": {"term": {"trace_id": "a" * 32}}, "size": 2}
    ).json()
    assert res["hits"]["total"] == {"value": 12, "relation": "eq"}
    h = res["hits"]["hits"][0]
    assert set(h) >= {"_index", "_id", "_source"} and h["_index"].startswith(".ds-logs-a-default")
    r = client.post("/logs-*/_search", json={"size": 10001})
    assert r.status_code == 400 and "Result window is too large" in r.text
    r = client.post("/logs-*/_search", json={"sort": [{"message": "asc"}]})
    assert r.status_code == 400 and "Text fields are not optimised" in r.text
    r = client.post("/logs-*/_search", json={"sort": ["_shard_doc"]})
    assert r.status_code == 400
    assert client.post("/nope/_search", json={}).status_code == 404
    assert client.post("/nope-*/_search", json={}).json()["hits"]["hits"] == []
    assert (
        client.post("/logs-*/_count", json={"query": {"match": {"message": "line"}}}).json()[
            "count"
        ]
        == 12
    )
    desc = client.post(
        "/logs-*/_search",
        json={
            "sort": [
                {"@timestamp": {"order": "desc", "format": "strict_date_optional_time_nanos"}},
                "_doc",
            ],
            "size": 1,
        },
    ).json()["hits"]["hits"][0]["sort"]
    # @timestamp is a millisecond `date`: the microseconds are gone, as in Elasticsearch.
    assert desc[0] == "2026-11-25T10:00:03.000000000Z"
    res = client.post("/logs-*/_search", json={"track_total_hits": 5}).json()
    assert res["hits"]["total"] == {"value": 5, "relation": "gte"}


def test_opensearch_flavour() -> None:
    with EsReceiver("opensearch") as os_, httpx.Client(base_url=os_.url, timeout=5) as c:
        ck = {"template": {"mappings": {"properties": {"k": {"type": "constant_keyword"}}}}}
        r = c.put("/_component_template/ck", json=ck)
        assert r.status_code == 400 and "missing required parameter [value]" in r.text
        # No built-in logs template: a create makes a plain index.
        body = bulk(({"create": {"_index": "logs-a-default", "_id": "1"}}, doc(1, user="x")))
        assert (
            items(c.post("/_bulk", content=body, headers=NDJSON))[0]["_index"] == "logs-a-default"
        )
        body = bulk(({"create": {"_index": "logs-a-default", "_id": "2"}}, doc(2, user={"a": 1})))
        assert (
            items(c.post("/_bulk", content=body, headers=NDJSON))[0]["error"]["type"]
            == "mapper_parsing_exception"
        )  # type: ignore[index]
        pit = c.post("/logs-*/_search/point_in_time", params={"keep_alive": "1m"}).json()["pit_id"]
        res = c.post("/_search", json={"pit": {"id": pit}, "sort": [{"@timestamp": "asc"}]}).json()
        assert len(res["hits"]["hits"]) == 1
        assert c.request("DELETE", "/_search/point_in_time", json={"pit_id": [pit]}).json()["pits"][
            0
        ]["successful"]


def test_auth_required() -> None:
    with EsReceiver(auth=[EsReceiver.basic("elastic", "s3cret"), "ApiKey abc"]) as es:
        assert httpx.get(es.url + "/").status_code == 401
        assert httpx.get(es.url + "/", auth=("elastic", "s3cret")).status_code == 200
        assert httpx.get(es.url + "/", headers={"Authorization": "ApiKey abc"}).status_code == 200


def test_count_only_mode_answers_every_item() -> None:
    with EsReceiver(count_only=True) as es:
        body = bulk(
            *[({"create": {"_index": "logs-a-default", "_id": str(i)}}, doc(i)) for i in range(5)]
        )
        r = httpx.post(
            es.url + "/_bulk",
            content=gzip.compress(body),
            headers={**NDJSON, "Content-Encoding": "gzip"},
        )
        assert r.json()["errors"] is False
        assert [(it["_id"], it["status"]) for it in items(r)] == [(str(i), 201) for i in range(5)]
        es.faults.fail_items(1, status=429)
        assert [
            it["status"]
            for it in items(httpx.post(es.url + "/_bulk", content=body, headers=NDJSON))
        ] == [429, 201, 201, 201, 201]
        stats = httpx.get(es.url + "/_receiver/stats").json()
        assert stats["docs_stored"] == 9 and stats["items"] == {"201": 9, "429": 1}
        assert es.cluster.indices == {}  # nothing stored


def _aggs_body(**terms: object) -> dict[str, object]:
    return {
        "size": 0,
        "aggs": {
            "svc": {
                "terms": {"field": "service", **terms},
                "aggs": {
                    "m": {
                        "date_histogram": {
                            "field": "@timestamp",
                            "fixed_interval": "1m",
                            "min_doc_count": 1,
                        }
                    }
                },
            }
        },
    }


def test_terms_and_date_histogram_aggregations(es: EsReceiver, client: httpx.Client) -> None:
    # logs-*-* data stream: the built-in template maps strings as keyword.
    stamps = ["10:00:00.000", "10:00:59.999", "10:01:00.000", "10:03:30.5"]
    pairs = [
        ({"create": {}}, {"@timestamp": f"2026-11-25T{t}Z", "service": s, "message": "x"})
        for t in stamps
        for s in ("checkout", "payments")
    ]
    pairs[-1] = ({"create": {}}, {"@timestamp": "2026-11-25T10:00:01Z", "service": "checkout"})
    r = client.post("/logs-app-default/_bulk", content=bulk(*pairs), headers=NDJSON)
    assert not r.json()["errors"]
    aggs = client.post("/logs-*/_search", json=_aggs_body()).json()["aggregations"]["svc"]
    assert aggs["sum_other_doc_count"] == 0 and aggs["doc_count_error_upper_bound"] == 0
    got = {
        b["key"]: [(m["key_as_string"], m["doc_count"]) for m in b["m"]["buckets"]]
        for b in aggs["buckets"]
    }
    # [k, k+1m): 10:01:00.000 opens the next bucket; min_doc_count 1 drops 10:02.
    assert got == {
        "checkout": [
            ("2026-11-25T10:00:00.000Z", 3),
            ("2026-11-25T10:01:00.000Z", 1),
            ("2026-11-25T10:03:00.000Z", 1),
        ],
        "payments": [("2026-11-25T10:00:00.000Z", 2), ("2026-11-25T10:01:00.000Z", 1)],
    }
    assert [b["key"] for b in aggs["buckets"]] == ["checkout", "payments"]  # by count
    first = aggs["buckets"][0]["m"]["buckets"][0]
    assert first["key"] == 1795600800000  # 2026-11-25T10:00:00Z in epoch milliseconds
    # min_doc_count defaults to 0: empty buckets between the first and the last.
    body = _aggs_body(size=1)
    del body["aggs"]["svc"]["aggs"]["m"]["date_histogram"]["min_doc_count"]  # type: ignore[index]
    one = client.post("/logs-*/_search", json=body).json()["aggregations"]["svc"]
    assert one["sum_other_doc_count"] == 3
    assert [m["doc_count"] for m in one["buckets"][0]["m"]["buckets"]] == [3, 1, 0, 1]


def test_aggregation_errors_and_limits(es: EsReceiver, client: httpx.Client) -> None:
    client.post(
        "/plain/_bulk",
        content=bulk(({"index": {}}, {"@timestamp": "2026-11-25T10:00:00Z", "service": "a"})),
        headers=NDJSON,
    )
    # A plain index: dynamic mapping makes service text + .keyword.
    r = client.post("/plain/_search", json=_aggs_body())
    assert r.status_code == 400
    assert r.json()["error"]["root_cause"][0]["reason"].startswith("Text fields are not optimised")
    body = _aggs_body()
    body["aggs"]["svc"]["terms"]["field"] = "service.keyword"  # type: ignore[index]
    assert client.post("/plain/_search", json=body).status_code == 200
    assert client.post("/plain/_search", json=_aggs_body(size=0)).status_code == 400
    bad = {"size": 0, "aggs": {"x": {"composite2": {}}}}
    r = client.post("/plain/_search", json=bad)
    assert r.status_code == 400 and "Unknown aggregation type [composite2]" in r.text
    wk = {
        "size": 0,
        "aggs": {"x": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1w"}}},
    }
    assert client.post("/plain/_search", json=wk).status_code == 400
    es.cluster.max_buckets = 1
    r = client.post("/plain/_search", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["root_cause"][0]["type"] == "too_many_buckets_exception"
    unmapped = {"size": 0, "aggs": {"x": {"terms": {"field": "nope"}}}}
    es.cluster.max_buckets = 65_536
    assert client.post("/plain/_search", json=unmapped).json()["aggregations"]["x"]["buckets"] == []


def test_delete_a_document(es: EsReceiver, client: httpx.Client) -> None:
    r = client.post(
        "/logs-app-default/_bulk",
        content=bulk(({"create": {"_id": "d1"}}, {"@timestamp": "2026-11-25T10:00:00Z"})),
        headers=NDJSON,
    )
    backing = items(r)[0]["_index"]
    assert client.delete("/logs-app-default/_doc/d1").status_code == 400  # via the data stream
    r = client.delete(f"/{backing}/_doc/d1")
    assert r.status_code == 200 and r.json()["result"] == "deleted"
    assert client.delete(f"/{backing}/_doc/d1").json()["result"] == "not_found"
    assert es.count("logs-*") == 0
