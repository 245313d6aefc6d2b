"""The hand-written OTLP encoder against the official ``opentelemetry-proto`` runtime: the
same bytes for the same lines, and both encodings decode to the same records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import obskit
from sidecar.sinks.base import Batch
from sidecar.sinks.otlp import Config, OTLPSink, resource_attributes
from sidecar.sinks.otlp_encode import MAX_DEPTH, decode_line
from sidecar.sinks.timestamps import Timestamps
from tests.receivers.otlp import decode_request, flatten
from tests.sinks.otlp.helpers import batch, batch_of_lines
from tests.sinks.otlp.official import official_request

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
STATIC = {
    "environment": "prod",
    "host": "node-7",
    "pod": "checkout-5d9f",
    "container": "app",
    "image_version": "v1.4.2",
    "build_tags": "fips,arm64",
    "team": "payments",
}


def sink_body(b: Batch, **kw: Any) -> bytes:
    s = OTLPSink("t", Config(url="http://127.0.0.1:1", compression="none", **kw))
    return s.body(b, list(range(len(b))))


def reference(b: Batch, body: str = "message") -> ExportLogsServiceRequest:
    ts = Timestamps()(b.records)
    observed = int(b.read_time * 1e9)
    groups: dict[str, list[Any]] = {}
    for i, rec in enumerate(b.records):
        groups.setdefault(rec.service, []).append((b.lines[i], rec, ts[i], observed))
    return official_request(
        [(resource_attributes(svc, b.static, {}), recs) for svc, recs in groups.items()],
        body=body,
        scope_version=obskit.__version__,
    )


def rec(i: int, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "timestamp": f"2026-11-25T10:00:{i % 60:02d}.{i:06d}Z",
        "level": ["DEBUG", "INFO", "WARN", "ERROR"][i % 4],
        "service": ["checkout", "payments"][i % 2],
        "message": f"line {i}",
        "trace_id": TRACE,
        "span_id": SPAN,
    }
    r.update(extra)
    return r


def test_same_bytes_as_the_official_runtime_for_a_typical_batch() -> None:
    b = batch(
        [
            rec(0, order_id=1234, http={"method": "GET", "status": 200}),
            rec(1, tags=["a", "b"], ratio=0.25, ok=True, none=None),
            rec(2, **{"user.id": "u-1", "nested": {"a": {"b": [1, {"c": None}]}}}),
            {k: v for k, v in rec(3).items() if k not in ("trace_id", "span_id")},
            rec(4, message=""),
        ],
        static=STATIC,
    )
    want = reference(b)
    assert sink_body(b) == want.SerializeToString()
    assert sink_body(b, body="line") == reference(b, body="line").SerializeToString()


def test_decoded_fields() -> None:
    b = batch([rec(1, order_id=7, http={"status": 503})], static=STATIC, read_time=1.5)
    req = ExportLogsServiceRequest.FromString(sink_body(b))
    (r,) = flatten(req)
    assert r.resource == {
        "service.name": "payments",
        "deployment.environment.name": "prod",
        "host.name": "node-7",
        "k8s.pod.name": "checkout-5d9f",
        "container.name": "app",
        "service.version": "v1.4.2",
        "container.image.tags": ["v1.4.2"],
        "build_tags": "fips,arm64",
        "team": "payments",
    }
    assert r.scope == ("obskit-sidecar", obskit.__version__)
    assert r.time_unix_nano == 1795600801_000001_000
    assert r.observed_time_unix_nano == 1_500_000_000
    assert (r.severity_number, r.severity_text) == (9, "INFO")
    assert r.body == "line 1"
    assert r.attributes == {"order_id": 7, "http": {"status": 503}}
    assert (r.trace_id, r.span_id) == (TRACE, SPAN)


def test_values_no_double_or_int64_holds_travel_as_their_exact_text() -> None:
    lines = [
        b'{"timestamp":"2026-11-25T10:00:00Z","level":"INFO","service":"s","message":"m",'
        b'"big":123456789012345678901234567890,"neg":-9223372036854775809,'
        b'"max":9223372036854775807,"huge":1e999,"tiny":-1e-400}'
    ]
    b = batch_of_lines(lines)
    body = sink_body(b)
    assert body == reference(b).SerializeToString()
    (r,) = flatten(ExportLogsServiceRequest.FromString(body))
    assert r.attributes == {
        "big": "123456789012345678901234567890",
        "neg": "-9223372036854775809",
        "max": 9223372036854775807,
        "huge": "1e999",
        "tiny": -0.0,
    }


def test_deep_nesting_becomes_json_text_and_stays_decodable() -> None:
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"k": deep}
    b = batch([rec(0, deep=deep, arr=[[[[1]]]])])
    body = sink_body(b)
    assert body == reference(b).SerializeToString()
    (r,) = flatten(ExportLogsServiceRequest.FromString(body))  # within upb's recursion limit
    v, want = r.attributes["deep"], deep
    for _ in range(MAX_DEPTH):
        v, want = v["k"], want["k"]
    assert isinstance(v, str) and json.loads(v) == want
    assert r.attributes["arr"] == [[[[1]]]]


def test_forwarded_invalid_values_are_kept_as_attributes() -> None:
    # What the sink gets for a line forwarded despite OBS003/OBS006: best-effort record
    # fields; the line's own values must survive as attributes.
    b = batch([rec(0)])
    r0 = b.records[0]
    r0.level = "INFO"  # the line says DEBUG
    r0.trace_id = "not-a-trace-id"
    b.lines[0] = b.lines[0].replace(TRACE.encode(), b"not-a-trace-id")
    body = sink_body(b)
    assert body == reference(b).SerializeToString()
    (r,) = flatten(ExportLogsServiceRequest.FromString(body))
    assert r.severity_text == "INFO"
    assert r.attributes == {"level": "DEBUG", "trace_id": "not-a-trace-id", "span_id": SPAN}
    assert r.trace_id == r.span_id == ""


def test_duplicate_context_keys_last_wins_like_every_json_parser() -> None:
    line = (
        b'{"timestamp":"2026-11-25T10:00:00Z","level":"INFO","service":"s","message":"m",'
        b'"k":1,"other":2,"k":3}'
    )
    assert decode_line(line)["k"] == 3
    b = batch_of_lines([line])
    body = sink_body(b)
    assert body == reference(b).SerializeToString()
    (r,) = flatten(ExportLogsServiceRequest.FromString(body))
    assert r.attributes == {"k": 3, "other": 2}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
extra_keys = st.dictionaries(
    st.text(max_size=12).filter(
        lambda k: k not in ("timestamp", "level", "service", "message", "trace_id", "span_id")
    ),
    json_values,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR"]),
            st.sampled_from(["a", "b", "c.d"]),
            st.text(max_size=40),
            st.booleans(),
            extra_keys,
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["message", "line"]),
)
def test_random_lines_same_bytes_and_json_decodes_to_the_same(rows: Any, body: str) -> None:
    records = []
    for n, (level, svc, msg, traced, extra) in enumerate(rows):
        r: dict[str, Any] = {
            "timestamp": f"2026-11-25T10:00:{n:02d}.5+02:00",
            "level": level,
            "service": svc,
            "message": msg,
        }
        if traced:
            r["trace_id"], r["span_id"] = TRACE, SPAN
        r.update(extra)
        records.append(r)
    b = batch(records, static=STATIC)
    proto = sink_body(b, body=body)
    assert proto == reference(b, body=body).SerializeToString()
    js = sink_body(b, body=body, encoding="json")
    from_json = decode_request(js, "application/json", "")
    assert from_json == ExportLogsServiceRequest.FromString(proto)
    assert json_format.MessageToDict(from_json)  # a well-formed message either way


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_one_resource_logs_per_service_in_order_of_first_appearance(encoding: str) -> None:
    b = batch([rec(i) for i in range(6)])
    body = sink_body(b, encoding=encoding)
    req = decode_request(body, f"application/{'json' if encoding == 'json' else 'x-protobuf'}", "")
    names = [
        next(kv.value.string_value for kv in rl.resource.attributes if kv.key == "service.name")
        for rl in req.resource_logs
    ]
    assert names == ["checkout", "payments"]
    assert [len(rl.scope_logs) for rl in req.resource_logs] == [1, 1]
    assert [
        [lr.body.string_value for lr in rl.scope_logs[0].log_records] for rl in req.resource_logs
    ] == [
        ["line 0", "line 2", "line 4"],
        ["line 1", "line 3", "line 5"],
    ]
