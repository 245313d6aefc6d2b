"""Lines the batch fast path once accepted although the precise path rejects them."""

from __future__ import annotations

import pytest
from loglines import line

from obskit.schema import Policy, check_line, validate_lines


@pytest.mark.parametrize(
    "bad",
    [
        line(trace_id="", drop=("span_id",)),  # "" is falsy but present: was skipped
        line(span_id=""),
        line(trace_id="", span_id=""),
        line(drop=("trace_id",), span_id=""),
    ],
)
def test_empty_string_ids_are_rejected_in_a_batch(bad: bytes) -> None:
    lines = [line()] * 10 + [bad] + [line()] * 10
    res = validate_lines(lines)
    rec, viol = check_line(bad)
    assert rec is None and viol
    assert res.records[10] is None
    assert res.violations[10] == viol
    assert res.invalid == 1


@pytest.mark.parametrize(
    "required", [("trace_id",), ("span_id", "env"), ("level", "env"), ("message",)]
)
def test_policy_may_require_schema_fields(required: tuple[str, ...]) -> None:
    # A schema field in required_fields used to crash the batch path (duplicate struct field).
    pol = Policy(required_fields=required)
    lines = [line(env=1)] * 6
    lines += [
        line(drop=("trace_id", "span_id")),
        line(drop=("span_id",)),
        line(trace_id=None, span_id=None),
    ]
    lines += [line(env=1)] * 6
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


def test_every_byte_at_every_structural_place() -> None:
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
        res = validate_lines(lines)
        for i in range(6, 6 + len(places)):
            rec, viol = check_line(lines[i])
            assert (res.records[i] is None) == (rec is None), (b, i)
            assert res.violations.get(i, []) == viol, (b, i)
