"""The hand-written PushRequest encoder against the official protobuf runtime."""

from __future__ import annotations

import cramjam
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.sinks.loki_proto import compress, encode_stream, label_pair, varint
from tests.receivers.loki_wire import PushRequest


def decode(body: bytes) -> list[tuple[str, list[tuple[int, str, list[tuple[str, str]]]]]]:
    req = PushRequest()
    req.ParseFromString(body)
    return [
        (
            s.labels,
            [
                (
                    e.timestamp.seconds * 10**9 + e.timestamp.nanos,
                    e.line,
                    [(p.name, p.value) for p in e.structuredMetadata],
                )
                for e in s.entries
            ],
        )
        for s in req.streams
    ]


def test_varint_matches_protobuf():
    from google.protobuf.internal import encoder

    for n in [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**35, 2**63]:
        assert varint(n) == encoder._VarintBytes(n), n


entry = st.tuples(
    st.integers(min_value=0, max_value=2**62),
    st.text(max_size=300),
    st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=40)), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=60), st.lists(entry, max_size=8)), max_size=4))
def test_round_trip_through_official_runtime(streams):
    body = b"".join(
        encode_stream(
            labels,
            [e[0] for e in entries],
            [e[1].encode() for e in entries],
            [b"".join(label_pair(k, v) for k, v in e[2]) for e in entries],
        )
        for labels, entries in streams
    )
    assert decode(body) == [
        (lbl, [(t, ln, list(sm)) for t, ln, sm in ents]) for lbl, ents in streams
    ]


def test_long_lines_and_no_metadata():
    big = "x" * 300_000
    body = encode_stream('{a="b"}', [1_700_000_000_000_000_000, 5], [big.encode(), b"\xc3\xa9"])
    assert decode(body) == [('{a="b"}', [(1_700_000_000_000_000_000, big, []), (5, "é", [])])]


def test_compress_is_snappy_block_format():
    body = encode_stream('{a="b"}', [1], [b"hello"])
    assert bytes(cramjam.snappy.decompress_raw(compress(body))) == body


@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=20)))
def test_trace_metadata_any_ids(trace_id, span_id):
    from sidecar.sinks.loki_proto import trace_metadata

    body = encode_stream('{a="b"}', [1], [b"x"], [trace_metadata(trace_id, span_id)])
    want = [("trace_id", trace_id)] + ([("span_id", span_id)] if span_id else [])
    assert decode(body)[0][1][0][2] == want


def test_trace_metadata_w3c_ids():
    from sidecar.sinks.loki_proto import trace_metadata

    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    body = encode_stream('{a="b"}', [1], [b"x"], [trace_metadata(tid, sid)])
    assert decode(body)[0][1][0][2] == [("trace_id", tid), ("span_id", sid)]
    # 32 characters but more than 32 bytes must not take the fixed-size header
    odd = "é" * 32
    body = encode_stream('{a="b"}', [1], [b"x"], [trace_metadata(odd, "ü" * 16)])
    assert decode(body)[0][1][0][2] == [("trace_id", odd), ("span_id", "ü" * 16)]
