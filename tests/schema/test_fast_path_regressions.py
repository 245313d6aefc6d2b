"""Lines the batch fast path once accepted although the precise path rejects them."""

from __future__ import annotations

import pytest
from loglines import SPAN, TRACE, line
from paths import FAST_PATHS, fast_path

from obskit.schema import Policy, batch, check_line, validate_lines


@pytest.mark.parametrize(
    "bad",
    [
        line(trace_id="", drop=("span_id",)),  # "" is falsy but present: was skipped
        line(span_id=""),
        line(trace_id="", span_id=""),
        line(drop=("trace_id",), span_id=""),
    ],
)
@pytest.mark.parametrize("path", FAST_PATHS)
def test_empty_string_ids_are_rejected_in_a_batch(bad: bytes, path: str) -> None:
    lines = [line()] * 10 + [bad] + [line()] * 10
    with fast_path(path):
        res = validate_lines(lines)
    rec, viol = check_line(bad)
    assert rec is None and viol
    assert res.records[10] is None
    assert res.violations[10] == viol
    assert res.invalid == 1


@pytest.mark.parametrize(
    "required", [("trace_id",), ("span_id", "env"), ("level", "env"), ("message",)]
)
@pytest.mark.parametrize("path", FAST_PATHS)
def test_policy_may_require_schema_fields(required: tuple[str, ...], path: str) -> None:
    # A schema field in required_fields used to crash the batch path (duplicate struct field).
    pol = Policy(required_fields=required)
    lines = [line(env=1)] * 6
    lines += [
        line(drop=("trace_id", "span_id")),
        line(drop=("span_id",)),
        line(trace_id=None, span_id=None),
    ]
    lines += [line(env=1)] * 6
    with fast_path(path):
        res = validate_lines(lines, pol)
    for i, ln in enumerate(lines):
        rec, viol = check_line(ln, pol)
        assert (res.records[i] is None) == (rec is None)
        assert res.violations.get(i, []) == viol
    if required == ("trace_id",):
        assert [v.format() for v in res.violations[6]] == [
            "OBS020 trace_id: required by policy but missing"
        ]
        assert 7 not in res.violations and 8 not in res.violations  # null is present


@pytest.mark.parametrize("path", FAST_PATHS)
def test_every_byte_at_every_structural_place(path: str) -> None:
    """Each byte value (but LF) put at the start, end and between tokens of a line in a
    batch: the batch verdict and violations equal the precise path's."""
    ok = line()
    for b in range(256):
        if b == 0x0A:
            continue
        x = bytes([b])
        places = (
            x + ok,
            ok + x,
            ok[:1] + x + ok[1:],
            ok[:-1] + x + ok[-1:],
            ok.replace(b'":', b'"' + x + b":", 1),
            ok.replace(b', "', b"," + x + b'"', 1),
            ok.replace(b'"INFO"', b'"IN' + x + b'FO"', 1),
        )
        lines = [ok] * 6 + list(places) + [ok] * 6
        with fast_path(path):
            res = validate_lines(lines)
        for i in range(6, 6 + len(places)):
            rec, viol = check_line(lines[i])
            assert (res.records[i] is None) == (rec is None), (b, i)
            assert res.violations.get(i, []) == viol, (b, i)


def _defects() -> dict[str, list[bytes]]:
    """One hand-made case per check of the batch path (and the tricky combinations)."""
    ok = line()
    d: dict[str, list[bytes]] = {
        "trace upper": [line(trace_id=TRACE.upper())],
        "trace one upper": [line(trace_id=TRACE[:-1] + "F")],
        "trace zero": [line(trace_id="0" * 32)],
        "trace short": [line(trace_id=TRACE[:-1])],
        "trace long": [line(trace_id=TRACE + "0")],
        "trace nonhex": [line(trace_id="g" + TRACE[1:])],
        "trace number": [line(trace_id=12)],
        "span upper": [line(span_id=SPAN.upper())],
        "span zero": [line(span_id="0" * 16)],
        "span short": [line(span_id=SPAN[:-1])],
        "span without trace": [line(drop=("trace_id",))],
        "span with null trace": [line(trace_id=None)],
        "two objects": [ok + b" " + ok],
        "two objects and blank": [ok + ok, b""],
        "blank and two objects": [b" ", ok + b"\t" + ok],
        "blank": [b""],
        "cr only": [b"\r"],
        "escaped dup key": [ok[:-1] + b', "\\u006cevel": "ERROR"}'],
        "escaped dup message": [ok[:1] + b'"mess\\u0061ge": "x", ' + ok[1:]],
        "plain dup key": [ok[:-1] + b', "level": "INFO"}'],
        "dup trace key": [ok[:-1] + b', "trace_id": null}'],
        "dup and key name in value": [ok[:-1] + b', "x": "\\"level\\"", "service": "a"}'],
        "feb 29 non-leap": [line(timestamp="2023-02-29T00:00:00Z")],
        "feb 29 1900": [line(timestamp="1900-02-29T00:00:00Z")],
        "apr 31": [line(timestamp="2024-04-31T00:00:00Z")],
        "bad leap second": [line(timestamp="2016-12-31T23:59:60+01:00")],
        "hour 24": [line(timestamp="2024-05-01T24:00:00Z")],
        "lower t": [line(timestamp="2024-05-01t12:00:00Z")],
        "10 digits": [line(timestamp="2024-05-01T12:00:00.1234567890Z")],
        "offset 24": [line(timestamp="2024-05-01T12:00:00+24:00")],
        "level": [line(level="WARNING")],
        "service upper": [line(service="Api")],
        "service long": [line(service="x" * 64)],
        "message number": [line(message=5)],
        "missing message": [line(drop=("message",))],
        "not object": [b"[1]"],
        "invalid json": [ok[:-1]],
        "bom mid file": [b"\xef\xbb\xbf" + ok],
        "bad utf8 context": [line(ctx="X").replace(b'"X"', b'"\xff"')],
        "lone surrogate context": [line(ctx="X").replace(b'"X"', b'"\\udc00"')],
        "nul": [ok + b"\x00"],
        "deep": [line(ctx="X").replace(b'"X"', b"[" * 300 + b"]" * 300)],
        "split line": [ok[:40], ok[40:]],
        "too long": [line(message="x" * 300_000)],
    }
    return d


DEFECTS = _defects()
POLICIES = [
    Policy(),
    Policy(required_fields=("env",)),
    Policy(allowed_services=("checkout-api",)),
]


# The edges of the batch path's windows, whatever their size is tuned to.
W = batch._WINDOW
AT = sorted({0, 1, 5, W - 1, W, W + 1, 2 * W, 255, 256, 300, 520})


@pytest.mark.parametrize("path", FAST_PATHS)
@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_in_a_long_valid_run(name: str, path: str) -> None:
    """Each defect at the window edges of a long valid run, through both fast paths."""
    ok = line()
    for pol in POLICIES:
        base = [line(env="prod")] * 520 if pol.required_fields else [ok] * 520
        for at in AT:
            lines = base[:at] + DEFECTS[name] + base[at:]
            with fast_path(path):
                res = validate_lines(lines, pol)
            for i in range(max(0, at - 1), min(len(lines), at + len(DEFECTS[name]) + 1)):
                rec, viol = check_line(lines[i], pol)
                assert (res.records[i] is None) == (rec is None), (name, at, i)
                assert res.violations.get(i, []) == viol, (name, at, i)
            assert res.invalid == sum(check_line(x, pol)[0] is None for x in DEFECTS[name])
