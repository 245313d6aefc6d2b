"""The Elasticsearch sink against the in-process receiver, over real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest
from es_batches import line, make_batch

from obskit._http import AuthConfig, RetryConfig
from sidecar.sinks.base import SinkMetrics, SinkStopped
from sidecar.sinks.elasticsearch import Config, ElasticsearchSink
from sidecar.sinks.es_bulk import doc_id
from tests.receivers.elasticsearch import EsReceiver

Factory = Callable[..., ElasticsearchSink]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Recorder(SinkMetrics):
    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.lines_sent = 0

    def request(self, seconds: float, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def retry(self, cause: str) -> None:
        self.retries[cause] += 1

    def sent(self, lines: int, nbytes: int) -> None:
        self.lines_sent += lines

    def dead_lettered(self, reason: str, lines: int = 1) -> None:
        self.dead[reason] += lines


def test_data_streams_documents_and_ids(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url)
    sink.metrics = rec = Recorder()
    lines = [
        line(0, trace=TRACE),
        line(1, "auth-api", trace=TRACE, http={"status": 200}),
        line(2, "checkout"),
    ]
    batch = make_batch(lines, static={"host": "node-1", "environment": "prod"})
    assert sink.send(batch).rejected == []
    assert rec.lines_sent == 3 and es_receiver.stats.gzip_requests == 1
    ds = set(es_receiver.cluster.data_streams)
    assert ds == {"logs-checkout-default", "logs-auth_api-default"}
    docs = es_receiver.search("logs-*", {"sort": [{"@timestamp": "asc"}, "_doc"]})["hits"]["hits"]
    assert [h["_id"] for h in docs] == [doc_id(batch.line_id(i)) for i in range(len(batch))]
    first = docs[0]["_source"]
    assert first["@timestamp"] == first["timestamp"] == "2026-11-25T10:00:00.000000123Z"
    assert first["host"] == "node-1" and first["environment"] == "prod"
    assert first["data_stream"] == {"type": "logs", "dataset": "checkout", "namespace": "default"}
    assert first["trace_id"] == TRACE
    # The original record is all there, untouched.
    assert {k: v for k, v in first.items() if k in orjson.loads(lines[0])} == orjson.loads(lines[0])
    hits = es_receiver.search("logs-*", {"query": {"term": {"trace_id": TRACE}}})["hits"]
    assert hits["total"]["value"] == 2


def test_resend_is_409_and_counts_as_delivered(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(es_receiver.url)
    batch = make_batch([line(i) for i in range(50)])
    assert sink.send(batch).rejected == []
    # A restart replays the same lines (same file identity and offsets): same ids.
    sink2 = sink_factory(es_receiver.url)
    assert sink2.send(make_batch([line(i) for i in range(50)])).rejected == []
    assert sink2.duplicates == 50
    assert es_receiver.count("logs-*") == 50
    assert es_receiver.stats.duplicates_prevented == 50


def test_item_429_retries_only_those_items(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url)
    sink.metrics = rec = Recorder()
    es_receiver.faults.fail_items(3, status=429)
    assert sink.send(make_batch([line(i) for i in range(20)])).rejected == []
    st = es_receiver.stats
    assert st.items[429] == 3 and st.items[201] == 20
    assert st.items[409] == 0  # nothing already stored was sent again
    assert st.bulk_requests == 2 and rec.retries["429"] == 1
    assert es_receiver.count("logs-*") == 20


def test_item_5xx_retried(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url)
    es_receiver.faults.fail_items(2, status=503)
    assert sink.send(make_batch([line(i) for i in range(4)])).rejected == []
    assert es_receiver.count("logs-*") == 4 and es_receiver.stats.items[409] == 0


def test_mapping_errors_are_dead_lettered_with_reason(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(es_receiver.url)
    sink.metrics = rec = Recorder()
    batch = make_batch([line(0, user="bob"), line(1, user={"name": "bob"}), line(2, user="amy")])
    res = sink.send(batch)
    assert [i for i, _ in res.rejected] == [1]
    reason = res.rejected[0][1]
    assert reason.startswith("400 document_parsing_exception: ")
    assert "failed to parse field [user] of type [keyword]" in reason
    assert rec.dead == Counter({"document_parsing_exception": 1})
    assert es_receiver.count("logs-*") == 2
    assert es_receiver.stats.bulk_requests == 1  # never retried


def test_413_splits_and_dead_letters_a_single_oversized_doc(sink_factory: Factory) -> None:
    with EsReceiver(max_content_length=4000) as es:
        sink = sink_factory(es.url)
        sink.metrics = rec = Recorder()
        lines = [line(i) for i in range(30)]
        lines.insert(7, line(99, blob="x" * 5000))
        res = sink.send(make_batch(lines))
        assert [i for i, _ in res.rejected] == [7]
        assert res.rejected[0][1].startswith("413 ")
        assert rec.dead == Counter({"too_large": 1})
        assert es.count("logs-*") == 30 and es.stats.items[409] == 0


def test_batch_limits_cut_requests(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url, batch_max_docs=7)
    assert sink.send(make_batch([line(i) for i in range(20)])).rejected == []
    assert es_receiver.stats.bulk_requests == 3


def test_concurrent_requests_of_one_batch(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url, batch_max_docs=5, concurrency=2)
    es_receiver.faults.stall(0.2, n=4)
    assert sink.send(make_batch([line(i) for i in range(40)])).rejected == []
    assert es_receiver.stats.bulk_requests == 8
    assert es_receiver.stats.max_concurrent_bulk == 2  # never more than configured
    assert es_receiver.count("logs-*") == 40 and es_receiver.stats.items[409] == 0
    one = sink_factory(es_receiver.url, batch_max_docs=5, concurrency=1)
    es_receiver.stats.max_concurrent_bulk = 0
    es_receiver.faults.stall(0.1, n=2)
    assert one.send(make_batch([line(i) for i in range(40, 60)])).rejected == []
    assert es_receiver.stats.max_concurrent_bulk == 1


def test_outage_500_then_recovery(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url)
    sink.metrics = rec = Recorder()
    es_receiver.faults.outage(0.6, status=500)
    assert sink.send(make_batch([line(i) for i in range(10)])).rejected == []
    assert rec.retries["5xx"] >= 2 and rec.outcomes["500"] >= 2
    assert es_receiver.count("logs-*") == 10


def test_request_429_honours_retry_after(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    # Backoff honours Retry-After up to 4 x retry.max.
    sink = sink_factory(es_receiver.url, retry=RetryConfig(initial=0.02, max=0.5))
    es_receiver.faults.fail_requests(1, status=429, retry_after=1)
    t0 = time.monotonic()
    assert sink.send(make_batch([line(0)])).rejected == []
    assert time.monotonic() - t0 >= 1.0  # backoff alone would be ~0.02 s
    assert es_receiver.count("logs-*") == 1


def test_timeout_then_retry_never_duplicates(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(es_receiver.url, timeout=0.3)
    sink.metrics = rec = Recorder()
    es_receiver.faults.stall(1.0, n=1, then_process=True)
    assert sink.send(make_batch([line(i) for i in range(10)])).rejected == []
    assert rec.retries["timeout"] >= 1
    deadline = time.monotonic() + 5
    while es_receiver.stats.items[409] + es_receiver.stats.items[201] < 20:
        assert time.monotonic() < deadline, es_receiver.stats
        time.sleep(0.05)
    # The stalled request and the retry both reached the cluster: ids kept one copy each.
    assert es_receiver.count("logs-*") == 10 and es_receiver.stats.duplicates_prevented == 10


def test_connection_reset_is_retried(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url)
    sink.metrics = rec = Recorder()
    es_receiver.faults.reset(2)
    assert sink.send(make_batch([line(i) for i in range(5)])).rejected == []
    assert sum(rec.retries.values()) >= 2 and es_receiver.count("logs-*") == 5


def test_connection_refused_fails_over_to_next_url(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    with EsReceiver() as dead:
        dead_url = dead.url
    sink = sink_factory(dead_url, urls=[es_receiver.url])
    assert sink.send(make_batch([line(0)])).rejected == []
    assert es_receiver.count("logs-*") == 1


def test_stopping_interrupts_retries(es_receiver: EsReceiver, sink_factory: Factory) -> None:
    sink = sink_factory(es_receiver.url, retry=RetryConfig(initial=5.0, max=5.0))
    es_receiver.faults.outage(60, status=503)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sink.send(make_batch([line(0)]))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 5
    while es_receiver.stats.faults_fired["outage"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    sink.stopping.set()
    t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert len(errors) == 1 and isinstance(errors[0], SinkStopped)


def test_auth_api_key_from_env(
    monkeypatch: pytest.MonkeyPatch, sink_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", "c2VjcmV0LWtleQ==")
    with EsReceiver(auth=["ApiKey c2VjcmV0LWtleQ=="]) as es:
        sink = sink_factory(es.url, auth=AuthConfig(api_key_env="TEST_ES_API_KEY"))
        assert sink.send(make_batch([line(0)])).rejected == []
        assert es.count("logs-*") == 1
    with EsReceiver(auth=[EsReceiver.basic("elastic", "pw")]) as es:
        monkeypatch.setenv("TEST_ES_PW", "pw")
        sink = sink_factory(es.url, auth=AuthConfig(username="elastic", password_env="TEST_ES_PW"))
        assert sink.send(make_batch([line(0)])).rejected == []
    assert "c2VjcmV0LWtleQ" not in caplog.text and "c2VjcmV0LWtleQ" not in repr(sink.config)


def test_wrong_credentials_are_retried_not_dead_lettered(sink_factory: Factory) -> None:
    with EsReceiver(auth=["ApiKey right"]) as es:
        sink = sink_factory(es.url)
        threading.Timer(0.3, lambda: setattr(es, "auth", None)).start()
        assert sink.send(make_batch([line(0)])).rejected == []
        assert es.stats.auth_failures >= 1 and es.count("logs-*") == 1


def test_own_timestamp_and_static_keys_do_not_duplicate(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(es_receiver.url)
    batch = make_batch(
        [line(0, host="app-host", **{"@timestamp": "yesterday"}), line(1)],
        static={"host": "sidecar-host"},
    )
    assert sink.send(batch).rejected == []
    docs = es_receiver.search("logs-*", {"sort": ["_doc"]})["hits"]["hits"]
    a = docs[0]["_source"]
    assert a["host"] == "app-host"  # the record's own field wins over enrichment
    assert a["@timestamp"] == a["timestamp"] and a["log.original_timestamp"] == "yesterday"
    assert docs[1]["_source"]["host"] == "sidecar-host"


def test_spliced_key_names_inside_values_or_nested_are_not_clashes(
    es_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(es_receiver.url)
    odd = line(0, note='the "@timestamp" and "host" keys', ctx={"host": "inner"})
    assert sink.send(make_batch([odd], static={"host": "sidecar-host"})).rejected == []
    (doc,) = es_receiver.documents("logs-*")
    assert doc["host"] == "sidecar-host" and doc["ctx"] == {"host": "inner"}
    assert "log.original_timestamp" not in doc


def test_index_mode_with_date_pattern_on_opensearch(
    os_receiver: EsReceiver, sink_factory: Factory
) -> None:
    sink = sink_factory(os_receiver.url, index="logs-obskit-{service}-%Y.%m.%d")
    lines = [line(0), line(1, "payments")]
    lines.append(orjson.dumps({**orjson.loads(line(2)), "timestamp": "2026-11-26T00:30:00+02:00"}))
    assert sink.send(make_batch(lines)).rejected == []
    assert sorted(os_receiver.cluster.indices) == [
        "logs-obskit-checkout-2026.11.25",
        "logs-obskit-payments-2026.11.25",
    ]
    assert os_receiver.count("logs-obskit-checkout-2026.11.25") == 2
    doc = os_receiver.documents("logs-obskit-payments-*")[0]
    assert "data_stream" not in doc


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="url"):
        Config()
    with pytest.raises(ValueError, match="op_type"):
        Config(url="http://x", op_type="index")
    with pytest.raises(ValueError, match="namespace"):
        Config(url="http://x", namespace="Prod-1")
    with pytest.raises(ValueError, match="may only use"):
        Config(url="http://x", data_stream="logs-{app}-{namespace}")
    with pytest.raises(ValueError, match="http"):
        Config(url="localhost:9200")
