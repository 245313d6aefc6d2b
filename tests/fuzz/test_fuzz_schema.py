"""The validator and encoding detection on arbitrary (hostile) input: never an exception,
only violations; transcoding always yields valid UTF-8."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obskit.schema import Policy, Violation, check_line, validate_chunk, validate_line
from obskit.schema.encoding import Encoding, sniff, utf16_to_utf8

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD = (
    b'{"timestamp":"2024-10-01T12:00:00.123Z","level":"INFO","service":"checkout",'
    b'"message":"ok","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}'
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid line with a few random byte edits: nearly-valid input finds more paths."""
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        i = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[i]
    return bytes(data)


def json_values() -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    return st.recursive(
        scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4)
    )


lines = st.binary(max_size=400) | mutated() | json_values().map(lambda v: json.dumps(v).encode())


@FUZZ
@given(lines)
def test_validate_line_only_returns_violations(line: bytes) -> None:
    line = line.replace(b"\n", b" ")
    out = validate_line(line)
    assert isinstance(out, list) and all(isinstance(v, Violation) for v in out)
    for v in out:
        assert v.rule.startswith("OBS") and v.format()
    record, violations = check_line(line, Policy())
    # A record exactly when nothing is an error.
    assert (record is None) == any(v.severity == "error" for v in violations)


@FUZZ
@given(st.lists(lines, max_size=20))
def test_validate_chunk_one_result_per_line(parts: list[bytes]) -> None:
    parts = [p.replace(b"\n", b" ") for p in parts]
    chunk = b"".join(p + b"\n" for p in parts)
    res = validate_chunk(chunk, Policy())
    assert len(res.lines) == len(res.records) == len(parts)
    assert set(res.violations) <= set(range(len(parts)))
    for i, rec in enumerate(res.records):
        if rec is None:
            assert res.violations.get(i), (i, parts[i])


@FUZZ
@given(st.binary(max_size=8))
def test_sniff_classifies_any_prefix(head: bytes) -> None:
    assert isinstance(sniff(head), Encoding)


@FUZZ
@given(
    st.binary(max_size=600),
    st.sampled_from([Encoding.UTF16_LE, Encoding.UTF16_BE]),
    st.integers(1, 64),
)
def test_utf16_transcoding_always_valid_utf8(data: bytes, enc: Encoding, block: int) -> None:
    out = b"".join(utf16_to_utf8(io.BytesIO(data), enc, block=block))
    text = out.decode("utf-8")  # strict: unpaired surrogates became U+FFFD
    # Block size does not change the result.
    assert out == b"".join(utf16_to_utf8(io.BytesIO(data), enc, block=1 << 20))
    assert "\ud800" not in text


@FUZZ
@given(st.text(max_size=200), st.sampled_from([Encoding.UTF16_LE, Encoding.UTF16_BE]))
def test_utf16_round_trip(text: str, enc: Encoding) -> None:
    raw = text.encode(enc.value, "surrogatepass")
    out = b"".join(utf16_to_utf8(io.BytesIO(raw), enc, block=7))
    assert out == text.removeprefix("\ufeff").encode("utf-8", "replace")
