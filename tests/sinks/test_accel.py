"""The optional C loops of the sinks (``sidecar/sinks/_accel.c``) against their pure
Python references: the same integers, the same bytes, on generated inputs and on a real batch
through the Loki sink."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from obskit.schema.record import Record
from sidecar.sinks import loki_proto, timestamps
from sidecar.sinks.base import Batch
from sidecar.sinks.loki import Config, LokiSink

BUILT = loki_proto._c_encode is not None
needs_c = pytest.mark.skipif(not BUILT, reason="sidecar/sinks/_accel.c not built here")
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- timestamps -------------------------------------------------------------------------------
digit2 = st.integers(0, 99).map(lambda n: f"{n:02d}")
plain_ts = st.builds(
    lambda y, mo, d, h, mi, s, frac, end: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}{frac}{end}",
    st.integers(0, 9999),
    digit2,
    digit2,
    digit2,
    digit2,
    digit2,
    st.one_of(
        st.just(""), st.just("."), st.text("0123456789", min_size=1, max_size=11).map(".".__add__)
    ),
    st.sampled_from(["Z", "Z", "Z", "+01:00", "-23:59", "z"]),
)


def _mutate(ts: str, at: int, ch: str) -> str:
    at %= len(ts) + 1
    return ts[:at] + ch + ts[at + 1 :]


any_ts = st.one_of(
    plain_ts,
    st.builds(_mutate, plain_ts, st.integers(0, 40), st.characters()),
    st.text(max_size=32),
)


def _python_ns(ts: str) -> int | str:
    rec = Record(timestamp=ts, level="INFO", service="svc", message="")
    try:
        return timestamps.Timestamps().python([rec])[0]
    except Exception as exc:  # the same error either way
        return type(exc).__name__


@needs_c
@SETTINGS
@given(st.lists(any_ts, max_size=8))
def test_timestamps_c_equals_python(stamps: list[str]) -> None:
    assert timestamps._c_timestamps is not None
    got = timestamps._c_timestamps(stamps)
    assert len(got) == len(stamps)
    for ts, ns in zip(stamps, got, strict=True):
        if ns is not None:  # None: the caller's Python converts it
            assert ns == _python_ns(ts), ts


@needs_c
def test_timestamps_c_takes_the_usual_forms_and_leaves_the_rest() -> None:
    assert timestamps._c_timestamps is not None
    c = timestamps._c_timestamps
    usual = ["2026-12-07T21:00:48.140891Z", "2026-12-07T21:00:48Z", "2016-12-31T23:59:60.5Z"]
    assert c(usual) == [_python_ns(t) for t in usual]
    # An offset, an empty or 10-digit fraction, beyond 64-bit nanoseconds: Python's.
    other = [
        "2026-12-07T21:00:48+01:00",
        "2026-12-07T21:00:48.Z",
        "2026-12-07T21:00:48.1234567891Z",
        "9999-12-31T23:59:59Z",
        "2026-13-07T21:00:48Z",
    ]
    assert c(other) == [None] * len(other)
    recs = [Record(timestamp=t, level="INFO", service="s", message="") for t in usual + other]
    mixed = timestamps.Timestamps()(recs)
    assert mixed == timestamps.Timestamps().python(recs)


# -- structured metadata ----------------------------------------------------------------------
hexid = st.text("0123456789abcdef", min_size=15, max_size=33)
an_id = st.one_of(st.none(), st.just(UNSET), st.just(""), hexid, st.text(max_size=33))


@needs_c
@SETTINGS
@given(st.lists(st.tuples(an_id, an_id), max_size=8))
def test_trace_metadata_list_c_equals_python(ids: list[tuple[object, object]]) -> None:
    tids, sids = [t for t, _ in ids], [s for _, s in ids]
    want = loki_proto.trace_metadata_list_py(tids, sids)
    assert loki_proto.trace_metadata_list(tids, sids) == want


# -- the push encoding ------------------------------------------------------------------------
entry = st.tuples(
    st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64), st.integers(0, 10**19)),
    st.binary(max_size=300),
    st.one_of(st.just(b""), st.binary(max_size=60)),
)


@needs_c
@SETTINGS
@given(st.text(max_size=60), st.lists(entry, max_size=10), st.booleans())
def test_encode_stream_c_equals_python(
    labels: str, entries: list[tuple[int, bytes, bytes]], with_sm: bool
) -> None:
    ts = [e[0] for e in entries]
    lines = [e[1] for e in entries]
    sm = [e[2] for e in entries] if with_sm else None
    assert loki_proto.encode_stream(labels, ts, lines, sm) == loki_proto.encode_stream_py(
        labels, ts, lines, sm
    )
    assert loki_proto._c_encode is not None
    out = loki_proto._c_encode(labels, ts, lines, sm)
    if all(-(2**63) <= t < 2**63 for t in ts):
        assert out == loki_proto.encode_stream_py(labels, ts, lines, sm)  # C took it
    else:
        assert out is None  # beyond 64 bits: the Python encoder's


@needs_c
def test_encode_stream_long_lines_and_mismatched_lengths() -> None:
    big = b"x" * 300_000
    ts, lines = [1_700_000_000_000_000_000, -5, 0], [big, b"\xc3\xa9", b""]
    assert loki_proto.encode_stream('{a="b"}', ts, lines) == loki_proto.encode_stream_py(
        '{a="b"}', ts, lines
    )
    with pytest.raises(ValueError):  # zip(strict=True) in the Python encoder, as before
        loki_proto.encode_stream('{a="b"}', [1, 2], [b"x"])


def _batch() -> Batch:
    # Records as the stage hands them over, including what only a line forwarded despite its
    # errors carries (ids that are not W3C-sized, a timestamp with an offset).
    lines, records = [], []
    for i in range(300):
        trace: str | None = f"{i:032x}" if i % 3 else None
        span: str | None = f"{i:016x}" if i % 6 == 1 else None
        if i % 50 == 7:
            trace, span = "abc", "dé"
        stamp = f"2026-12-07T21:{i % 60:02d}:{(i * 7) % 60:02d}.{i:06d}Z"
        if i % 40 == 3:
            stamp = f"2026-12-07T22:00:{i % 60:02d}+02:00"
        rec = Record(
            timestamp=stamp,
            level=("INFO", "WARN", "ERROR")[i % 3],  # type: ignore[arg-type]
            service=f"svc-{i % 4}",
            message=f"m{i}",
            trace_id=trace if i % 5 else UNSET,
            span_id=span if i % 5 else UNSET,
        )
        records.append(rec)
        lines.append(msgspec.json.encode(rec))
    return Batch(
        0,
        lines,
        records,
        offsets=list(range(len(lines))),
        runs=[(0, "f")],
        static={"host": "h"},
        read_time=0.0,
    )


def _bodies(monkeypatch: pytest.MonkeyPatch, pure: bool, max_bytes: int) -> list[bytes]:
    if pure:
        monkeypatch.setattr(loki_proto, "_c_encode", None)
        monkeypatch.setattr(loki_proto, "_c_trace_meta", None)
        monkeypatch.setattr(timestamps, "_c_timestamps", None)
    sink = LokiSink("t", Config(url="http://127.0.0.1:1", batch_max_bytes=max_bytes))
    batch = _batch()
    ctx = sink._context(batch)
    out = [sink._encode(batch, ctx.ts, sink._streams(ctx, part))[0] for part in sink.parts(batch)]
    # A split push (a half of a planned one) is regrouped from the indices.
    part = sink.parts(batch)[0]
    out.append(sink._encode(batch, ctx.ts, sink._streams(ctx, part[: len(part) // 2]))[0])
    monkeypatch.undo()
    return out


@needs_c
@pytest.mark.parametrize("max_bytes", [1024, 1 << 20])
def test_loki_push_bodies_are_the_same_with_and_without_c(
    monkeypatch: pytest.MonkeyPatch, max_bytes: int
) -> None:
    c = _bodies(monkeypatch, False, max_bytes)
    assert c == _bodies(monkeypatch, True, max_bytes)
    assert len(c) > (2 if max_bytes == 1024 else 1)


def test_pure_python_env_var_turns_the_c_loops_off() -> None:
    code = (
        "from sidecar.sinks import loki_proto, timestamps; "
        "print(loki_proto._c_encode, loki_proto._c_trace_meta, timestamps._c_timestamps)"
    )
    env = {**os.environ, "OBSKIT_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == "None None None\n"


# -- the file sink's enrichment ---------------------------------------------------------------
@needs_c
@SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=12), st.binary(max_size=30))
def test_join_before_last_c_equals_python(lines: list[bytes], sep: bytes) -> None:
    from sidecar import enrich

    assert enrich._join_before_last is not None
    assert enrich._join_before_last(lines, sep) == sep.join([ln[:-1] for ln in lines]) + sep


@needs_c
def test_file_sink_enrichment_is_the_same_with_and_without_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sidecar import enrich

    e = enrich.Enrichment({"host": "h-1", "environment": "prod"})
    plain = [b'{"a":1}', b'{"message":"x","n":[1,2]}', b'{"s":"\\u00e9"}']
    needs_look = [*plain, b'{"host":"mine"}', b"{}", b"not json", b'{"a":1} ']
    for lines in (plain, needs_look):
        with_c = e.append_lines(lines)
        monkeypatch.setattr(enrich, "_join_before_last", None)
        assert e.append_lines(lines) == with_c
        monkeypatch.undo()
    assert e.append_lines(plain).splitlines()[0] == b'{"a":1,"host":"h-1","environment":"prod"}'
