"""Minute buckets: the two edge conventions, timestamp reading, the compared range."""

from __future__ import annotations

import random

import pytest

from obskit.audit.buckets import MINUTE_NS, BucketRange, Edges, TimestampReader
from obskit.schema import timestamp_ns
from obskit.schema.record import without_leap_second
from obskit.trace.model import TraceUsageError, Window, format_ns

K = 1_796_684_280 * 10**9  # a whole minute


def test_a_line_on_the_boundary_belongs_to_the_minute_before_in_loki_and_after_in_es() -> None:
    assert Edges.LEFT_OPEN.key(K) == K - MINUTE_NS
    assert Edges.RIGHT_OPEN.key(K) == K
    assert Edges.LEFT_OPEN.key(K + 1) == Edges.RIGHT_OPEN.key(K + 1) == K
    assert Edges.LEFT_OPEN.key(K + MINUTE_NS) == K
    assert Edges.RIGHT_OPEN.key(K + MINUTE_NS - 1) == K
    assert Edges.LEFT_OPEN.describe(K).startswith("(") and Edges.LEFT_OPEN.describe(K).endswith("]")
    assert Edges.RIGHT_OPEN.describe(K).startswith("[")
    # Before 1970 floor division still rounds down.
    assert Edges.RIGHT_OPEN.key(-1) == -MINUTE_NS


def test_timestamp_reader_agrees_with_the_schema_for_every_form() -> None:
    rng = random.Random(7)
    reader = TimestampReader()
    forms = []
    for _ in range(2000):
        ns = K + rng.randrange(-(10**15), 10**15)
        digits = rng.choice([0, 1, 3, 6, 9])
        ts = format_ns(ns, digits) if digits else format_ns(ns, 0)
        if rng.random() < 0.2:
            ts = ts[:-1] + rng.choice(["+02:00", "-05:30", "+00:00"])
        forms.append(ts)
    forms += ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.000000000Z", "2024-02-29T23:59:59.9Z"]
    for ts in forms:
        for edges in Edges:
            assert reader.ns(ts, edges) == timestamp_ns(ts), ts


@pytest.mark.parametrize(
    "bad",
    [
        "2026-13-01T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25t10:00:00Z",
        "2026-11-25T10:00:00",
        "2026-11-25 10:00:00Z",
        "2026-11-25T10:00:00.1234567890Z",
        "2026-11-25T10:30:60Z",  # second 60 only at 23:59 UTC
        "yesterday",
        "",
        1764064800,
        None,
    ],
)
def test_timestamp_reader_refuses_what_the_schema_refuses(bad: object) -> None:
    assert TimestampReader().ns(bad, Edges.LEFT_OPEN) is None


def test_leap_second_follows_each_backend() -> None:
    ts = "2016-12-31T23:59:60.5Z"
    reader = TimestampReader()
    loki = reader.ns(ts, Edges.LEFT_OPEN)
    es = reader.ns(ts, Edges.RIGHT_OPEN)
    midnight = timestamp_ns("2017-01-01T00:00:00Z")
    # Loki gets the instant Loki's sink computes: the next minute's first second.
    assert loki == midnight + 500_000_000
    assert Edges.LEFT_OPEN.key(loki) == midnight
    # Elasticsearch stores 23:59:59.999999999 (the sink's @timestamp): minute 23:59.
    assert es == timestamp_ns(without_leap_second(ts))
    assert Edges.RIGHT_OPEN.key(es) == midnight - MINUTE_NS


def test_range_is_rounded_outwards_to_whole_minutes() -> None:
    w = Window(K + 5 * 10**9, K + 3 * MINUTE_NS + 1)
    r = BucketRange.covering(w, Edges.RIGHT_OPEN, now_ns=K + 3600 * 10**9)
    assert (r.first, r.end, r.minutes) == (K, K + 4 * MINUTE_NS, 4)
    assert K in r and K + 3 * MINUTE_NS in r and K + 4 * MINUTE_NS not in r


def test_range_leaves_out_minutes_that_have_not_settled() -> None:
    now = K + 10 * MINUTE_NS + 20 * 10**9  # 10:10:20
    w = Window(K, now)
    r = BucketRange.covering(w, Edges.LEFT_OPEN, now_ns=now, settle_ns=30 * 10**9)
    # 10:09:50 is the settled instant: the last whole minute before it ends at 10:09.
    assert r.end == K + 9 * MINUTE_NS
    r0 = BucketRange.covering(w, Edges.LEFT_OPEN, now_ns=now, settle_ns=0)
    assert r0.end == K + 10 * MINUTE_NS
    with pytest.raises(TraceUsageError, match="no whole minute"):
        BucketRange.covering(Window(now - 10**9, now), Edges.LEFT_OPEN, now, 30 * 10**9)


def test_split_into_pieces_aligned_to_days() -> None:
    day = 86_400 * 10**9
    start = (K // day) * day + day - 90 * MINUTE_NS  # 22:30 on some day
    r = BucketRange(start, start + 3 * 60 * MINUTE_NS, Edges.LEFT_OPEN)
    pieces = r.split(1440, align_ns=day)
    assert [p.minutes for p in pieces] == [90, 90]
    assert pieces[0].end == pieces[1].first == (start // day + 1) * day
    assert [p.minutes for p in r.split(50)] == [50, 50, 50, 30]
