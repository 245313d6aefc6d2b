"""The Loki sink against the in-process Loki over loopback HTTP."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from obskit._http import RetryConfig
from sidecar.sinks.base import SinkStopped
from sidecar.sinks.loki import Config
from tests.receivers.loki import Limits, LokiReceiver
from tests.sinks.loki.helpers import SPAN, TRACE, batch, record, sink

H = 3600 * 10**9


def stored_once(rx: LokiReceiver, b) -> None:
    lines = sorted(rx.lines())
    assert lines == sorted(line.decode() for line in b.lines)


@pytest.mark.parametrize(
    "kw",
    [{}, {"encoding": "json"}, {"encoding": "json", "json_gzip": False}],
    ids=["protobuf", "json-gzip", "json"],
)
def test_labels_metadata_line_and_timestamp(loki: LokiReceiver, kw):
    s, m = sink(loki.url, labels={"env": "prod"}, **kw)
    recs = [
        record(0, service="api", level="INFO"),
        record(1, service="db", level="ERROR", trace=None),
        record(2, service="api", level="INFO", span=None),
    ]
    b = batch(recs, static={"host": "node-1", "pod": "pod-7"})
    assert s.send(b).rejected == []
    got = {e.line: e for e in loki.entries()}
    e0 = got[b.lines[0].decode()]
    assert e0.labels == {
        "service": "api",
        "level": "INFO",
        "instance": "pod-7",
        "env": "prod",
        "service_name": "api",
    }
    assert e0.sm == {"trace_id": TRACE, "span_id": SPAN}
    from obskit.schema import timestamp_ns

    assert e0.ts == timestamp_ns(recs[0]["timestamp"])
    assert got[b.lines[1].decode()].sm == {}
    assert got[b.lines[1].decode()].labels["level"] == "ERROR"
    assert got[b.lines[2].decode()].sm == {"trace_id": TRACE}
    assert orjson.loads(e0.line) == recs[0]  # the original record, not stripped
    assert loki.stats()["push_requests"] == 1 and m.sent_lines == 3


def test_entries_ordered_per_stream(loki: LokiReceiver):
    now = time.time_ns()
    recs = [record(i, ts=now - (i % 7) * 10**6 - i) for i in range(50)]
    s, _ = sink(loki.url)
    assert s.send(batch(recs)).rejected == []
    ts = [e.ts for e in loki.entries()]
    assert ts == sorted(ts)


def test_per_line_400s_dead_lettered_rest_stored_once(loki_factory):
    loki = loki_factory(Limits(max_line_size=2000))  # the schema already caps lines at 256 KiB
    now = time.time_ns()
    recs = [record(i, ts=now - i * 1000) for i in range(20)]
    recs[3] = record(3, ts=now - 8 * 24 * H)  # older than reject_old_samples_max_age
    recs[4] = record(4, ts=now - 8 * 24 * H - 5 * 10**9)
    recs[5] = record(5, ts=now - 8 * 24 * H - 5 * 10**9 + 1)  # same second as 4
    recs[9] = record(9, ts=now + H)  # too far in the future
    recs[12] = record(12, ts=now, pad="y" * 2500)  # over max_line_size
    b = batch(recs)
    s, m = sink(loki.url)
    res = s.send(b)
    assert [i for i, _ in res.rejected] == [3, 4, 5, 9, 12]
    reasons = dict(res.rejected)
    assert "has timestamp too old" in reasons[3] and "oldest acceptable timestamp" in reasons[3]
    assert "has timestamp too new" in reasons[9]
    assert "Max entry size '2000' bytes exceeded" in reasons[12]
    assert loki.stats()["push_requests"] == 1  # nothing sent again
    assert sorted(loki.lines()) == sorted(
        b.lines[i].decode() for i in range(20) if i not in reasons
    )
    assert loki.stats()["duplicates_dropped"] == loki.stats()["duplicates_stored"] == 0
    assert m.dead == {"too_old": 3, "too_new": 1, "line_too_long": 1}


def test_too_far_behind_listed_and_counted(loki: LokiReceiver):
    now = time.time_ns()
    s, _ = sink(loki.url)
    assert s.send(batch([record(0, ts=now)])).rejected == []
    few = batch([record(1, ts=now - 2 * H), record(2, ts=now - 10**9)])
    assert [i for i, _ in s.send(few).rejected] == [0]
    many = batch([record(i, ts=now - 2 * H - i) for i in range(25)] + [record(99, ts=now - 5)])
    res = s.send(many)
    assert [i for i, _ in res.rejected] == list(range(25))
    assert "entry too far behind" in res.rejected[0][1]
    assert loki.stats()["push_requests"] == 3
    assert len(loki.lines()) == 3


def test_invalid_stream_rejected_whole_others_delivered(loki_factory):
    loki = loki_factory(Limits(max_label_value_length=10))
    long_service = "s" * 20  # over max_label_value_length
    b = batch([record(0), record(1, service=long_service), record(2, service=long_service)])
    s, m = sink(loki.url)
    res = s.send(b)
    assert [i for i, _ in res.rejected] == [1, 2]
    assert m.dead == {"invalid_labels": 2}  # one Loki error for the stream, two lines
    assert "has label value too long" in res.rejected[0][1]
    assert loki.lines() == [b.lines[0].decode()]


def test_unattributable_400_is_isolated_by_halving(loki: LokiReceiver):
    b = batch([record(i) for i in range(8)])
    s, _ = sink(loki.url)
    loki.fail_next(1, 400, body="400 Bad Request (from a proxy)")
    assert s.send(b).rejected == []
    stored_once(loki, b)
    assert loki.stats()["push_requests"] == 3


def test_unattributable_400_after_storing_counts_duplicates(loki: LokiReceiver):
    b = batch([record(i) for i in range(8)])
    s, _ = sink(loki.url)
    loki.fail_next(1, 400, body="something Loki did not say", store=True)
    assert s.send(b).rejected == []
    st = loki.stats()
    assert len(set(loki.lines())) == 8
    assert st["duplicates_dropped"] + st["duplicates_stored"] == 8  # bounded to the push
    assert st["duplicates_stored"] == 0  # still in the head block: Loki drops them


def test_single_bad_line_with_opaque_400_is_dead_lettered(loki: LokiReceiver):
    b = batch([record(0)])
    s, _ = sink(loki.url)
    loki.fail_next(2, 400, body="nope")
    res = s.send(b)
    assert res.rejected == [(0, "loki 400: nope")]


def test_429_retry_after_honoured(loki: LokiReceiver):
    b = batch([record(i) for i in range(3)])
    s, m = sink(loki.url, retry=RetryConfig(initial=0.01, max=1.0))
    loki.fail_next(1, 429, retry_after="1")
    t0 = time.monotonic()
    assert s.send(b).rejected == []
    assert time.monotonic() - t0 >= 0.95  # the server's hint, not our 10 ms backoff
    assert m.retries == ["429"]
    stored_once(loki, b)


def test_outage_then_recovery_every_line_once(loki: LokiReceiver):
    b = batch([record(i) for i in range(100)])
    s, m = sink(loki.url)
    loki.outage(0.6, status=500)
    assert s.send(b).rejected == []
    stored_once(loki, b)
    st = loki.stats()
    assert st["duplicates_dropped"] == st["duplicates_stored"] == 0
    assert m.retries and set(m.retries) == {"5xx"}


def test_connection_resets(loki: LokiReceiver):
    b = batch([record(i) for i in range(10)])
    s, _ = sink(loki.url)
    loki.reset_next(2)
    assert s.send(b).rejected == []
    stored_once(loki, b)
    loki.reset_next(1, store=True)  # the push landed, the answer was lost
    b2 = batch([record(i + 100) for i in range(10)])
    assert s.send(b2).rejected == []
    assert len(set(loki.lines())) == 20
    assert loki.stats()["duplicates_dropped"] == 10  # only the in-flight push
    assert s.resent_after_unknown == 2


def test_timeout_after_store_duplicates_bounded_to_in_flight_push(loki: LokiReceiver):
    b = batch([record(i) for i in range(30)])
    s, m = sink(loki.url, timeout=0.3)
    loki.stall_next(1, seconds=1.0, store=True)
    assert s.send(b).rejected == []
    st = loki.stats()
    assert len(set(loki.lines())) == 30
    assert st["duplicates_dropped"] + st["duplicates_stored"] == 30
    assert "timeout" in m.retries


def test_stopping_interrupts_retries(loki: LokiReceiver):
    b = batch([record(0)])
    s, _ = sink(loki.url)
    loki.outage(30)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            s.send(b)
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)
    s.stopping.set()
    t.join(timeout=5)
    assert not t.is_alive()
    assert raised and isinstance(raised[0], SinkStopped)


def test_max_retry_duration_dead_letters(loki: LokiReceiver):
    s, m = sink(loki.url, max_retry_duration=0.2)
    loki.outage(30)
    res = s.send(batch([record(0), record(1)]))
    assert [i for i, _ in res.rejected] == [0, 1]
    assert m.dead == {"retry_budget": 2}
    assert "max_retry_duration" in res.rejected[0][1]


def test_batches_split_by_bytes(loki: LokiReceiver):
    b = batch([record(i, service=f"svc{i % 3}") for i in range(200)])
    s, _ = sink(loki.url, batch_max_bytes=4096)
    assert s.send(b).rejected == []
    assert loki.stats()["push_requests"] > 5
    stored_once(loki, b)


def test_413_splits(loki: LokiReceiver):
    b = batch([record(i) for i in range(6)])
    s, _ = sink(loki.url)
    loki.fail_next(1, 413, body="request body too large")
    assert s.send(b).rejected == []
    stored_once(loki, b)


def test_structured_metadata_disallowed_falls_back_to_line_only(loki_factory):
    rx = loki_factory(Limits(allow_structured_metadata=False))
    b = batch([record(0), record(1, trace=None), record(2)])
    s, _ = sink(rx.url)
    assert s.send(b).rejected == []
    stored_once(rx, b)
    assert all(e.sm == {} for e in rx.entries())
    assert s.structured_metadata is False
    assert rx.stats()["push_requests"] == 2


def test_structured_metadata_off(loki: LokiReceiver):
    s, _ = sink(loki.url, structured_metadata=False)
    assert s.send(batch([record(0)])).rejected == []
    assert loki.entries()[0].sm == {}


def test_tenant_header(loki_factory):
    rx = loki_factory(Limits(auth_enabled=True))
    s, _ = sink(rx.url, tenant="team-a")
    assert s.send(batch([record(0)])).rejected == []
    assert [e.tenant for e in rx.entries()] == ["team-a"]


def test_rate_limited_429_then_delivered(loki_factory):
    rx = loki_factory(Limits(ingestion_rate_bytes=20_000, ingestion_burst_bytes=3000))
    b = batch([record(i) for i in range(40)])
    s, m = sink(rx.url, batch_max_bytes=2048)
    assert s.send(b).rejected == []
    stored_once(rx, b)
    assert "429" in m.retries


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"labels": {f"l{i}": "v" for i in range(13)}}, "at most 15"),
        ({"labels": {"trace_id": "x"}}, "cardinality"),
        ({"labels": {"bad-name": "x"}}, "not a valid Loki label name"),
        ({"labels": {"service": "x"}}, "set by the sink"),
        ({"url": "loki:3100"}, "http://"),
    ],
)
def test_config_validation(kw, msg):
    kw.setdefault("url", "http://127.0.0.1:1")
    with pytest.raises(ValueError, match=msg):
        Config(**kw)


def test_mixed_faults_every_line_delivered_duplicates_only_from_unknown_outcomes(loki):
    """Ten batches through 500s, 429s, resets and slow answers: nothing lost; the only copies
    sent twice are those of pushes Loki stored but could not confirm."""
    s, _ = sink(loki.url, timeout=0.3, batch_max_bytes=64 * 1024)
    batches = [
        batch([record(k * 1000 + i, service=f"s{i % 4}") for i in range(300)]) for k in range(10)
    ]
    unknown_pushes = 0
    for k, b in enumerate(batches):
        if k % 5 == 0:
            loki.fail_next(2, 500)  # not stored
        elif k % 5 == 1:
            loki.fail_next(1, 429, retry_after="0")
        elif k % 5 == 2:
            loki.reset_next(1, store=True)  # stored, answer lost
            unknown_pushes += 1
        elif k % 5 == 3:
            loki.stall_next(1, seconds=0.6, store=True)  # stored, answer too late
            unknown_pushes += 1
        assert s.send(b).rejected == []
    st = loki.stats()
    want = {line.decode() for b in batches for line in b.lines}
    assert set(loki.lines()) == want and len(want) == 3000
    dups = st["duplicates_stored"] + st["duplicates_dropped"]
    # 4 pushes had an unknown outcome; each is at most batch_max_bytes of entries.
    assert s.resent_after_unknown == unknown_pushes == 4
    assert 0 < dups <= 4 * (64 * 1024 // 200)
    assert st["duplicates_stored"] == 0  # all still in Loki's head block


@pytest.mark.parametrize(
    "ts",
    [
        "2025-06-15T15:06:40Z",
        "2025-06-15T15:06:40.5Z",
        "2025-06-15T15:06:40.123456789Z",
        "2016-12-31T23:59:60Z",  # leap second: first instant of the next second
        "2025-06-15T15:06:40.120+02:00",
        "2025-06-15T15:06:40-00:00",
        "2024-02-29T00:00:00.000001Z",
    ],
)
def test_fast_timestamp_path_agrees_with_schema(ts):
    from obskit.schema import timestamp_ns
    from sidecar.sinks.base import Batch
    from sidecar.sinks.loki import LokiSink

    rec = batch([record(0)]).records[0]
    rec.timestamp = ts
    s = LokiSink("t", Config(url="http://127.0.0.1:1"))
    assert s._timestamps(Batch(1, [b"x"], [rec], offsets=[0], runs=[(0, "i")])) == [
        timestamp_ns(ts)
    ]
