"""The optional C kernel (obskit/schema/_scan.c) only says valid or doubtful: every line it
calls valid must be valid for the precise path, with no violation at all, and what it counts
(services, levels, trace ids) must be what the decoded record says. Doubtful lines go to the
precise path, so the final verdicts of the kernel, the pure Python path and the precise path
are the same (test_fast_path_agreement.py); here, the kernel itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from corpus import corpora, encoded_records, mangled, records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loglines import SPAN, TRACE, line
from paths import KERNEL_BUILT

from obskit.schema import Policy, batch, check_line, rules

needs_kernel = pytest.mark.skipif(not KERNEL_BUILT, reason="C kernel not built on this machine")
SCALE = int(os.environ.get("OBSKIT_PROPERTY_SCALE", "1"))
SETTINGS = settings(
    max_examples=25 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
POLICIES = [
    Policy(),
    Policy(max_line_bytes=300),
    Policy(required_fields=("env",)),
    Policy(required_fields=("trace_id", "span_id")),
    Policy(allowed_services=("checkout-api", "re:[a-m].*")),
]


DEFAULT = Policy()


def kernel(lines: list[bytes], policy: Policy = DEFAULT, floor: int = -1) -> Any:
    assert batch._kernel is not None
    blob = b"\n".join(lines)
    return batch._kernel(blob, len(blob), batch._kernel_config(policy, floor))


def assert_sound(lines: list[bytes], policy: Policy, floor: int = 1) -> None:
    """Every kernel-valid line is valid for check_line, without a violation, and the counts
    are those of the decoded records."""
    n, valid, doubtful, services, eligible, carrying = kernel(lines, policy, floor)
    assert n == len(lines)
    bad = {i for i, _, _ in doubtful}
    assert valid == n - len(bad)
    want_services: dict[str, int] = {}
    want_eligible = want_carrying = 0
    pos = 0
    for i, ln in enumerate(lines):
        if i in bad:
            assert (i, pos, pos + len(ln)) in doubtful
        else:
            rec, viol = check_line(ln, policy)
            assert rec is not None and viol == [], (ln, viol)
            want_services[rec.service] = want_services.get(rec.service, 0) + 1
            if floor >= 0 and rules.LEVELS.index(rec.level) >= floor:
                want_eligible += 1
                want_carrying += bool(rec.trace_id)
        pos += len(ln) + 1
    assert services == want_services
    assert (eligible, carrying) == (want_eligible, want_carrying)


@needs_kernel
@SETTINGS
@given(lines=corpora(), policy=st.sampled_from(POLICIES), floor=st.integers(-1, 3))
def test_kernel_valid_lines_are_valid_for_the_precise_path(
    lines: list[bytes], policy: Policy, floor: int
) -> None:
    assert_sound(lines, policy, floor)


# Pieces of JSON glued at random: the kernel must never call the result valid unless it is.
PIECES = st.sampled_from(
    [
        *(b'"timestamp":"2024-02-29T00:00:00Z"', b'"level":"INFO"', b'"service":"a"'),
        *(b'"message":"m"', f'"trace_id":"{TRACE}"'.encode(), f'"span_id":"{SPAN}"'.encode()),
        *(b'"trace_id":null', b'"span_id":null', b'"x":', b'"\\u006cevel":"INFO"'),
        *(b"{", b"}", b"[", b"]", b",", b":", b" ", b"\t", b"\r", b'"', b"\\", b"\\u"),
        *(b"\\ud800", b"\\udc00", b"1", b"-", b".", b"e", b"0", b"true", b"nul", b"null"),
        *(b"\x00", b"\x1f", b"\x7f", b"\xc3\xa9", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90"),
        *(b"\xef\xbb\xbf", b"\xff", b'"k":', b'"k":1', b'"k":"v"'),
    ]
)


@needs_kernel
@settings(max_examples=500 * SCALE, deadline=None)
@given(st.lists(st.lists(PIECES, max_size=30).map(b"".join), min_size=1, max_size=4))
def test_kernel_is_sound_on_glued_json_pieces(lines: list[bytes]) -> None:
    assert_sound(lines, Policy())


@needs_kernel
@settings(max_examples=500 * SCALE, deadline=None)
@given(st.lists(st.binary(max_size=200).filter(lambda b: b"\n" not in b), min_size=1))
def test_kernel_is_sound_on_arbitrary_bytes(lines: list[bytes]) -> None:
    assert_sound(lines, Policy())


@needs_kernel
@SETTINGS
@given(data=st.data(), ascii_only=st.booleans(), compact=st.booleans())
def test_kernel_accepts_valid_records_unless_a_top_level_key_is_escaped(
    data: st.DataObject, ascii_only: bool, compact: bool
) -> None:
    """Doubtful is only for the unusual: a valid record is accepted unless one of its
    top-level keys is written with an escape (the one case the kernel leaves out)."""
    rec = data.draw(records(valid_only=True))
    seps = (",", ":") if compact else None
    raw = json.dumps(rec, ensure_ascii=ascii_only, separators=seps).encode("utf-8")
    escaped_key = any(json.dumps(k, ensure_ascii=ascii_only)[1:-1] != k for k in rec)
    assert check_line(raw)[0] is not None
    _, valid, _, _, _, _ = kernel([raw])
    assert valid == (0 if escaped_key else 1), raw


OK = line()


def with_ctx(value: bytes) -> bytes:
    return OK[:-1] + b', "ctx": ' + value + b"}"


# Valid for the precise path, but unusual: the kernel may leave them to it (doubtful), and the
# final verdict must still be "valid".
UNUSUAL_VALID = {
    "leap second": line(timestamp="2016-12-31T23:59:60Z"),
    "escape in level": OK.replace(b'"INFO"', b'"\\u0049NFO"'),
    "escape in service": OK.replace(b'"checkout-api"', b'"checkout\\u002dapi"'),
    "escaped context key": OK[:-1] + b', "\\u00e9t\\u00e9": 1}',
    "depth 256": with_ctx(b"[" * 255 + b"]" * 255),
    "trailing whitespace": OK + b" \t\r",
    "leading whitespace": b" \t" + OK,
}
# Valid, and the kernel must say so itself (common in real logs).
PLAIN_VALID = {
    "surrogate pair": OK.replace(b'"order placed"', b'"\\ud83d\\ude00"'),
    "escapes in message": OK.replace(b'"order placed"', b'"a\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u0000"'),
    "utf-8 in message": OK.replace(b"order placed", "é€😀".encode()),
    "numbers": with_ctx(b"[0, -0, 1.5, -2e10, 3E+2, 4e-0, 123456789012345678901234567890]"),
    "literals": with_ctx(b'{"a": true, "b": false, "c": null, "d": [], "e": {}}'),
    "null trace and span": line(trace_id=None, span_id=None),
    "no trace, no span": line(drop=("trace_id", "span_id")),
    "trace, null span": line(span_id=None),
    "depth 255": with_ctx(b"[" * 254 + b"]" * 254),
    "del byte": OK.replace(b"order placed", b"order\x7fplaced"),
    "duplicate context key": OK[:-1] + b', "k": 1, "k": 2}',
    "schema key names in values": OK.replace(b"order placed", b'\\"level\\": \\"x\\"'),
    "nested schema keys": with_ctx(b'{"level": 5, "timestamp": null}'),
}
INVALID = {
    "leading zero": with_ctx(b"01"),
    "bare minus": with_ctx(b"-"),
    "dot without digits": with_ctx(b"1."),
    "leading dot": with_ctx(b".5"),
    "plus sign": with_ctx(b"+1"),
    "empty exponent": with_ctx(b"1e"),
    "nan": with_ctx(b"NaN"),
    "infinity": with_ctx(b"Infinity"),
    "short literal": with_ctx(b"tru"),
    "trailing comma in array": with_ctx(b"[1,]"),
    "trailing comma in object": with_ctx(b'{"a": 1,}'),
    "depth 257": with_ctx(b"[" * 256 + b"]" * 256),
    "raw tab in string": OK.replace(b"order placed", b"order\tplaced"),
    "nul in string": OK.replace(b"order placed", b"order\x00placed"),
    "lone high surrogate": OK.replace(b"order placed", b"\\ud800"),
    "lone low surrogate": OK.replace(b"order placed", b"\\udc00"),
    "high surrogate then letter": OK.replace(b"order placed", b"\\ud800\\u0041"),
    "bad escape": OK.replace(b"order placed", b"\\q"),
    "short unicode escape": OK.replace(b"order placed", b"\\u00e"),
    "overlong utf-8": OK.replace(b"order placed", b"\xc0\xaf"),
    "utf-8 surrogate": OK.replace(b"order placed", b"\xed\xa0\x80"),
    "above U+10FFFF": OK.replace(b"order placed", b"\xf4\x90\x80\x80"),
    "truncated utf-8": OK.replace(b"order placed", b"\xe2\x82"),
    "bom": b"\xef\xbb\xbf" + OK,
    "two objects": OK + OK,
    "garbage after": OK + b"x",
    "unterminated": OK[:-1],
    "array": b"[1]",
    "empty object": b"{}",
    "blank": b"",
    "spaces": b" \t\r",
    "duplicate level": OK[:-1] + b', "level": "INFO"}',
    "duplicate null trace": OK[:-1] + b', "trace_id": null}',
    "escaped duplicate": OK[:-1] + b', "\\u006cevel": "INFO"}',
    "message null": line(message=None),
    "message number": line(message=1),
    "level lower": line(level="info"),
    "service upper": line(service="Checkout"),
    "service 64": line(service="x" * 64),
    "service empty": line(service=""),
    "service starts with dot": line(service=".a"),
    "timestamp no zone": line(timestamp="2024-05-01T12:00:00"),
    "feb 29 2023": line(timestamp="2023-02-29T00:00:00Z"),
    "feb 29 1900": line(timestamp="1900-02-29T00:00:00Z"),
    "bad leap second": line(timestamp="2016-12-31T12:59:60Z"),
    "10 fraction digits": line(timestamp="2024-05-01T12:00:00.1234567890Z"),
    "empty trace": line(trace_id=""),
    "upper trace": line(trace_id=TRACE.upper()),
    "zero span": line(span_id="0" * 16),
    "span without trace": line(drop=("trace_id",)),
    "span with null trace": line(trace_id=None),
    "trace number": line(trace_id=1),
    "too long": line(message="x" * 300_000),
}


@needs_kernel
@pytest.mark.parametrize(
    "cases", [UNUSUAL_VALID, PLAIN_VALID, INVALID], ids=["unusual valid", "plain valid", "invalid"]
)
def test_hand_made_lines(cases: dict[str, bytes]) -> None:
    for name, raw in cases.items():
        rec, _ = check_line(raw)
        assert (rec is not None) == (cases is not INVALID), name
        _, valid, _, _, _, _ = kernel([raw])
        if cases is PLAIN_VALID:
            assert valid == 1, name
        elif cases is INVALID:
            assert valid == 0, name
        assert_sound([OK, raw, OK], Policy())


@needs_kernel
def test_policy_required_fields_and_allowed_services() -> None:
    pol = Policy(required_fields=("env", "trace_id"), allowed_services=("checkout-api", "re:p.*"))
    lines = [
        line(env="prod"),
        line(env=None),  # null is present
        line(),  # no env
        line(env=1, drop=("trace_id", "span_id")),  # no trace_id
        line(env=1, trace_id=None, span_id=None),
        line(env=1, service="payments"),
        line(env=1, service="cart"),  # not allowed
        OK[:-1] + b', "\\u0065nv": 1}',  # escaped: doubtful, valid for the precise path
    ]
    n, valid, doubtful, services, _, _ = kernel(lines, pol)
    assert (n, valid) == (8, 4)
    assert [i for i, _, _ in doubtful] == [2, 3, 6, 7]
    assert services == {"checkout-api": 3, "payments": 1}
    assert_sound(lines, pol)


@needs_kernel
def test_service_verdicts_are_asked_once_per_name_and_errors_propagate() -> None:
    asked: list[str] = []

    def ok(name: str) -> bool:
        asked.append(name)
        return name != "b"

    lines = [line(service=s) for s in "abcabcab"]
    cfg = (1000, 256, (), -1, ok, {})
    blob = b"\n".join(lines)
    _, valid, doubtful, services, _, _ = batch._kernel(blob, len(blob), cfg)  # type: ignore[misc]
    assert asked == ["a", "b", "c"]
    assert (valid, services) == (5, {"a": 3, "c": 2})
    assert [i for i, _, _ in doubtful] == [1, 4, 7]
    batch._kernel(blob, len(blob), cfg)  # type: ignore[misc]
    assert asked == ["a", "b", "c"]  # kept in the cache dict

    def boom(name: str) -> bool:
        raise RuntimeError("policy check failed")

    with pytest.raises(RuntimeError, match="policy check failed"):
        batch._kernel(blob, len(blob), (1000, 256, (), -1, boom, {}))  # type: ignore[misc]


@needs_kernel
def test_many_distinct_services_in_one_block() -> None:
    lines = [line(service=f"svc-{i % 5000}") for i in range(12_000)]
    n, valid, doubtful, services, _, _ = kernel(lines)
    assert (n, valid, doubtful) == (12_000, 12_000, [])
    assert len(services) == 5000
    assert services["svc-0"] == 3 and services["svc-4999"] == 2


@needs_kernel
def test_block_regions_and_bad_arguments() -> None:
    assert batch._kernel is not None
    cfg = batch._kernel_config(Policy(), -1)
    data = OK + b"\n" + OK + b"\n" + b"tail"
    assert batch._kernel(data, len(OK), cfg)[:3] == (1, 1, [])
    assert batch._kernel(data, 2 * len(OK) + 1, cfg)[:3] == (2, 2, [])
    n, valid, doubtful, _, _, _ = batch._kernel(data, len(data), cfg)
    assert (n, valid, doubtful) == (3, 2, [(2, len(data) - 4, len(data))])
    assert batch._kernel(b"", 0, cfg)[:3] == (1, 0, [(0, 0, 0)])
    with pytest.raises(ValueError):
        batch._kernel(data, len(data) + 1, cfg)
    with pytest.raises(TypeError):
        batch._kernel("text", 4, cfg)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        batch._kernel(data, 1, (1, 2))
    with pytest.raises(TypeError):
        batch._kernel(data, 1, (1000, 256, ("env",), -1, None, {}))


@needs_kernel
@SETTINGS
@given(base=encoded_records(valid_only=True), bad=encoded_records(), data=st.data())
def test_mangled_lines_between_valid_ones(base: bytes, bad: bytes, data: st.DataObject) -> None:
    lines = [base] * 3 + data.draw(mangled(bad)) + [base] * 3
    assert_sound(lines, data.draw(st.sampled_from(POLICIES)))


def test_pure_python_env_var_turns_the_kernel_off() -> None:
    code = "from obskit.schema import batch; print(batch._kernel is None)"
    env = {**os.environ, "OBSKIT_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == "True\n"
