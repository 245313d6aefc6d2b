"""Backend replies are untrusted input too. Loki's 400 texts and Elasticsearch ``_bulk``
responses, arbitrary or mutated from real ones: the parsers never crash, and a rejection is
never pinned on a line that was not in the request (nor on any line, when the reply names a
stream we did not send)."""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.sinks.es_bulk import BulkResponseError, item_statuses
from sidecar.sinks.loki import Config, LokiSink
from sidecar.sinks.loki_errors import parse_reply
from tests.receivers.loki import _grouped
from tests.receivers.loki_wire import go_time_string, labels_string, rfc3339
from tests.sinks.loki.helpers import batch, record

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

T0 = 1_732_000_000 * 10**9
BATCH = batch(
    [
        record(
            i, ts=T0 + i * 700_000_000, service=f"svc{i % 2}", level=("INFO", "WARN")[i % 3 == 0]
        )
        for i in range(12)
    ]
)


def _sink() -> tuple[LokiSink, list[int], list[tuple[str, list[int]]]]:
    s = LokiSink("loki", Config(url="http://127.0.0.1:9"))
    s._instance = "node-1"
    ctx = s._context(BATCH)
    pushes = s._plan(BATCH, ctx)
    assert len(pushes) == 1
    return s, ctx.ts, pushes[0].streams


SINK, TS, STREAMS = _sink()
PUSH_INDICES = {i for _, idx in STREAMS for i in idx}


def _their_stream(key: str, service: str | None = None) -> str:
    """The stream as Loki names it in replies (it adds service_name)."""
    labels = dict(SINK._stream_labels[key])
    if service is not None:
        labels["service"] = service
    labels["service_name"] = labels["service"]
    return labels_string(labels)


def _reply(kind: str, key: str, i: int, service: str | None = None) -> str:
    stream, ts = _their_stream(key, service), TS[i]
    if kind == "too_old":
        return (
            f"entry for stream '{stream}' has timestamp too old: {rfc3339(ts)}, "
            f"oldest acceptable timestamp is: {rfc3339(ts + 10**9)}"
        )
    if kind == "too_new":
        return f"entry for stream '{stream}' has timestamp too new: {rfc3339(ts)}"
    if kind == "too_long":
        n = len(BATCH.lines[i])
        return (
            f"Max entry size '{n - 1}' bytes exceeded for stream '{stream}' while adding an "
            f"entry with length '{n}' bytes"
        )
    return (
        f"entry with timestamp {go_time_string(ts)} ignored, reason: 'entry too far behind, "
        f"entry timestamp is: {rfc3339(ts)}, oldest acceptable timestamp is: "
        f"{rfc3339(ts + 10**9)}',\nuser 'fake', total ignored: 1 out of 12 for stream: {stream}"
    )


KINDS = st.sampled_from(["too_old", "too_new", "too_long", "behind"])


@st.composite
def real_replies(draw: st.DrawFn, service: str | None = None) -> str:
    key, idx = draw(st.sampled_from(STREAMS))
    kind = draw(KINDS)
    if kind == "behind":
        return _reply(kind, key, draw(st.sampled_from(idx)), service)
    msgs = [
        _reply(kind, key, draw(st.sampled_from(idx)), service)
        for _ in range(draw(st.integers(1, 3)))
    ]
    return _grouped(msgs)


@st.composite
def mutate(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = list(draw(base))
    alphabet = st.sampled_from([*"0123456789'{}=\",; :\n-TZ.abc", "\x00", "\u2028"])
    for _ in range(draw(st.integers(0, 5))):
        i = draw(st.integers(0, max(0, len(text) - 1)))
        op = draw(st.sampled_from(["set", "ins", "del"]))
        if op == "set" and text:
            text[i] = draw(alphabet)
        elif op == "ins":
            text.insert(i, draw(alphabet))
        elif text:
            del text[i]
    return "".join(text)


def _attributed(text: str) -> dict[int, tuple[str, str]] | None:
    from sidecar.sinks.loki import _Push

    errors = parse_reply(text)
    return (
        SINK._attribute(BATCH, TS, _Push([(k, list(v)) for k, v in STREAMS]), errors)
        if errors
        else None
    )


@FUZZ
@given(st.text(max_size=400) | mutate(real_replies()))
def test_loki_reply_never_blames_a_line_outside_the_push(text: str) -> None:
    hit = _attributed(text)
    if hit is not None:
        assert set(hit) <= PUSH_INDICES


@FUZZ
@given(mutate(real_replies(service="intruder")))
def test_loki_reply_about_a_stream_we_did_not_send_blames_nobody(text: str) -> None:
    hit = _attributed(text)
    assert not hit


def test_loki_real_replies_are_attributed() -> None:
    # The unmutated replies are understood (else the fuzzing above would prove little).
    key, idx = STREAMS[0]
    for kind in ("too_old", "too_new", "too_long", "behind"):
        hit = _attributed(_reply(kind, key, idx[0]))
        assert hit is not None and idx[0] in hit, kind


# --- Elasticsearch ----------------------------------------------------------------------------


def _bulk_reply(statuses: list[int]) -> bytes:
    items = []
    for s in statuses:
        item: dict[str, object] = {"_index": "logs-a-default", "_id": "x", "status": s}
        if s >= 300:
            item["error"] = {"type": "es_rejected_execution_exception", "reason": "busy"}
        items.append({"create": item})
    return orjson.dumps({"took": 3, "errors": any(s >= 300 for s in statuses), "items": items})


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
)


@st.composite
def bulk_bodies(draw: st.DrawFn) -> bytes:
    statuses = draw(st.lists(st.sampled_from([201, 409, 429, 400, 500]), min_size=1, max_size=6))
    body = bytearray(_bulk_reply(statuses))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(body) - 1))
        body[i] = draw(st.sampled_from(b'{}[]",:0123456789 ets'))
    return bytes(body)


@st.composite
def bulk_cases(draw: st.DrawFn) -> tuple[bytes, int]:
    """A body and how many documents the request had (mostly matching the item count)."""
    kind = draw(st.sampled_from(["binary", "mutated", "items"]))
    if kind == "binary":
        return draw(st.binary(max_size=300)), draw(st.integers(0, 6))
    if kind == "mutated":
        return draw(bulk_bodies()), draw(st.integers(1, 6))
    items = draw(st.lists(st.dictionaries(st.text(max_size=6), json_like, max_size=3), max_size=5))
    n = len(items) if draw(st.booleans()) else draw(st.integers(0, 6))
    return json.dumps({"errors": True, "items": items}).encode(), n


@FUZZ
@given(bulk_cases())
def test_bulk_response_parser_one_verdict_per_document(case: tuple[bytes, int]) -> None:
    body, expected = case
    try:
        out = item_statuses(body, expected)
    except BulkResponseError:
        return  # the sink retries the request: nothing is pinned on any line
    if out is not None:
        assert len(out) == expected  # item i is document i: never one outside the request
        assert all(isinstance(s, int) and isinstance(r, str) for s, r in out)
