"""OTLP-shipped lines in Loki (the in-process Loki's ``/otlp/v1/logs``, which maps OTLP the way
a real Loki 3 does): stream labels from the resource, trace ids and attributes as structured
metadata, the message as the line; Loki's partial 400s isolated; and ``obskit trace --loki``
finds them beside lines shipped by the Loki sink."""

from __future__ import annotations

import time
from typing import Any

from obskit.trace.config import LokiConfig, TraceConfig
from obskit.trace.lookup import run_lookup
from obskit.trace.model import Window
from sidecar.sinks.loki import Config as LokiSinkConfig
from sidecar.sinks.loki import LokiSink
from tests.receivers.loki import LokiReceiver
from tests.sinks.otlp.helpers import batch, sink

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
STATIC = {"host": "node-7", "environment": "prod", "pod": "checkout-5d9f", "container": "app"}


def recs(n: int, t0: int, service: str = "checkout", **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + i * 10**6) // 10**9))
            + f".{(t0 + i * 10**6) % 10**9:09d}Z",
            "level": ["INFO", "WARN", "ERROR", "DEBUG"][i % 4],
            "service": service,
            "message": f"{service} step {i}",
            "trace_id": TRACE,
            "span_id": SPAN,
            "order": {"id": i, "tags": ["a", "b"]},
            **extra,
        }
        for i in range(n)
    ]


def test_labels_metadata_and_line_as_loki_maps_otlp(loki: LokiReceiver) -> None:
    s, _ = sink(loki.url + "/otlp")
    now = time.time_ns() - 10**9
    assert s.send(batch(recs(2, now), static=STATIC)).rejected == []
    e0, e1 = loki.entries()
    assert e0.labels == {
        "service_name": "checkout",
        "deployment_environment_name": "prod",
        "k8s_pod_name": "checkout-5d9f",
        "container_name": "app",
    }
    assert (e0.line, e1.line) == ("checkout step 0", "checkout step 1")
    assert e0.ts == now
    sm = e1.sm
    assert (sm["trace_id"], sm["span_id"]) == (TRACE, SPAN)
    assert (sm["severity_text"], sm["severity_number"]) == ("WARN", "13")
    assert (sm["order_id"], sm["order_tags"]) == ("1", '["a","b"]')
    assert (sm["host_name"], sm["scope_name"]) == ("node-7", "obskit-sidecar")


def test_lokis_partial_400_isolated_and_deduplicated(loki: LokiReceiver) -> None:
    s, m = sink(loki.url + "/otlp")
    now = time.time_ns() - 10**9
    rows = recs(6, now)
    rows[3]["timestamp"] = "2020-01-01T00:00:00Z"  # older than reject_old_samples_max_age
    res = s.send(batch(rows))
    assert [i for i, _ in res.rejected] == [3]
    assert "has timestamp too old" in res.rejected[0][1]
    assert sorted(e.line for e in loki.entries()) == [f"checkout step {i}" for i in (0, 1, 2, 4, 5)]
    # Isolation sent the accepted entries again; Loki dropped them as exact duplicates.
    st = loki.stats()
    assert st["duplicates_dropped"] > 0 and st["duplicates_stored"] == 0
    assert m.dead == {"http_400": 1}


def test_obskit_trace_finds_otlp_and_loki_shipped_lines(loki: LokiReceiver) -> None:
    now = time.time_ns() - 60 * 10**9
    otlp_sink, _ = sink(loki.url + "/otlp")
    otlp_sink.send(batch(recs(3, now, service="checkout")))
    loki_sink = LokiSink("l", LokiSinkConfig(url=loki.url))
    loki_sink.start()
    try:
        loki_sink.send(batch(recs(2, now + 10**7, service="payments")))
    finally:
        loki_sink.close()
    window = Window(now - 3600 * 10**9, now + 3600 * 10**9)
    res = run_lookup(TraceConfig(loki=LokiConfig(url=loki.url)), TRACE, window)
    assert not res.errors
    got = [(e.service, e.level, e.message, e.span_id, e.problems) for e in res.entries]
    assert got == [
        ("checkout", "INFO", "checkout step 0", SPAN, []),
        ("checkout", "WARN", "checkout step 1", SPAN, []),
        ("checkout", "ERROR", "checkout step 2", SPAN, []),
        ("payments", "INFO", "payments step 0", SPAN, []),
        ("payments", "WARN", "payments step 1", SPAN, []),
    ]
    assert res.entries[0].field("order_id") == "0"  # OTLP attributes, as Loki flattened them
    # Without the OTLP selector only the Loki sink's lines are found.
    cfg = TraceConfig(loki=LokiConfig(url=loki.url, otlp_selector=""))
    assert [e.service for e in run_lookup(cfg, TRACE, window).entries] == ["payments"] * 2
