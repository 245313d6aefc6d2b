"""Conformance with a second third-party server: noida-db (PyPI), which presents itself as
Elasticsearch 8.15 (``document_parsing_exception``, point in time). It stores data streams'
names as plain indices (no ``.ds-`` backing indices, no ``@timestamp`` check), so data stream
semantics stay covered by the in-process receiver."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from click.testing import CliRunner
from es_batches import line, make_batch

from sidecar.es_setup import es_setup
from sidecar.sinks.elasticsearch import ElasticsearchSink

TRACE = "5b8efff798038103d269b633813fc60c"


def test_sink_against_noida(noida: str, sink_factory: Callable[..., ElasticsearchSink]) -> None:
    assert httpx.get(noida + "/").json()["version"]["number"].startswith("8.")
    first = CliRunner().invoke(es_setup, ["--url", noida])
    assert first.exit_code == 0 and "elasticsearch 8." in first.output, first.output
    again = CliRunner().invoke(es_setup, ["--url", noida])
    assert again.output.count("unchanged") == 3, again.output

    sink = sink_factory(noida, namespace="noida")
    lines = [line(i, "checkout", trace=TRACE if i % 2 else None, user="u") for i in range(30)]
    lines.append(line(30, "checkout", user={"id": 1}))
    res = sink.send(make_batch(lines, static={"host": "node-1"}))
    assert [i for i, _ in res.rejected] == [30]
    assert res.rejected[0][1].startswith("400 document_parsing_exception: ")
    assert "failed to parse field [user] of type [keyword]" in res.rejected[0][1]

    index = "logs-checkout-noida"
    props = httpx.get(f"{noida}/{index}/_mapping").json()[index]["mappings"]["properties"]
    assert props["trace_id"]["type"] == "keyword" and props["timestamp"]["type"] == "date_nanos"

    httpx.post(f"{noida}/{index}/_refresh")
    pit = httpx.post(f"{noida}/{index}/_pit", params={"keep_alive": "1m"}).json()["id"]
    got: list[str] = []
    after = None
    while True:
        body: dict[str, object] = {
            "size": 4,
            "query": {"term": {"trace_id": TRACE}},
            "sort": [{"timestamp": "asc"}],
            "pit": {"id": pit, "keep_alive": "1m"},
        }
        if after is not None:
            body["search_after"] = after
        hits = httpx.post(f"{noida}/_search", json=body).json()["hits"]["hits"]
        if not hits:
            break
        got.extend(h["_source"]["message"] for h in hits)
        after = hits[-1]["sort"]
    httpx.request("DELETE", f"{noida}/_pit", json={"id": pit})
    assert got == [f"handled request {i}" for i in range(1, 30, 2)]

    sink2 = sink_factory(noida, namespace="noida")
    assert [i for i, _ in sink2.send(make_batch(lines, static={"host": "node-1"})).rejected] == [30]
    assert sink2.duplicates == 30
    httpx.post(f"{noida}/{index}/_refresh")
    assert httpx.post(f"{noida}/{index}/_count", json={}).json()["count"] == 30
