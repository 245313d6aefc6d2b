"""``obskit audit`` against Elasticsearch-API servers: the in-process receiver (Elasticsearch 8
and OpenSearch flavours), osmem-server and noida-db. Lines are shipped with the real sink
(data streams, deterministic ids) or with ``_bulk``; counts come from ``terms`` +
``date_histogram`` over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from audithelp import base_minute, line, ship_es, spread, window, write

from obskit.audit import compare
from obskit.audit.buckets import MINUTE_NS, Edges
from obskit.schema import timestamp_ns
from obskit.trace.config import ElasticsearchConfig
from obskit.trace.model import BackendError, TraceUsageError
from tests.receivers.elasticsearch import EsReceiver

NDJSON = {"Content-Type": "application/x-ndjson"}


def audit(url: str, paths: list[Path], start: int, minutes: int, **kw: object):  # type: ignore[no-untyped-def]
    cfg = ElasticsearchConfig(url=url, index=str(kw.pop("index", "logs-*")))
    return compare(paths, cfg, window=window(start, minutes), settle=0, **kw)  # type: ignore[arg-type]


def diffs(res, t0: int) -> list[tuple[str, int, int, int, str]]:  # type: ignore[no-untyped-def]
    return [
        (d.service, (d.start_ns - t0) // MINUTE_NS, d.files, d.backend, d.kind) for d in res.diffs
    ]


def test_everything_arrived_once(es_receiver: EsReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    lines = spread(t0, 8, 6) + spread(t0, 8, 2, "auth-api")
    write(tmp_path / "a.log", lines)
    ship_es(es_receiver.url, lines)
    ship_es(es_receiver.url, lines)  # a replay: 409s, stored once
    res = audit(es_receiver.url, [tmp_path], t0, 8)
    assert res.ok, res.diffs
    assert res.files_total == res.backend_total == 64
    assert res.buckets.edges is Edges.RIGHT_OPEN
    # The data streams are per service (auth-api -> logs-auth_api-default); one search for
    # the services, one for the minutes.
    assert res.counts.requests == 2


def test_deleted_and_duplicated_documents_exact(es_receiver: EsReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    lines = spread(t0, 5, 4) + spread(t0, 5, 4, "payments", first=100)
    write(tmp_path / "a.log", lines)
    ship_es(es_receiver.url, lines)
    c = httpx.Client(base_url=es_receiver.url)
    everything = c.post("/logs-*/_search", json={"size": 100}).json()["hits"]["hits"]
    hits = [h for h in everything if h["_source"]["message"] in ("line 9", "line 10", "line 113")]
    assert len(hits) == 3
    for h in hits:
        assert c.delete(f"/{h['_index']}/_doc/{h['_id']}").json()["result"] == "deleted"
    # Duplicates: the same lines again without ids (another shipper, or a replay after a
    # rollover): Elasticsearch stores them again.
    again = [orjson.loads(x) for x in lines[16:18]]
    body = b"".join(
        orjson.dumps({"create": {}})
        + b"\n"
        + orjson.dumps({"@timestamp": r["timestamp"], **r})
        + b"\n"
        for r in again
    )
    assert not c.post("/logs-checkout-default/_bulk", content=body, headers=NDJSON).json()["errors"]
    res = audit(es_receiver.url, [tmp_path], t0, 5)
    assert diffs(res, t0) == [
        ("checkout", 2, 4, 2, "missing"),
        ("checkout", 4, 4, 6, "duplicated"),
        ("payments", 3, 4, 3, "missing"),
    ]
    assert (res.missing, res.duplicated) == (3, 2)


def test_minute_edges_and_a_leap_second_as_elasticsearch_stores_them(
    es_receiver: EsReceiver, tmp_path: Path
) -> None:
    leap = (
        b'{"timestamp":"2016-12-31T23:59:60.5Z","level":"INFO","service":"checkout",'
        b'"message":"leap"}'
    )
    t0 = timestamp_ns("2016-12-31T23:58:00Z")
    lines = [line(t0 + MINUTE_NS, i=1), line(t0 + MINUTE_NS + 10**9, i=2), leap]
    f = write(tmp_path / "a.log", lines)
    ship_es(es_receiver.url, lines)
    res = compare(
        [f],
        ElasticsearchConfig(url=es_receiver.url),
        window=window(t0, 3),
        settle=0,
    )
    assert res.ok, res.diffs
    # 23:59:00.000 opens minute 23:59 ([k, k+1m)), and the leap second stays in it.
    assert res.files.counts[Edges.RIGHT_OPEN] == {("checkout", t0 + MINUTE_NS): 3}


def test_opensearch_text_service_field_and_too_many_buckets(
    os_receiver: EsReceiver, tmp_path: Path
) -> None:
    # No es-setup on OpenSearch: service is text (+ .keyword); a terms aggregation on text is
    # refused, so the audit counts on service.keyword.
    os_receiver.cluster.max_buckets = 40
    t0 = base_minute(80)
    lines = spread(t0, 30, 1, "a") + spread(t0, 30, 1, "b") + spread(t0, 30, 2, "c")
    write(tmp_path / "a.log", lines)
    ship_es(os_receiver.url, lines)
    res = audit(os_receiver.url, [tmp_path], t0, 30)
    assert res.ok and res.backend_total == 120
    assert any("counted on service.keyword" in n for n in res.counts.notes), res.counts.notes
    assert any("pieces halved" in n for n in res.counts.notes), res.counts.notes


def test_no_index_yet_means_everything_is_missing(es_receiver: EsReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    write(tmp_path / "a.log", spread(t0, 2, 3))
    res = audit(es_receiver.url, [tmp_path], t0, 2, index="logs-nothing-here")
    assert res.missing == 6 and res.backend_total == 0
    assert any("no index matches" in n for n in res.counts.notes)


def test_instance_filter_and_by_instance_refused(es_receiver: EsReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    mine = spread(t0, 2, 3)
    write(tmp_path / "a.log", mine)
    ship_es(es_receiver.url, mine)  # host node-1 (the batch's static fields)
    other = [orjson.loads(x) for x in spread(t0, 2, 2, first=50)]
    body = b"".join(
        orjson.dumps({"create": {}})
        + b"\n"
        + orjson.dumps({"@timestamp": r["timestamp"], "host": "node-2", **r})
        + b"\n"
        for r in other
    )
    httpx.post(es_receiver.url + "/logs-checkout-default/_bulk", content=body, headers=NDJSON)
    assert audit(es_receiver.url, [tmp_path], t0, 2).duplicated == 4
    assert audit(es_receiver.url, [tmp_path], t0, 2, instance="node-1").ok
    with pytest.raises(TraceUsageError, match="Loki only"):
        audit(es_receiver.url, [tmp_path], t0, 2, by_instance=True)


def test_auth_error_is_a_backend_error(tmp_path: Path) -> None:
    write(tmp_path / "a.log", spread(base_minute(40), 1, 1))
    with (
        EsReceiver(auth=[EsReceiver.basic("elastic", "s3cret")]) as es,
        pytest.raises(BackendError, match="HTTP 401"),
    ):
        audit(es.url, [tmp_path], base_minute(40), 1)


# --- third-party servers ---------------------------------------------------------------------


def _bulk_index(url: str, index: str, lines: list[bytes]) -> None:
    body = b"".join(
        orjson.dumps({"index": {"_index": index}})
        + b"\n"
        + orjson.dumps({"@timestamp": orjson.loads(x)["timestamp"], **orjson.loads(x)})
        + b"\n"
        for x in lines
    )
    r = httpx.post(url + "/_bulk?refresh=true", content=body, headers=NDJSON, timeout=30)
    assert r.status_code == 200 and not r.json()["errors"], r.text[:500]


def test_osmem_supports_the_aggregations(osmem_url: str, tmp_path: Path) -> None:
    # osmem has no data streams: index mode. Dynamic mapping makes service text, and osmem
    # refuses a terms aggregation on it like OpenSearch: the .keyword fallback is exercised.
    t0 = base_minute(40)
    lines = spread(t0, 4, 3) + spread(t0, 4, 2, "payments", first=100)
    write(tmp_path / "a.log", lines)
    _bulk_index(osmem_url, "logs-osmem", lines[:-1] + lines[3:4])
    res = audit(osmem_url, [tmp_path], t0, 4)
    assert diffs(res, t0) == [("checkout", 1, 3, 4, "duplicated"), ("payments", 3, 2, 1, "missing")]
    assert any("service.keyword" in n for n in res.counts.notes)


def test_noida_supports_the_aggregations(noida: str, tmp_path: Path) -> None:
    # noida aggregates the text field itself (no fallback needed); data stream names are
    # plain indices there.
    t0 = base_minute(40)
    lines = spread(t0, 4, 3, "noida_svc") + spread(t0, 4, 2, "noida_pay", first=100)
    write(tmp_path / "a.log", lines)
    _bulk_index(noida, "logs-noida_audit-default", lines[1:] + lines[5:6])
    res = audit(noida, [tmp_path], t0, 4, services=["noida_svc", "noida_pay"])
    assert diffs(res, t0) == [
        ("noida_svc", 0, 3, 2, "missing"),
        ("noida_svc", 1, 3, 4, "duplicated"),
    ]
