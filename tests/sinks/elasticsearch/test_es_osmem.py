"""Conformance with a third-party OpenSearch-compatible server (osmem-server, in memory):
es-setup, the sink's ``_bulk`` bodies and responses, and searching the documents back.

osmem implements neither data streams ("data streams are not supported by osmem") nor 429s,
so this runs the sink in index mode; data streams are covered by the in-process receiver.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner
from es_batches import line, make_batch

from sidecar.es_setup import es_setup
from sidecar.sinks.elasticsearch import ElasticsearchSink

pytest.importorskip("osmem_server")

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_sink_and_templates_against_osmem(
    osmem_url: str, sink_factory: Callable[..., ElasticsearchSink]
) -> None:
    runner = CliRunner()
    args = ["--url", osmem_url, "--no-data-stream", "--pattern", "logs-obskit-*"]
    first = runner.invoke(es_setup, args)
    assert first.exit_code == 0 and "opensearch" in first.output, first.output
    again = runner.invoke(es_setup, args)
    assert again.exit_code == 0 and again.output.count("unchanged") == 3, again.output

    sink = sink_factory(osmem_url, index="logs-obskit-{service}-%Y.%m.%d")
    lines = [line(i, "checkout" if i % 2 else "payments", trace=TRACE) for i in range(40)]
    lines += [line(100 + i) for i in range(10)]
    assert sink.send(make_batch(lines, static={"host": "node-1"})).rejected == []

    mapping = httpx.get(osmem_url + "/logs-obskit-checkout-2026.11.25/_mapping").json()
    props = mapping["logs-obskit-checkout-2026.11.25"]["mappings"]["properties"]
    assert props["trace_id"]["type"] == "keyword"
    assert props["timestamp"]["type"] == "date_nanos"

    # The trace back, in order, paged with search_after (the way obskit trace reads it).
    got: list[str] = []
    after = None
    while True:
        body: dict[str, object] = {
            "size": 15,
            "query": {"bool": {"filter": [{"term": {"trace_id": TRACE}}]}},
            "sort": [{"timestamp": "asc"}, {"span_id": "asc"}],
        }
        if after is not None:
            body["search_after"] = after
        res = httpx.post(osmem_url + "/logs-obskit-*/_search", json=body).json()
        hits = res["hits"]["hits"]
        if not hits:
            break
        got.extend(h["_source"]["message"] for h in hits)
        after = hits[-1]["sort"]
    assert got == [f"handled request {i}" for i in range(40)]

    # Restart replay: same ids, 409s, nothing stored twice, nothing dead-lettered.
    sink2 = sink_factory(osmem_url, index="logs-obskit-{service}-%Y.%m.%d")
    assert sink2.send(make_batch(lines, static={"host": "node-1"})).rejected == []
    assert sink2.duplicates == 50
    count = httpx.post(osmem_url + "/logs-obskit-*/_count", json={}).json()["count"]
    assert count == 50


def test_mapping_error_reason_from_osmem(
    osmem_url: str, sink_factory: Callable[..., ElasticsearchSink]
) -> None:
    sink = sink_factory(osmem_url, index="logs-obskit-conflicts")
    res = sink.send(make_batch([line(0, user="bob"), line(1, user={"id": 1}), line(2)]))
    assert [i for i, _ in res.rejected] == [1]
    assert res.rejected[0][1].startswith("400 mapper_parsing_exception: ")
    assert "failed to parse field [user]" in res.rejected[0][1]
