"""Enrichment faults, through the real sidecar: a forwarded empty object archived as valid JSON
(it was ``{,"host":"vm"}``), and a line whose own value for a static key a full JSON parser
refuses (``"host": 1e999``) no longer stalls a sink: its own value wins, nothing is parsed
that need not be, and every other line is delivered."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from sidecar.enrich import Enrichment
from sidecar.sinks.es_bulk import DocumentBuilder, TargetResolver
from tests.receivers.elasticsearch import EsReceiver
from tests.sidecar.engine.enginehelp import SIDECAR, line, write_config

HUGE = b'"host":1e999'  # valid JSON; orjson (and so the ES builder's decode) refused it


def _huge_line(n: int) -> bytes:
    return line(n)[:-1] + b"," + HUGE + b"}"


_CONTAINER_ENV = ("NODE_NAME", "POD_NAME", "CONTAINER_NAME", "KUBERNETES_SERVICE_HOST")


def _run(cfg: Path) -> subprocess.CompletedProcess[str]:
    # Only the configured static fields: none from the container this test may run in.
    env = {k: v for k, v in os.environ.items() if k not in _CONTAINER_ENV}
    return subprocess.run(
        [*SIDECAR, "run", "--config", str(cfg), "--exit-on-idle", "0.5"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def _archive(tmp: Path) -> list[bytes]:
    return [
        raw
        for seg in sorted((tmp / "archive").glob("archive-*.ndjson"))
        for raw in seg.read_bytes().splitlines()
    ]


def test_forwarded_empty_objects_archived_as_valid_json(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, schema={"on_invalid": "forward"}, enrich={"host": "vm"})
    body = [line(0), b"{}", line(1), b"{ }", b'{"seq": 2, "level": "INFO" }', line(3)]
    (tmp_path / "logs" / "a.log").write_bytes(b"\n".join(body) + b"\n")
    res = _run(cfg)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    raw = _archive(tmp_path)
    assert len(raw) == 6
    recs = [orjson.loads(x) for x in raw]  # every archived line is valid JSON
    assert all(r["host"] == "vm" for r in recs)
    assert recs[1] == {"host": "vm"} and recs[3] == {"host": "vm"}
    assert sorted(r["seq"] for r in recs if "seq" in r) == [0, 1, 2, 3]


def test_own_unparseable_value_of_a_static_key_file_sink(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, enrich={"host": "vm", "environment": "prod"})
    lines = [_huge_line(i) if i % 10 == 3 else line(i) for i in range(200)]
    (tmp_path / "logs" / "a.log").write_bytes(b"\n".join(lines) + b"\n")
    res = _run(cfg)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    raw = _archive(tmp_path)
    assert len(raw) == 200
    huge = [x for x in raw if HUGE in x]
    assert len(huge) == 20
    for x in huge:  # the line's own value wins, copied as written; no second "host"
        assert x.count(b'"host"') == 1 and x.endswith(b',"environment":"prod"}')
    others = [orjson.loads(x) for x in raw if HUGE not in x]
    assert all(r["host"] == "vm" and r["environment"] == "prod" for r in others)
    seqs = Counter(int(json.loads(x)["seq"]) for x in raw)  # (json reads 1e999 as inf)
    assert seqs == Counter(range(200))


def test_own_unparseable_value_of_a_static_key_es_sink(tmp_path: Path) -> None:
    lines = [_huge_line(i) if i % 10 == 3 else line(i) for i in range(200)]
    with EsReceiver() as es:
        cfg = write_config(
            tmp_path,
            enrich={"host": "vm"},
            sinks=[{"name": "es", "type": "elasticsearch", "url": es.url, "timeout": "2s"}],
            shutdown_timeout="3s",
        )
        (tmp_path / "logs" / "a.log").write_bytes(b"\n".join(lines) + b"\n")
        res = _run(cfg)  # before: the builder raised on every retry, the sink stalled
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        docs = es.documents("logs-*")
        # This receiver's parser refuses 1e999 as the real one may: those lines are
        # dead-lettered with its reason; every other line is stored once.
        assert sorted(d["seq"] for d in docs) == [i for i in range(200) if i % 10 != 3]
        assert all(d["host"] == "vm" for d in docs)
    dead = [
        orjson.loads(x)
        for p in sorted((tmp_path / "state" / "quarantine").glob("*.ndjson"))
        for x in p.read_bytes().splitlines()
    ]
    assert sorted(json.loads(e["raw"])["seq"] for e in dead) == list(range(3, 200, 10))
    assert all(e["stage"] == "sink" and e["sink"] == "es" for e in dead)


def _builder(static: dict[str, str]) -> DocumentBuilder:
    return DocumentBuilder(
        TargetResolver("logs-{service}-{namespace}", "default"),
        "create",
        static,
        data_stream=True,
        namespace="default",
    )


def _record(raw: bytes) -> Any:
    from obskit.schema import check_line

    rec, errors = check_line(raw)
    assert rec is not None and not errors, errors
    return rec


def test_es_builder_copies_an_unparseable_own_value_without_parsing_it() -> None:
    b = _builder({"host": "vm", "environment": "prod"})
    raw = _huge_line(7)
    action, doc, _ = b.item(raw, _record(raw), "k", 700).split(b"\n")
    assert orjson.loads(action)["create"]["_index"] == "logs-checkout-default"
    assert doc.startswith(b'{"@timestamp":') and doc.count(b'"host"') == 1
    assert HUGE in doc and b'"environment":"prod"' in doc and b'"data_stream":' in doc
    assert json.loads(doc)["host"] == float("inf")


def test_es_builder_moves_the_lines_own_timestamp_and_keeps_its_data_stream() -> None:
    b = _builder({"host": "vm"})
    raw = line(1)[:-1] + b',"@timestamp":"x","data_stream":{"type":"t"},"log.original_timestamp":1}'
    _, doc, _ = b.item(raw, _record(raw), "k", 1).split(b"\n")
    got = orjson.loads(doc)
    assert got["@timestamp"] == "2024-10-01T12:00:01.001Z"
    assert got["log.original_timestamp"] == "x" and got["data_stream"] == {"type": "t"}
    assert got["host"] == "vm"
    for key in (b'"@timestamp"', b'"data_stream"', b'"log.original_timestamp"', b'"host"'):
        assert doc.count(key) == 1, key


def test_enrichment_rule_on_single_lines() -> None:
    e = Enrichment({"host": "vm", "pod": "p-1"})
    assert e.append(b"{}") == b'{"host":"vm","pod":"p-1"}'
    assert e.append(b"{ }") == b'{ "host":"vm","pod":"p-1"}'
    assert e.append(b'{"a":1}') == b'{"a":1,"host":"vm","pod":"p-1"}'
    # A key's name as a value, or in a nested object, is not the key.
    assert e.append(b'{"m":"host","x":{"pod":1}}') == (
        b'{"m":"host","x":{"pod":1},"host":"vm","pod":"p-1"}'
    )
    assert e.append(b'{"host":1e999}') == b'{"host":1e999,"pod":"p-1"}'
    # Not an object msgspec can read: only keys whose quoted name appears nowhere are added.
    assert e.append(b'{"host":"a" oops}') == b'{"host":"a" oops,"pod":"p-1"}'
    assert e.append(b"[1]") == b"[1]" and e.append(b"text") == b"text"
    assert e.missing(b'{"pod":null}') == ["host"]


def test_es_builder_finds_a_static_key_spelled_with_an_escape_and_ignores_it_in_values() -> None:
    # The byte search before the probe must not miss a key written "\u0068ost" (JSON's
    # escape for "host"), nor decode for a "host" that is only inside a value.
    b = _builder({"host": "vm"})
    escaped = line(2)[:-1] + b',"\\u0068ost":"own"}'
    _, doc, _ = b.item(escaped, _record(escaped), "k", 2).split(b"\n")
    assert json.loads(doc)["host"] == "own" and b'"host":"vm"' not in doc
    in_value = line(3)[:-1] + b',"note":"the \\"host\\" key"}'
    _, doc, _ = b.item(in_value, _record(in_value), "k", 3).split(b"\n")
    assert json.loads(doc)["host"] == "vm" and json.loads(doc)["note"] == 'the "host" key'
    plain = line(4)
    _, doc, _ = b.item(plain, _record(plain), "k", 4).split(b"\n")
    assert json.loads(doc)["host"] == "vm" and doc.count(b'"host"') == 1
