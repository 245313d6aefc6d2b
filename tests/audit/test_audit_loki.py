"""``obskit audit`` against the in-process Loki: lines shipped with the real Loki sink, counted
with ``sum by (service) (count_over_time(...[1m]))`` over real HTTP, and Loki's limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from audithelp import base_minute, line, ship_loki, spread, window, write

from obskit.audit import compare
from obskit.audit.buckets import MINUTE_NS, Edges
from obskit.trace.config import LokiConfig
from obskit.trace.model import BackendError
from tests.receivers.loki import Limits, LokiReceiver

DAY = 86_400 * 10**9


def audit(rx: LokiReceiver, paths: list[Path], start: int, minutes: int, **kw: object):  # type: ignore[no-untyped-def]
    cfg = LokiConfig(url=rx.url, tenant=kw.pop("tenant", None))  # type: ignore[arg-type]
    return compare(paths, cfg, window=window(start, minutes), settle=0, **kw)  # type: ignore[arg-type]


def test_everything_arrived(loki: LokiReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    lines = spread(t0, 10, 7) + spread(t0, 10, 3, "payments")
    write(tmp_path / "a.log", lines)
    ship_loki(loki.url, lines)
    res = audit(loki, [tmp_path], t0, 10)
    assert res.ok, res.diffs
    assert res.files_total == res.backend_total == 100
    assert res.buckets_compared == 20
    assert res.buckets.edges is Edges.LEFT_OPEN
    assert res.counts.requests == 2  # the Loki push streams, and those shipped over OTLP


def test_lines_on_minute_boundaries_are_counted_where_loki_counts_them(
    loki: LokiReceiver, tmp_path: Path
) -> None:
    # Whole-second timestamps: a line at 10:01:00.000 belongs to Loki's point 10:01, the
    # range (10:00, 10:01]; the files side must put it in the same bucket or every such
    # line would be "missing" from one minute and "duplicated" in the next.
    t0 = base_minute(40)
    lines = [line(t0 + s * 10**9, i=s) for s in range(0, 300, 5)]  # 12 a minute, 1 on the edge
    write(tmp_path / "a.log", lines)
    ship_loki(loki.url, lines)
    res = audit(loki, [tmp_path], t0, 4)
    assert res.ok, res.diffs
    counts = res.files.counts[Edges.LEFT_OPEN]
    # (t0-1m, t0] holds only the line at t0, which is before the window: not compared.
    assert counts[("checkout", t0)] == 12  # 10:00:05 .. 10:01:00
    assert ("checkout", t0 - MINUTE_NS) not in counts
    assert res.files.outside == 1 + 11  # t0 itself, and 10:04:05 .. 10:04:55


def test_missing_and_duplicated_buckets_exact(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    # A tiny head block: Loki then stores an identical entry pushed again (its dedup only
    # sees the head block), as it does for a resend long after the first push.
    rx = loki_factory(Limits(head_block_bytes=64))
    t0 = base_minute(40)
    lines = spread(t0, 6, 10) + spread(t0, 6, 5, "payments", first=1000)
    write(tmp_path / "app.log", lines)
    ship_loki(rx.url, lines)
    gone = rx.delete(lambda e: e.labels["service"] == "checkout" and '"line 23"' in e.line)
    gone += rx.delete(lambda e: '"line 1029"' in e.line or '"line 1028"' in e.line)
    assert gone == 3
    ship_loki(rx.url, lines[45:48])  # checkout minute 4, three lines again
    res = audit(rx, [tmp_path], t0, 6)
    got = [
        (d.service, (d.start_ns - t0) // MINUTE_NS, d.files, d.backend, d.kind) for d in res.diffs
    ]
    assert got == [
        ("checkout", 2, 10, 9, "missing"),
        ("checkout", 4, 10, 13, "duplicated"),
        ("payments", 5, 5, 3, "missing"),
    ]
    assert (res.missing, res.duplicated) == (3, 3)
    assert not res.ok
    assert res.services["checkout"].missing == 1 and res.services["checkout"].duplicated == 3
    assert res.diffs[0].per_file == {str(tmp_path / "app.log"): 10}


def test_identical_resend_within_the_head_block_is_dropped_by_loki(
    loki: LokiReceiver, tmp_path: Path
) -> None:
    t0 = base_minute(40)
    lines = spread(t0, 3, 5)
    write(tmp_path / "a.log", lines)
    ship_loki(loki.url, lines)
    ship_loki(loki.url, lines[:5])
    assert loki.stats()["duplicates_dropped"] == 5
    assert audit(loki, [tmp_path], t0, 3).ok


def test_window_across_midnight_is_queried_one_day_at_a_time(
    loki: LokiReceiver, tmp_path: Path
) -> None:
    now = time.time_ns()
    now_day = (now // DAY) * DAY
    midnight = now_day if now - now_day > 40 * MINUTE_NS else now_day - DAY
    t0 = midnight - 20 * MINUTE_NS
    lines = spread(t0, 40, 2)
    write(tmp_path / "a.log", lines)
    ship_loki(loki.url, lines)
    before = loki.stats()["metric_queries"]
    res = audit(loki, [tmp_path], t0, 40)
    assert res.ok and res.files_total == 80
    assert loki.stats()["metric_queries"] - before == 2 * 2  # days x (push, OTLP streams)
    assert "2 piece(s)" in res.counts.info[-1]


def test_a_shorter_max_query_length_is_learnt_from_the_400(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    rx = loki_factory(Limits(max_query_length=30 * MINUTE_NS))
    t0 = base_minute(100)
    lines = spread(t0, 90, 1)
    write(tmp_path / "a.log", lines)
    ship_loki(rx.url, lines)
    res = audit(rx, [tmp_path], t0, 90)
    assert res.ok and res.files_total == 90
    assert any("max_query_length is 0.5h" in n for n in res.counts.notes), res.counts.notes
    # One refused query (refused before it counts), then pieces of 29 minutes:
    # ceil(90 / 29) = 4 for the push streams, and 4 for the OTLP streams, which start from
    # what the first query learnt instead of being refused again.
    assert rx.stats()["metric_queries"] == 4 + 4


def test_too_many_series_falls_back_to_one_service_at_a_time(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    rx = loki_factory(Limits(max_query_series=2))
    t0 = base_minute(40)
    lines = spread(t0, 3, 2, "a") + spread(t0, 3, 2, "b") + spread(t0, 3, 2, "c")
    write(tmp_path / "a.log", lines)
    ship_loki(rx.url, lines)
    res = audit(rx, [tmp_path], t0, 3)
    assert res.ok and res.backend_total == 18
    assert any("one service at a time" in n for n in res.counts.notes)
    # by (service, instance) for one service still fits; two instances of three services not.
    ship_loki(rx.url, spread(t0, 3, 1, "a", first=500), instance="node-2")
    res = audit(rx, [tmp_path], t0, 3, by_instance=True)
    assert res.duplicated == 3
    assert {d.per_instance["node-2"] for d in res.diffs} == {1}


def test_late_lines_are_seen_through_the_results_cache(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    # A spool drained after an outage writes old timestamps: a cached answer would be stale.
    rx = loki_factory(Limits(results_cache=True))
    t0 = base_minute(40)
    lines = spread(t0, 3, 4)
    write(tmp_path / "a.log", lines)
    ship_loki(rx.url, lines[:6])
    # A dashboard's query (no Cache-Control) fills the cache while lines are missing.
    q = 'sum by (service) (count_over_time({service=~".+"}[1m]))'
    params = {
        "query": q,
        "start": str(t0 + MINUTE_NS),
        "end": str(t0 + 3 * MINUTE_NS),
        "step": "60",
    }
    httpx.get(rx.url + "/loki/api/v1/query_range", params=params).raise_for_status()
    assert audit(rx, [tmp_path], t0, 3).missing == 6
    ship_loki(rx.url, lines[6:])
    assert audit(rx, [tmp_path], t0, 3).ok
    assert rx.stats()["cache_hits"] == 0
    # The same query without Cache-Control: no-cache still gets the stale answer.
    stale = httpx.get(rx.url + "/loki/api/v1/query_range", params=params).json()
    assert rx.stats()["cache_hits"] == 1
    assert [v[1] for v in stale["data"]["result"][0]["values"]] == ["4", "2"]


def test_instance_filter_and_tenant(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    rx = loki_factory(Limits(auth_enabled=True))
    t0 = base_minute(40)
    mine = spread(t0, 2, 3)
    write(tmp_path / "a.log", mine)
    ship_loki(rx.url, mine, tenant="team-a")
    ship_loki(rx.url, spread(t0, 2, 5, first=100), instance="node-2", tenant="team-a")
    ship_loki(rx.url, spread(t0, 2, 9, first=200), tenant="team-b")
    assert audit(rx, [tmp_path], t0, 2, tenant="team-a").duplicated == 10
    assert audit(rx, [tmp_path], t0, 2, tenant="team-a", instance="node-1").ok
    with pytest.raises(BackendError, match="HTTP 401: no org id"):
        audit(rx, [tmp_path], t0, 2)


def test_connection_refused_is_a_backend_error(tmp_path: Path) -> None:
    write(tmp_path / "a.log", spread(base_minute(40), 1, 1))
    with pytest.raises(BackendError, match="connection refused"):
        compare([tmp_path], LokiConfig(url="http://127.0.0.1:1"), settle=0)


def test_lines_shipped_over_otlp_are_counted_under_their_service(
    loki: LokiReceiver, tmp_path: Path
) -> None:
    # checkout ships with the Loki sink, payments with the OTLP sink into Loki's /otlp
    # endpoint (streams labelled service_name, no service label). Loki's push path also adds
    # service_name to checkout's streams: those must not be counted twice.
    from tests.sinks.otlp.helpers import batch_of_lines
    from tests.sinks.otlp.helpers import sink as otlp_sink

    t0 = base_minute(40)
    pushed = spread(t0, 5, 4)
    over_otlp = spread(t0, 5, 6, "payments")
    write(tmp_path / "a.log", pushed + over_otlp)
    ship_loki(loki.url, pushed)
    sink, _ = otlp_sink(loki.url + "/otlp")
    try:
        res_send = sink.send(batch_of_lines(over_otlp[:-1]))  # the last line never arrives
        assert not res_send.rejected
    finally:
        sink.close()
    res = audit(loki, [tmp_path], t0, 5)
    assert res.files_total == 50 and res.backend_total == 49
    assert res.services["checkout"].missing == 0
    assert res.services["payments"].missing == 1 and res.missing == 1
    assert [(d.service, d.delta) for d in res.diffs] == [("payments", -1)]
