"""``obskit-sidecar es-setup`` against the receiver: templates installed once, re-runs change
nothing, and the sink's data streams then use the obskit mappings."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
from click.testing import CliRunner
from es_batches import line, make_batch

from sidecar.es_setup import es_setup
from sidecar.sinks.elasticsearch import ElasticsearchSink
from tests.receivers.elasticsearch import EsReceiver


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(es_setup, list(args), catch_exceptions=False)
    return res.exit_code, res.output


def test_es_setup_is_idempotent(
    es_receiver: EsReceiver, sink_factory: Callable[..., ElasticsearchSink]
) -> None:
    code, out = run("--url", es_receiver.url)
    assert code == 0, out
    assert "elasticsearch 8.15" in out
    assert "component template obskit-logs@mappings: created" in out
    assert "index template obskit-logs: created" in out
    code, out = run("--url", es_receiver.url)
    assert code == 0 and out.count("unchanged") == 3, out
    tpl = httpx.get(es_receiver.url + "/_index_template/obskit-logs").json()
    body = tpl["index_templates"][0]["index_template"]
    assert body["priority"] > 100 and "data_stream" in body
    # The sink's data stream now uses the obskit mappings (date_nanos timestamp, keyword ids).
    sink = sink_factory(es_receiver.url)
    assert sink.send(make_batch([line(0, trace="a" * 32)])).rejected == []
    ds = httpx.get(es_receiver.url + "/_data_stream/logs-checkout-default").json()
    assert ds["data_streams"][0]["template"] == "obskit-logs"
    mapping = httpx.get(es_receiver.url + "/logs-checkout-default/_mapping").json()
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert props["timestamp"]["type"] == "date_nanos"
    assert props["message"]["type"] == "match_only_text"
    assert props["trace_id"]["type"] == props["level"]["type"] == "keyword"


def test_es_setup_keeps_user_custom_template(es_receiver: EsReceiver) -> None:
    assert run("--url", es_receiver.url)[0] == 0
    mine = {"template": {"settings": {"index": {"number_of_replicas": 0}}}}
    httpx.put(es_receiver.url + "/_component_template/obskit-logs@custom", json=mine)
    code, out = run("--url", es_receiver.url)
    assert code == 0 and "obskit-logs@custom: unchanged" in out
    got = httpx.get(es_receiver.url + "/_component_template/obskit-logs@custom").json()
    assert got["component_templates"][0]["component_template"] == mine


def test_es_setup_notes_existing_streams(
    es_receiver: EsReceiver, sink_factory: Callable[..., ElasticsearchSink]
) -> None:
    assert sink_factory(es_receiver.url).send(make_batch([line(0)])).rejected == []
    code, out = run("--url", es_receiver.url)
    assert code == 0 and "data stream logs-checkout-default was created before" in out


def test_es_setup_opensearch_index_mode(os_receiver: EsReceiver) -> None:
    code, out = run("--url", os_receiver.url, "--no-data-stream", "--pattern", "logs-obskit-*")
    assert code == 0 and out.startswith("opensearch 2.17"), out
    body = httpx.get(os_receiver.url + "/_index_template/obskit-logs").json()
    tpl = body["index_templates"][0]["index_template"]
    assert "data_stream" not in tpl and tpl["index_patterns"] == ["logs-obskit-*"]


def test_es_setup_errors_are_clear() -> None:
    with EsReceiver(auth=["ApiKey right"]) as es:
        res = CliRunner().invoke(es_setup, ["--url", es.url])
        assert res.exit_code == 1 and "401" in res.output and "security_exception" in res.output
    with EsReceiver() as es:
        url = es.url
    res = CliRunner().invoke(es_setup, ["--url", url])
    assert res.exit_code == 1 and "cannot reach" in res.output
    res = CliRunner().invoke(es_setup, ["--url", url, "--api-key-env", "OBSKIT_NOPE_UNSET"])
    assert res.exit_code == 2 and "OBSKIT_NOPE_UNSET" in res.output


def test_leap_second_and_pre_1970_lines_are_stored(
    es_receiver: EsReceiver, sink_factory: Callable[..., ElasticsearchSink]
) -> None:
    assert run("--url", es_receiver.url)[0] == 0
    leap = orjson.loads(line(0))
    leap["timestamp"] = "2016-12-31T23:59:60.5Z"
    old = orjson.loads(line(1))
    old["timestamp"] = "1969-07-20T20:17:40Z"
    sink = sink_factory(es_receiver.url)
    res = sink.send(make_batch([orjson.dumps(leap), orjson.dumps(old), line(2)]))
    assert res.rejected == []
    docs = {d["message"]: d for d in es_receiver.documents("logs-*")}
    a = docs["handled request 0"]
    # Elasticsearch's date parser refuses second 60: @timestamp is the minute's last instant,
    # the original stays in timestamp (date_nanos with ignore_malformed, as es-setup maps it).
    assert a["@timestamp"] == "2016-12-31T23:59:59.999999999Z"
    assert a["timestamp"] == "2016-12-31T23:59:60.5Z"
    assert docs["handled request 1"]["@timestamp"] == "1969-07-20T20:17:40Z"
