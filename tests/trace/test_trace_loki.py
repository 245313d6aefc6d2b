"""Loki backend against the in-process Loki receiver (real HTTP over loopback)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from trace_helpers import OTHER, TRACE, loki_push, record

from obskit.trace.config import LokiConfig, TraceConfig
from obskit.trace.loki import LokiBackend, parse_streams
from obskit.trace.lookup import run_lookup
from obskit.trace.model import Window
from tests.receivers.loki import Limits, LokiReceiver

NOW = time.time_ns() // 10**9 * 10**9
RECENT = NOW - 600 * 10**9  # ten minutes ago: accepted by Loki's validation
WINDOW = Window(NOW - 3600 * 10**9, NOW + 60 * 10**9)


def lookup(url: str, window: Window = WINDOW, **kw: object) -> list[str]:
    cfg = TraceConfig(loki=LokiConfig(url=url, **kw))  # type: ignore[arg-type]
    res = run_lookup(cfg, TRACE, window)
    assert not res.errors, res.errors
    return [e.message for e in res.entries]


@pytest.mark.parametrize("categorize", [True, False])
@pytest.mark.parametrize("mode", ["both", "metadata"])
def test_structured_metadata_query_both_shapes(
    loki: LokiReceiver, categorize: bool, mode: str
) -> None:
    recs = [
        record(RECENT + i * 10**6, service=s, message=f"m{i}")
        for i, s in enumerate(["gateway", "checkout", "payments", "checkout"])
    ]
    recs.append(record(RECENT + 10**7, message="not mine", trace_id=OTHER))
    loki_push(loki.url, recs)
    assert lookup(loki.url, categorize_labels=categorize, mode=mode) == ["m0", "m1", "m2", "m3"]


def test_fallback_finds_lines_shipped_without_metadata(loki: LokiReceiver) -> None:
    loki_push(loki.url, [record(RECENT, message="with sm")])
    loki_push(
        loki.url,
        [
            record(RECENT + 10**6, service="legacy", message="json only"),
            record(RECENT + 2 * 10**6, service="legacy", trace_id=OTHER, message=f"says {TRACE}"),
        ],
        metadata=False,
    )
    assert lookup(loki.url, mode="metadata") == ["with sm"]
    assert lookup(loki.url, mode="line") == ["with sm", "json only"]
    # both: each line once, though the first matches both queries
    assert lookup(loki.url, mode="both") == ["with sm", "json only"]


@pytest.mark.parametrize("categorize", [True, False])
def test_ties_across_page_borders(loki: LokiReceiver, categorize: bool) -> None:
    """250 lines share one nanosecond, in several streams, around borders of 100-line pages."""
    recs = [record(RECENT + i * 10**6, message=f"before {i}") for i in range(70)]
    tie = RECENT + 10**9
    for i in range(250):
        recs.append(
            record(tie, service=["gateway", "checkout", "payments"][i % 3], message=f"tie {i}")
        )
    recs += [record(tie + 1 + i, message=f"after {i}") for i in range(90)]
    loki_push(loki.url, recs)
    cfg = LokiConfig(url=loki.url, page_size=100, categorize_labels=categorize, mode="metadata")
    backend = LokiBackend(cfg, TRACE)
    got = [r.line for r in backend.query_range(backend.queries()[0], WINDOW)]
    backend.close()
    assert len(got) == len(recs) == len(set(got))
    assert sorted(got) == sorted(__import__("trace_helpers").line(r) for r in recs)
    # The limit had to grow past the 250 tied lines, and requests stayed few.
    assert backend.stats.requests < 12


def test_trace_larger_than_server_limit(loki_factory: Callable[..., LokiReceiver]) -> None:
    """page_size above max_entries_limit_per_query: Loki's 400 teaches the client the cap."""
    rx = loki_factory(Limits(max_entries_limit_per_query=500))
    recs = [record(RECENT + i * 1000, message=f"n{i}") for i in range(1700)]
    loki_push(rx.url, recs)
    got = lookup(rx.url, page_size=5000, mode="metadata")
    assert got == [f"n{i}" for i in range(1700)]


def test_shards_over_a_long_window(loki_factory: Callable[..., LokiReceiver]) -> None:
    rx = loki_factory(Limits(reject_old_samples=False, max_chunk_age=10**6 * 3600 * 10**9))
    start = NOW - 3 * 86400 * 10**9
    recs = [record(start + i * 3 * 3600 * 10**9, message=f"h{i}") for i in range(24)]
    # Lines exactly on shard borders are found once.
    loki_push(rx.url, recs)
    window = Window(start, start + 3 * 86400 * 10**9)
    cfg = TraceConfig(loki=LokiConfig(url=rx.url, shard="6h", mode="metadata"))
    res = run_lookup(cfg, TRACE, window)
    assert [e.message for e in res.entries] == [f"h{i}" for i in range(24)]
    # one request per 6 h shard and query (the sidecar's streams, OTLP-shipped streams)
    assert res.backends[0].requests == 24
    cfg = TraceConfig(loki=LokiConfig(url=rx.url, shard="6h", mode="metadata", otlp_selector=""))
    res = run_lookup(cfg, TRACE, window)
    assert len(res.entries) == 24 and res.backends[0].requests == 12


def test_tenant_header(loki_factory: Callable[..., LokiReceiver]) -> None:
    rx = loki_factory(Limits(auth_enabled=True))
    loki_push(rx.url, [record(RECENT, message="team a")], tenant="team-a")
    loki_push(rx.url, [record(RECENT, message="team b")], tenant="team-b")
    assert lookup(rx.url, tenant="team-a") == ["team a"]
    res = run_lookup(TraceConfig(loki=LokiConfig(url=rx.url)), TRACE, WINDOW)
    assert res.errors and "HTTP 401: no org id" in res.errors[0]


def test_connection_refused_names_backend() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = run_lookup(TraceConfig(loki=LokiConfig(url=f"http://127.0.0.1:{port}")), TRACE, WINDOW)
    assert res.errors == [f"loki http://127.0.0.1:{port}: connection refused"]


def test_parse_streams_shapes() -> None:
    folded = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [
                {"stream": {"service": "a", "trace_id": TRACE}, "values": [["2", "x"], ["1", "y"]]},
            ],
        },
    }
    cat = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "encodingFlags": ["categorize-labels"],
            "result": [
                {
                    "stream": {"service": "a"},
                    "values": [
                        ["2", "x", {"structuredMetadata": {"trace_id": TRACE}}],
                        ["1", "y", {}],
                    ],
                },
            ],
        },
    }
    a, b = parse_streams(folded), parse_streams(cat)
    assert [e.line for e in a] == [e.line for e in b] == ["y", "x"]
    assert a[1].labels["trace_id"] == b[0].labels.get("trace_id", TRACE)
    assert b[1].labels == {"service": "a", "trace_id": TRACE}
