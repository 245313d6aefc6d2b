"""Lines the batch fast path once accepted although the precise path rejects them."""

from __future__ import annotations

import pytest
from loglines import line

from obskit.schema import check_line, validate_lines


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
