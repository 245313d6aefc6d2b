"""The optional C window scan (obskit/schema/_scan.c) must give exactly what the regexes of
the pure Python path give, and the pure path must still agree with check_line on its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import UNSET

from obskit.schema import Record, batch, check_line, validate_lines

try:
    from obskit.schema import _scan  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the extension is optional
    _scan = None

needs_kernel = pytest.mark.skipif(_scan is None, reason="C kernel not built on this machine")

# Pieces that matter to the three scans, glued at random: keys, quotes, escapes, braces.
PIECES = st.sampled_from(
    [
        b'"',
        b'"level"',
        b'"message"',
        b'"timestamp"',
        b'"trace_id"',
        b'"span_id"',
        b'"service"',
        b"level",
        b"\\",
        b"\\u",
        b"\\u0041",
        b"\\u00e9",
        b"\\uZZ",
        b":",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"}",
        b"{",
        b"} {",
        b"}\r{",
        b"x",
        b",",
        b'"levels"',
        b'\\"',
        b"\\\\",
        b"\\\n",
        b'""level""',
    ]
)


def regex_scan(blob: bytes) -> tuple[int, int, int]:
    m2 = batch._TWO_OBJECTS.search(blob)
    m3 = batch.ESCAPED_KEY.search(blob)
    return (
        len(batch._SCHEMA_KEYS.findall(blob)),
        m2.start() if m2 else -1,
        m3.start() if m3 else -1,
    )


@needs_kernel
@settings(max_examples=3000, deadline=None)
@given(st.lists(PIECES, max_size=40).map(b"".join))
def test_kernel_equals_the_regexes(blob: bytes) -> None:
    assert _scan.scan(blob) == regex_scan(blob)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_kernel_equals_the_regexes_on_arbitrary_bytes(blob: bytes) -> None:
    assert _scan.scan(blob) == regex_scan(blob)


@needs_kernel
def test_kernel_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        _scan.scan("text")


TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2000-02-29T12:00:00.5+05:30",
            "1900-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-12-31T23:59:60Z",
            "2024-12-31T23:59:59.123456789-00:00",
            "2024-12-31T23:59:59.1234567890Z",
            "2024-12-31t23:59:59Z",
            "2024-12-31T24:00:00Z",
            "2024-12-31T23:59:59+24:00",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "٢٠٢٤-01-01T00:00:00Z",
            "",
        ]
    ),
    st.text(alphabet="0123456789-T:.Z+ ", max_size=30),
)
HEX = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=33)
IDS = st.one_of(st.none(), st.just(UNSET), HEX, st.sampled_from(["0" * 32, "0" * 16, "é" * 16]))


def record_is_bad(r: Record) -> bool:
    """What the bulk patterns reject, one record at a time."""
    if batch._TS_BULK.fullmatch(r.timestamp + "\n") is None:
        return True
    for v, bulk in ((r.trace_id, batch._HEX32_BULK), (r.span_id, batch._HEX16_BULK)):
        if isinstance(v, str) and bulk.fullmatch(v + "\n") is None:
            return True
    return bool(r.span_id) and not r.trace_id


@needs_kernel
@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.builds(Record, TIMESTAMPS, st.just("INFO"), st.just("a"), st.just("m"), IDS, IDS),
        max_size=12,
    )
)
def test_check_records_kernel_equals_the_python_checks(recs: list[Record]) -> None:
    bad, no_trace, no_span = _scan.check_records(recs, UNSET)
    flags = [record_is_bad(r) for r in recs]
    assert bad == (flags.index(True) if True in flags else -1)
    assert (batch._check_records_python(list(recs)) is None) == (bad == -1)
    if bad < 0:  # the counts are only used when every record passed
        assert no_trace == sum(r.trace_id is UNSET for r in recs)
        assert no_span == sum(r.span_id is UNSET for r in recs)


def test_pure_python_path_agrees_with_check_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "_scan", batch._scan_python)
    monkeypatch.setattr(batch, "_check_records", None)
    good = (
        b'{"timestamp":"2024-05-01T12:30:00Z","level":"INFO","service":"a","message":"m",'
        b'"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}'
    )
    bad = [
        good.replace(b'"level":"INFO"', b'"level":"INFO","level":"WARN"'),
        good.replace(b'"service":"a"', b'"service":"a","serv\\u0069ce":"b"'),
        good + b" " + good,
        good.replace(b"INFO", b"WARNING"),
    ]
    bad += [
        good.replace(b"2024-05-01", b"2023-02-29"),
        good.replace(b"4bf92f3577b34da6a3ce929d0e0e4736", b"4BF92F3577B34DA6A3CE929D0E0E4736"),
        good.replace(b'"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",', b""),
    ]
    lines = [good] * 40 + bad + [good] * 40
    res = validate_lines(lines)
    for i, line in enumerate(lines):
        assert (res.records[i] is None) == (check_line(line)[0] is None), i
    assert res.invalid == len(bad)
