"""The in-process OTLP receiver follows the OTLP/HTTP specification: content types, gzip,
answers in the request's encoding, partial success shape, 400 for malformed bodies, 413,
throttling with Retry-After. Requests are built with the official runtime, not the sink."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from sidecar.sinks.protowire import read_fields
from tests.receivers.otlp import Limits, OTLPReceiver, status_body

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def request(n: int = 2, service: str = "svc") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add(key="service.name")
    kv.value.string_value = service
    sl = rl.scope_logs.add()
    sl.scope.name = "test"
    for i in range(n):
        lr = sl.log_records.add(time_unix_nano=1_700_000_000_000_000_000 + i)
        lr.severity_number = 9  # type: ignore[assignment]
        lr.severity_text = "INFO"
        lr.body.string_value = f"line {i}"
        lr.trace_id = TRACE
        a = lr.attributes.add(key="i")
        a.value.int_value = i
    return req


def as_json(req: ExportLogsServiceRequest) -> bytes:
    """OTLP/JSON: hex ids instead of proto3 JSON's base64."""
    doc = json_format.MessageToDict(req)
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for lr in sl["logRecords"]:
                if "traceId" in lr:
                    lr["traceId"] = TRACE.hex()
    return json.dumps(doc).encode()


def post(rx: OTLPReceiver, body: bytes, headers: dict[str, str], path: str = "/v1/logs"):
    return httpx.post(rx.url + path, content=body, headers=headers, timeout=10)


def test_protobuf_and_json_store_the_same_records(otlp: OTLPReceiver) -> None:
    req = request()
    r1 = post(otlp, req.SerializeToString(), PB)
    assert r1.status_code == 200
    assert r1.headers["content-type"] == "application/x-protobuf"
    assert ExportLogsServiceResponse.FromString(r1.content) == ExportLogsServiceResponse()
    r2 = post(otlp, as_json(req), JS, path="/otlp/v1/logs")  # any prefix, like Loki's
    assert r2.status_code == 200
    assert r2.headers["content-type"] == "application/json"
    assert r2.json() == {}
    a, b = otlp.records()[:2], otlp.records()[2:]
    assert a == b
    assert [(r.service, r.body, r.attributes, r.trace_id) for r in a] == [
        ("svc", "line 0", {"i": 0}, TRACE.hex()),
        ("svc", "line 1", {"i": 1}, TRACE.hex()),
    ]


def test_gzip_and_identity(otlp: OTLPReceiver) -> None:
    body = request().SerializeToString()
    r = post(otlp, gzip.compress(body), {**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    r = post(otlp, body, {**PB, "Content-Encoding": "identity"})
    assert r.status_code == 200
    assert otlp.stats()["gzip_requests"] == 1 and otlp.stats()["accepted"] == 4


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({"Content-Type": "text/plain"}, b"x", 415, "unsupported Content-Type"),
        ({**PB, "Content-Encoding": "br"}, b"x", 415, "unsupported Content-Encoding"),
        ({**PB, "Content-Encoding": "gzip"}, b"not gzip", 400, "invalid gzip"),
        (PB, b"\xff\xff\xff", 400, "invalid protobuf"),
        (JS, b"{not json", 400, "invalid JSON"),
        (JS, b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}', 400, "hex"),
        (
            JS,
            b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"abcd"}]}]}]}',
            400,
            "length",
        ),
    ],
)
def test_malformed_requests(
    otlp: OTLPReceiver, headers: dict[str, str], body: bytes, status: int, message: str
) -> None:
    r = post(otlp, body, headers)
    assert r.status_code == status
    text = r.json()["message"] if r.headers["content-type"] == "application/json" else r.text
    assert message in text
    assert otlp.stats()["accepted"] == 0


def test_error_body_is_a_status_in_the_request_encoding(otlp: OTLPReceiver) -> None:
    r = post(otlp, b"\xff", PB)
    assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
    fields = dict(read_fields(r.content))  # google.rpc.Status: message is field 2
    assert fields[2].decode().startswith("invalid protobuf")
    assert status_body("x", False) == b"\x12\x01x"
    assert post(otlp, b"{", JS).json()["message"].startswith("invalid JSON")


def test_wrong_path_and_method(otlp: OTLPReceiver) -> None:
    assert post(otlp, request().SerializeToString(), PB, path="/v1/traces").status_code == 404
    assert httpx.get(otlp.url + "/v1/logs", timeout=10).status_code == 405


def test_body_limit_413_before_and_after_gzip(otlp_factory) -> None:
    rx = otlp_factory(Limits(max_body_bytes=1000))
    big = request(200).SerializeToString()
    assert len(big) > 1000
    assert post(rx, big, PB).status_code == 413
    assert post(rx, gzip.compress(big), {**PB, "Content-Encoding": "gzip"}).status_code == 413
    assert rx.stats()["accepted"] == 0


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_partial_success_shape(otlp_factory, encoding: str) -> None:
    rx = otlp_factory(Limits(reject=lambda r: "too old" if r.attributes["i"] % 2 else None))
    req = request(5)
    if encoding == "json":
        r = post(rx, as_json(req), JS)
        assert r.json() == {
            "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "too old"}
        }
    else:
        r = post(rx, req.SerializeToString(), PB)
        ps = ExportLogsServiceResponse.FromString(r.content).partial_success
        assert (ps.rejected_log_records, ps.error_message) == (2, "too old")
    assert r.status_code == 200
    assert [rec.attributes["i"] for rec in rx.records()] == [0, 2, 4]


def test_400_modes(otlp_factory) -> None:
    def odd(r):
        return "bad" if r.attributes["i"] % 2 else None

    strict = otlp_factory(Limits(reject=odd, reject_mode="400_all"))
    assert post(strict, request(4).SerializeToString(), PB).status_code == 400
    assert strict.records() == []
    loki_like = otlp_factory(Limits(reject=odd, reject_mode="400_partial"))
    assert post(loki_like, request(4).SerializeToString(), PB).status_code == 400
    assert [r.attributes["i"] for r in loki_like.records()] == [0, 2]


def test_faults_retry_after_reset_stall_outage(otlp: OTLPReceiver) -> None:
    body = request(1).SerializeToString()
    otlp.fail_next(1, 429, retry_after="3")
    r = post(otlp, body, PB)
    assert (r.status_code, r.headers["retry-after"]) == (429, "3")
    assert "too many requests" in r.text
    otlp.reset_next(1, store=True)
    with pytest.raises(httpx.TransportError):
        post(otlp, body, PB)
    otlp.stall_next(1, seconds=0.5, store=True)
    t0 = time.monotonic()
    assert post(otlp, body, PB).status_code == 200
    assert time.monotonic() - t0 >= 0.5
    otlp.outage(0.3, status=503)
    assert post(otlp, body, PB).status_code == 503
    time.sleep(0.35)
    assert post(otlp, body, PB).status_code == 200
    st = otlp.stats()
    # reset-after-store, stall-after-store and the last one were stored
    assert (st["faults_served"], st["accepted"]) == (4, 3)


def test_oversized_content_length_is_refused_unread(otlp_factory) -> None:
    rx = otlp_factory(Limits(max_body_bytes=100))
    r = httpx.post(rx.url + "/v1/logs", content=b"x" * 5000, headers=PB, timeout=10)
    assert r.status_code == 413 and r.headers.get("connection") == "close"
