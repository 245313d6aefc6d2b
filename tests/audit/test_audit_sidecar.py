"""Real data: the real sidecar process ships a log folder to the receivers (and to its file
archive); lines are then deleted and duplicated at the receiver, and ``obskit audit`` (the
real CLI) must report exactly those minutes and counts, from the log folder and from the
archive alike."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from audithelp import base_minute, spread, write
from click.testing import CliRunner

from obskit.audit.buckets import MINUTE_NS, Edges
from obskit.cli import main
from obskit.schema import timestamp_ns
from obskit.trace.model import format_ns
from tests.receivers.elasticsearch import EsReceiver
from tests.receivers.loki import Limits, LokiReceiver
from tests.sidecar.engine.enginehelp import run_once, write_config

MINUTES = 5


def audit_json(path: Path, *backend: str, t0: int) -> tuple[int, dict[str, Any]]:
    """``obskit audit --output json`` (click's runner: the same command, without paying for
    a new interpreter per call)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OBSKIT_")}
    env["OBSKIT_TRACE_CONFIG"] = os.devnull
    args = ["audit", "--path", str(path), *backend, "--output", "json"]
    args += [
        "--from",
        format_ns(t0, 0),
        "--to",
        format_ns(t0 + MINUTES * MINUTE_NS, 0),
    ]
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code in (0, 1), res.output
    (audit,) = json.loads(res.stdout)["audits"]
    return res.exit_code, audit


def found(audit: dict[str, Any], t0: int) -> list[tuple[str, int, int, int]]:
    return [
        (d["service"], (timestamp_ns(d["minute"]) - t0) // MINUTE_NS, d["files"], d["backend"])
        for d in audit["differences"]
    ]


def make_logs(tmp: Path, t0: int) -> list[bytes]:
    checkout = spread(t0, MINUTES, 8)
    payments = spread(t0, MINUTES, 4, "payments", first=1000)
    write(tmp / "logs" / "checkout.log", checkout)
    write(tmp / "logs" / "payments.log", payments, crlf=True)
    return checkout + payments


def ship(tmp: Path, sink: dict[str, Any]) -> None:
    archive = {"name": "archive", "type": "file", "dir": str(tmp / "archive")}
    cfg = write_config(tmp, sinks=[sink, archive], http={"enabled": False})
    res = run_once(cfg, idle=0.5, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def minute_of(raw: str, edges: Edges) -> int:
    return edges.key(timestamp_ns(orjson.loads(raw)["timestamp"]))


def test_loki_deleted_and_duplicated_lines_are_reported_exactly(
    loki_factory: Callable[..., LokiReceiver], tmp_path: Path
) -> None:
    # A small head block: a resend Loki no longer holds in its head block is stored again.
    rx = loki_factory(Limits(head_block_bytes=512))
    t0 = base_minute(30)
    lines = make_logs(tmp_path, t0)
    ship(tmp_path, {"name": "loki", "type": "loki", "url": rx.url})
    assert len(rx.entries()) == len(lines) == 60

    code, audit = audit_json(tmp_path / "logs", "--loki", rx.url, t0=t0)
    assert code == 0 and audit["totals"]["backend"] == 60, audit

    # Lose two checkout lines of one minute and one payments line of another; resend three
    # payments lines of an earlier minute exactly as the sink pushed them (no longer in
    # Loki's head block, so stored again).
    entries = rx.entries()
    checkout_m1 = [
        e
        for e in entries
        if e.labels["service"] == "checkout"
        and minute_of(e.line, Edges.LEFT_OPEN) == t0 + MINUTE_NS
    ]
    payments_m3 = [
        e
        for e in entries
        if e.labels["service"] == "payments"
        and minute_of(e.line, Edges.LEFT_OPEN) == t0 + 3 * MINUTE_NS
    ]
    payments_m1 = [
        e
        for e in entries
        if e.labels["service"] == "payments"
        and minute_of(e.line, Edges.LEFT_OPEN) == t0 + MINUTE_NS
    ]
    doomed = {(e.ts, e.line) for e in checkout_m1[:2] + payments_m3[:1]}
    assert rx.delete(lambda e: (e.ts, e.line) in doomed) == 3
    resend = {
        "streams": [
            {
                "stream": {k: v for k, v in e.labels.items() if k != "service_name"},
                "values": [[str(e.ts), e.line, e.sm]],
            }
            for e in payments_m1[:3]
        ]
    }
    r = httpx.post(rx.url + "/loki/api/v1/push", json=resend)
    assert r.status_code == 204, r.text
    assert rx.stats()["duplicates_stored"] == 3

    expected = [("checkout", 1, 8, 6), ("payments", 1, 4, 7), ("payments", 3, 4, 3)]
    for source in (tmp_path / "logs", tmp_path / "archive"):
        code, audit = audit_json(source, "--loki", rx.url, t0=t0)
        assert code == 1
        assert found(audit, t0) == expected, source
        assert audit["totals"] == {"files": 60, "backend": 60, "missing": 3, "duplicated": 3}


def test_elasticsearch_deleted_and_duplicated_documents_are_reported_exactly(
    es_receiver: EsReceiver, tmp_path: Path
) -> None:
    t0 = base_minute(30)
    make_logs(tmp_path, t0)
    ship(tmp_path, {"name": "es", "type": "elasticsearch", "url": es_receiver.url})
    code, audit = audit_json(tmp_path / "logs", "--es", es_receiver.url, t0=t0)
    assert code == 0 and audit["totals"]["backend"] == 60, audit

    c = httpx.Client(base_url=es_receiver.url)
    hits = c.post("/logs-*/_search", json={"size": 100}).json()["hits"]["hits"]
    by_minute: Counter[tuple[str, int]] = Counter()
    doomed, again = [], []
    for h in sorted(hits, key=lambda h: h["_source"]["timestamp"]):
        src = h["_source"]
        key = (
            src["service"],
            (minute_of(orjson.dumps(src).decode(), Edges.RIGHT_OPEN) - t0) // MINUTE_NS,
        )
        by_minute[key] += 1
        if key == ("checkout", 0) and by_minute[key] <= 3:
            doomed.append(h)
        if key == ("payments", 2) and by_minute[key] <= 1:
            again.append(src)
    for h in doomed:
        assert c.delete(f"/{h['_index']}/_doc/{h['_id']}").json()["result"] == "deleted"
    body = b"".join(orjson.dumps({"create": {}}) + b"\n" + orjson.dumps(s) + b"\n" for s in again)
    r = c.post(
        "/logs-payments-default/_bulk",
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert not r.json()["errors"]

    for source in (tmp_path / "logs", tmp_path / "archive"):
        code, audit = audit_json(source, "--es", es_receiver.url, t0=t0)
        assert code == 1
        assert found(audit, t0) == [("checkout", 0, 8, 5), ("payments", 2, 4, 5)], source
        assert (audit["totals"]["missing"], audit["totals"]["duplicated"]) == (3, 1)
