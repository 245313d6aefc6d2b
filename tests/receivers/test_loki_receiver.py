"""The Loki test receiver answers hand-built payloads the way Loki does, so sink tests that
rely on it are trustworthy."""

from __future__ import annotations

import gzip
import json
import time

import cramjam
import httpx
import pytest

from tests.receivers.loki import Limits, LokiReceiver
from tests.receivers.loki_wire import PushRequest, go_time_string, rfc3339

NOW = 1_750_000_000 * 10**9  # pinned clock: 2025-06-15T15:06:40Z
SVC = '{service="api", level="INFO"}'


def pb(streams: list[tuple[str, list[tuple[int, str, dict[str, str]]]]]) -> bytes:
    """A snappy-compressed PushRequest built with the official protobuf runtime."""
    req = PushRequest()
    for labels, entries in streams:
        s = req.streams.add(labels=labels)
        for ts, line, sm in entries:
            e = s.entries.add(line=line)
            e.timestamp.seconds, e.timestamp.nanos = divmod(ts, 10**9)
            for k, v in sm.items():
                e.structuredMetadata.add(name=k, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def push(
    rx: LokiReceiver, body: bytes, ctype: str = "application/x-protobuf", **headers: str
) -> httpx.Response:
    h = {"Content-Type": ctype, **headers}
    return httpx.post(rx.url + "/loki/api/v1/push", content=body, headers=h, timeout=10)


@pytest.fixture
def rx(loki: LokiReceiver) -> LokiReceiver:
    loki.now_ns = lambda: NOW
    return loki


def test_protobuf_push_is_stored_with_structured_metadata_and_service_name(rx: LokiReceiver):
    r = push(rx, pb([(SVC, [(NOW - 5, '{"m":1}', {"trace_id": "ab" * 16})])]))
    assert r.status_code == 204, r.text
    [e] = rx.entries()
    assert e.labels == {"service": "api", "level": "INFO", "service_name": "api"}
    assert (e.ts, e.line, e.sm, e.tenant) == (NOW - 5, '{"m":1}', {"trace_id": "ab" * 16}, "fake")


def test_json_push_plain_and_gzip(rx: LokiReceiver):
    doc = {"streams": [{"stream": {"service": "a"}, "values": [[str(NOW), "x", {"span_id": "1"}]]}]}
    assert push(rx, json.dumps(doc).encode(), "application/json").status_code == 204
    doc["streams"][0]["values"] = [[str(NOW + 1), "y"]]
    body = gzip.compress(json.dumps(doc).encode())
    r = push(rx, body, "application/json", **{"Content-Encoding": "gzip"})
    assert r.status_code == 204
    assert [(e.line, e.sm) for e in rx.entries()] == [("x", {"span_id": "1"}), ("y", {})]


@pytest.mark.parametrize(
    "body",
    [b"not snappy at all \xff\xff", bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\x0f"))],
)
def test_malformed_protobuf_is_400(rx: LokiReceiver, body: bytes):
    r = push(rx, body)
    assert r.status_code == 400
    assert rx.entries() == []


def test_bad_json_is_400(rx: LokiReceiver):
    assert (
        push(rx, b'{"streams":[{"stream":{},"values":[[1,"x"]]}]}', "application/json").status_code
        == 400
    )


def test_partial_failure_writes_valid_entries_and_groups_errors(rx: LokiReceiver):
    old = NOW - 8 * 24 * 3600 * 10**9
    new = NOW + 3600 * 10**9
    body = pb([(SVC, [(old, "old1", {}), (NOW, "ok", {}), (old, "old1", {}), (new, "new", {})])])
    r = push(rx, body)
    assert r.status_code == 400
    stream = '{level="INFO", service="api", service_name="api"}'
    oldest = rfc3339(NOW - 7 * 24 * 3600 * 10**9)
    too_old = (
        f"entry for stream '{stream}' has timestamp too old: {rfc3339(old)}, "
        f"oldest acceptable timestamp is: {oldest}"
    )
    too_new = f"entry for stream '{stream}' has timestamp too new: {rfc3339(new)}"
    assert r.text.strip() == f"2 errors like: {too_old}; 1 errors like: {too_new}"
    assert rx.lines() == ["ok"]
    assert rx.stats()["rejected"] == 3


def test_single_error_is_plain_text(rx: LokiReceiver):
    r = push(rx, pb([(SVC, [(NOW, "x" * 300_000, {}), (NOW, "fine", {})])]))
    assert r.status_code == 400
    assert r.text.strip() == (
        "Max entry size '262144' bytes exceeded for stream "
        '\'{level="INFO", service="api", service_name="api"}\' while adding an entry with '
        "length '300000' bytes"
    )
    assert rx.lines() == ["fine"]


def test_truncate_mode(loki_factory):
    rx = loki_factory(Limits(max_line_size=10, max_line_size_truncate=True))
    rx.now_ns = lambda: NOW
    assert push(rx, pb([(SVC, [(NOW, "0123456789abc", {})])])).status_code == 204
    assert rx.lines() == ["0123456789"]


def test_too_far_behind_reports_last_stream_only_like_the_ingester(rx: LokiReceiver):
    h = 3600 * 10**9
    assert (
        push(
            rx, pb([(SVC, [(NOW, "newest", {})]), ('{service="b"}', [(NOW, "n", {})])])
        ).status_code
        == 204
    )
    body = pb(
        [
            (SVC, [(NOW - 2 * h, "behind-a", {}), (NOW - 1, "ok-a", {})]),
            ('{service="b"}', [(NOW - 2 * h, "behind-b", {}), (NOW - 3 * h, "behind-b2", {})]),
        ]
    )
    r = push(rx, body)
    assert r.status_code == 400
    cutoff = rfc3339(NOW - h)
    want = (
        "".join(
            f"entry with timestamp {go_time_string(ts)} ignored, reason: 'entry too far behind, "
            f"entry timestamp is: {rfc3339(ts)}, oldest acceptable timestamp is: {cutoff}',\n"
            for ts in (NOW - 2 * h, NOW - 3 * h)
        )
        + 'user \'fake\', total ignored: 2 out of 2 for stream: {service="b", service_name="b"}'
    )
    assert r.text.rstrip("\n") == want
    assert sorted(rx.lines()) == ["n", "newest", "ok-a"]  # stream a's rejection is silent
    assert rx.stats()["rejected"] == 3


def test_label_rules(rx: LokiReceiver):
    many = "{" + ", ".join(f'l{i}="v"' for i in range(16)) + "}"
    r = push(rx, pb([(many, [(NOW, "x", {})]), (SVC, [(NOW, "y", {})])]))
    assert r.status_code == 400
    assert "has 16 label names; limit 15" in r.text
    assert rx.lines() == ["y"]
    r = push(rx, pb([('{service="a", 0bad="x"}', [(NOW, "x", {})])]))
    assert r.status_code == 400 and r.text.strip() == (
        "couldn't parse labels: 1:15: parse error: unexpected character inside braces: '0'"
    )
    r = push(rx, pb([('{service="a", service="b"}', [(NOW, "x", {})])]))
    assert r.status_code == 400 and "has duplicate label name: 'service'" in r.text


def test_structured_metadata_limits(loki_factory):
    rx = loki_factory(
        Limits(max_structured_metadata_size=20, max_structured_metadata_entries_count=2)
    )
    rx.now_ns = lambda: NOW
    r = push(
        rx, pb([(SVC, [(NOW, "a", {"k": "v" * 30}), (NOW, "b", {"a": "1", "b": "2", "c": "3"})])])
    )
    assert r.status_code == 400
    assert "structured metadata too large: '31' bytes, limit: '20' bytes" in r.text
    assert "too many structured metadata labels: '3', limit: '2'" in r.text
    rx2 = loki_factory(Limits(allow_structured_metadata=False))
    r = push(rx2, pb([(SVC, [(time.time_ns(), "a", {"k": "v"})])]))
    assert r.status_code == 400 and "structured metadata, but this feature is disallowed" in r.text


def test_tenant_required_when_auth_enabled(loki_factory):
    rx = loki_factory(Limits(auth_enabled=True))
    body = pb([(SVC, [(time.time_ns(), "a", {})])])
    r = push(rx, body)
    assert (r.status_code, r.text.strip()) == (401, "no org id")
    assert push(rx, body, **{"X-Scope-OrgID": "team-a"}).status_code == 204
    assert [e.tenant for e in rx.entries()] == ["team-a"]


def test_rate_limit_is_429_and_stores_nothing(loki_factory):
    rx = loki_factory(Limits(ingestion_rate_bytes=100, ingestion_burst_bytes=150))
    now = time.time_ns()
    assert push(rx, pb([(SVC, [(now, "x" * 100, {})])])).status_code == 204
    r = push(rx, pb([(SVC, [(now + 1, "y" * 100, {})])]))
    assert r.status_code == 429 and "Ingestion rate limit exceeded for user fake" in r.text
    assert rx.lines() == ["x" * 100]


def test_duplicates_dropped_in_head_block_then_stored(loki_factory):
    rx = loki_factory(Limits(head_block_bytes=1000))
    now = time.time_ns()
    body = pb([(SVC, [(now, "same", {})])])
    push(rx, body)
    push(rx, body)
    assert rx.stats()["duplicates_dropped"] == 1 and len(rx.lines()) == 1
    push(rx, pb([(SVC, [(now + i + 1, "z" * 100, {}) for i in range(20)])]))
    push(rx, body)
    assert rx.stats()["duplicates_stored"] == 1
    assert rx.lines().count("same") == 2


def _query(rx: LokiReceiver, q: str, *, flags: str | None = None, **params: str) -> httpx.Response:
    headers = {"X-Loki-Response-Encoding-Flags": flags} if flags else {}
    return httpx.get(
        rx.url + "/loki/api/v1/query_range",
        params={"query": q, **params},
        headers=headers,
        timeout=10,
    )


def _seed(rx: LokiReceiver) -> str:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    lines = [
        (
            '{service="api", level="INFO"}',
            NOW - 30,
            json.dumps({"trace_id": tid, "message": "a"}),
            {"trace_id": tid},
        ),
        (
            '{service="db", level="ERROR"}',
            NOW - 20,
            json.dumps({"trace_id": tid, "message": "b"}),
            {"trace_id": tid},
        ),
        ('{service="api", level="INFO"}', NOW - 10, json.dumps({"message": "other"}), {}),
        (
            '{service="web", level="INFO"}',
            NOW - 5,
            json.dumps({"trace_id": tid, "message": "c"}),
            {},
        ),
    ]
    for labels, ts, line, sm in lines:
        assert push(rx, pb([(labels, [(ts, line, sm)])])).status_code == 204
    return tid


def test_query_by_structured_metadata_folded(rx: LokiReceiver):
    tid = _seed(rx)
    r = _query(
        rx,
        f'{{service=~".+"}} | trace_id="{tid}"',
        start=str(NOW - 100),
        end=str(NOW),
        direction="forward",
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "streams"
    got = [
        (s["stream"]["service"], s["stream"]["trace_id"], v[1])
        for s in data["result"]
        for v in s["values"]
    ]
    assert [g[0] for g in got] == ["api", "db"]
    assert data["result"][0]["stream"] == {
        "service": "api",
        "level": "INFO",
        "service_name": "api",
        "trace_id": tid,
    }


def test_query_json_fallback_and_categorized(rx: LokiReceiver):
    tid = _seed(rx)
    q = f'{{service=~".+"}} |= "{tid}" | json | trace_id="{tid}"'
    r = _query(
        rx, q, flags="categorize-labels", start=str(NOW - 100), end=str(NOW), direction="forward"
    )
    data = r.json()["data"]
    assert data["encodingFlags"] == ["categorize-labels"]
    rows = [(s["stream"], v) for s in data["result"] for v in s["values"]]
    assert len(rows) == 3
    stream, (_ts, _line, extra) = rows[0]
    assert stream == {"service": "api", "level": "INFO", "service_name": "api"}
    assert extra["structuredMetadata"] == {"trace_id": tid}
    assert extra["parsed"]["trace_id_extracted"] == tid and extra["parsed"]["message"] == "a"
    web = next(v for s, v in rows if s["service"] == "web")
    assert web[2] == {"parsed": {"trace_id": tid, "message": "c"}}


def test_query_limits_direction_and_errors(rx: LokiReceiver):
    for i in range(5):
        push(rx, pb([(SVC, [(NOW - 100, f"tie{i}", {})])]))
    r = _query(
        rx, '{service="api"}', start=str(NOW - 1000), end=str(NOW), limit="3", direction="forward"
    )
    assert [v[1] for v in r.json()["data"]["result"][0]["values"]] == ["tie0", "tie1", "tie2"]
    r = _query(rx, '{service="api"}', start=str(NOW - 1000), end=str(NOW), limit="2")
    assert [v[1] for v in r.json()["data"]["result"][0]["values"]] == ["tie4", "tie3"]
    r = _query(rx, '{service="api"}', limit="5001")
    assert r.status_code == 400
    assert (
        r.text.strip()
        == "max entries limit per query exceeded, limit > max_entries_limit (5001 > 5000)"
    )
    r = _query(rx, '{service="api"}', start="2025-01-01T00:00:00Z", end="2025-03-01T00:00:00Z")
    assert r.status_code == 400
    assert (
        r.text.strip()
        == "the query time range exceeds the limit (query length: 1416h0m0s, limit: 30d1h)"
    )
    assert _query(rx, '{service=~".*"}').status_code == 400
    assert _query(rx, "{service=").status_code == 400
    r = httpx.get(rx.url + "/loki/api/v1/query", params={"query": '{service="api"}'})
    assert r.status_code == 400 and "range query" in r.text


def test_start_end_rfc3339_and_end_exclusive(rx: LokiReceiver):
    push(rx, pb([(SVC, [(NOW, "at-end", {}), (NOW - 10**9, "inside", {})])]))
    r = _query(rx, '{service="api"}', start=rfc3339(NOW - 5 * 10**9), end=rfc3339(NOW))
    assert [v[1] for v in r.json()["data"]["result"][0]["values"]] == ["inside"]


def test_faults(rx: LokiReceiver):
    body = pb([(SVC, [(NOW, "a", {})])])
    rx.fail_next(1, 429, retry_after="7")
    r = push(rx, body)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    rx.fail_next(1, 500, store=True)
    assert push(rx, body).status_code == 500
    assert rx.lines() == ["a"]  # the failed request had landed
    rx.reset_next(1)
    with pytest.raises(httpx.TransportError):
        push(rx, body)
    rx.stall_next(1, seconds=1.0)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            rx.url + "/loki/api/v1/push",
            content=pb([(SVC, [(NOW, "b", {})])]),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=0.2,
        )
    assert rx.wait_for(2, timeout=5)
    rx.outage(2.0)  # long enough for a push on a busy machine
    assert push(rx, body).status_code == 503
    time.sleep(2.05)
    assert push(rx, body).status_code == 204
    assert rx.stats()["faults_served"] == 5


def test_categorized_entries_always_have_a_third_element(rx: LokiReceiver):
    push(rx, pb([(SVC, [(NOW - 1, "plain", {})])]))
    r = _query(rx, '{service="api"}', flags="categorize-labels", start=str(NOW - 10), end=str(NOW))
    assert r.json()["data"]["result"][0]["values"] == [[str(NOW - 1), "plain", {}]]


def test_since_parameter(rx: LokiReceiver):
    push(rx, pb([(SVC, [(NOW - 2 * 3600 * 10**9, "old", {}), (NOW - 10**9, "new", {})])]))
    r = _query(rx, '{service="api"}', end=str(NOW), since="3h")
    assert [v[1] for v in r.json()["data"]["result"][0]["values"]] == ["new", "old"]
    r = _query(rx, '{service="api"}', end=str(NOW))  # default: the last hour
    assert [v[1] for v in r.json()["data"]["result"][0]["values"]] == ["new"]


# --- metric queries (what obskit audit sends) ---------------------------------------------------
M = 60 * 10**9
T = (NOW // M - 30) * M  # a whole minute, 30 minutes before the pinned clock


def _points(r: httpx.Response) -> dict[tuple[tuple[str, str], ...], list[list[object]]]:
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    return {tuple(sorted(s["metric"].items())): s["values"] for s in data["result"]}


def test_count_over_time_ranges_are_left_open_right_closed(rx: LokiReceiver):
    # Entries exactly on T, just after it, and exactly on T + 1m: Loki's range [1m] at point
    # t counts (t - 1m, t], so the entry at T belongs to point T, not to point T + 1m.
    push(rx, pb([(SVC, [(T, "on", {}), (T + 1, "after", {}), (T + M, "next-edge", {})])]))
    push(rx, pb([('{service="db", level="WARN"}', [(T + 5 * 10**9, "db", {})])]))
    q = 'sum by (service) (count_over_time({service=~".+"}[1m]))'
    pts = _points(_query(rx, q, start=str(T), end=str(T + 2 * M), step="60"))
    assert pts == {
        (("service", "api"),): [[T // 10**9, "1"], [(T + M) // 10**9, "2"]],
        (("service", "db"),): [[(T + M) // 10**9, "1"]],
    }
    # Grouping after the argument, a duration step, and no grouping at all.
    q2 = 'sum(count_over_time({service="api"}[1m])) by (service)'
    assert _points(_query(rx, q2, start=str(T + M), end=str(T + M), step="1m")) == {
        (("service", "api"),): [[(T + M) // 10**9, "2"]]
    }
    q3 = 'sum(count_over_time({service=~".+"}[2m]))'
    assert _points(_query(rx, q3, start=str(T + M), end=str(T + M), step="60")) == {
        (): [[(T + M) // 10**9, "4"]]
    }
    # Without sum: one series per stream (labels, structured metadata included).
    raw = _points(
        _query(
            rx, 'count_over_time({service="db"}[1m])', start=str(T + M), end=str(T + M), step="60"
        )
    )
    assert list(raw) == [(("level", "WARN"), ("service", "db"), ("service_name", "db"))]


def test_metric_query_limits_and_errors(rx: LokiReceiver):
    q = 'sum by (service) (count_over_time({service=~".+"}[1m]))'
    r = _query(rx, q, start=str(T - 11001 * M), end=str(T), step="60")
    assert r.status_code == 400
    assert r.text.strip() == (
        "exceeded maximum resolution of 11,000 points per time series. Try increasing the "
        "value of the step parameter"
    )
    r = _query(rx, q, start=str(T), end=str(T + M), step="0")
    assert r.status_code == 400 and "zero or negative query resolution step" in r.text
    assert _query(rx, 'sum by (service) (count_over_time({service=~".+"}))').status_code == 400
    assert _query(rx, 'avg_over_time({service="api"}[1m])').status_code == 400
    rx.limits.max_query_series = 1
    push(rx, pb([('{service="a"}', [(T + 1, "x", {})]), ('{service="b"}', [(T + 1, "y", {})])]))
    r = _query(rx, q, start=str(T + M), end=str(T + M), step="60")
    assert r.status_code == 400
    assert r.text.startswith("maximum number of series (1) reached for a single query")


def test_label_values(rx: LokiReceiver):
    push(rx, pb([('{service="a"}', [(T + 1, "x", {})]), ('{service="b"}', [(T - M, "y", {})])]))
    r = httpx.get(
        rx.url + "/loki/api/v1/label/service/values",
        params={"start": str(T), "end": str(T + M), "query": '{service=~".+"}'},
    )
    assert r.json() == {"status": "success", "data": ["a"]}
