"""The optional C window scan (obskit/schema/_scan.c) must give exactly what the regexes of
the pure Python path give, and the pure path must still agree with check_line on its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obskit.schema import batch, check_line, validate_lines

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


def test_pure_python_path_agrees_with_check_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "_scan", batch._scan_python)
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
    lines = [good] * 40 + bad + [good] * 40
    res = validate_lines(lines)
    for i, line in enumerate(lines):
        assert (res.records[i] is None) == (check_line(line)[0] is None), i
    assert res.invalid == len(bad)
