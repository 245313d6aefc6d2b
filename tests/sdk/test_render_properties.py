"""Whatever fields a caller passes, the rendered line is valid schema v1 (property test)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from obskit.schema import timestamp_ns, validate_line
from obskit.schema.rules import check_timestamp
from obskit.sdk.redact import MASK, Redactor
from obskit.sdk.render import Renderer, format_ns

SCHEMA_KEYS = ["timestamp", "level", "service", "trace_id", "span_id", "message", "logger"]
keys = st.one_of(st.sampled_from([*SCHEMA_KEYS, "password", "error.type", "x"]), st.text())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),  # includes lone surrogates
    st.binary(max_size=8),
    st.builds(object),
    st.just(decimal.Decimal("1.10")),
    st.just(uuid.UUID(int=7)),
    st.just(dt.datetime(2024, 1, 2, 3, 4, 5)),
    st.frozensets(st.integers(), max_size=3),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(keys, values, max_size=6),
    message=st.text(),
    level=st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR"]),
)
def test_any_fields_render_a_valid_line(fields: dict[str, Any], message: str, level: str) -> None:
    r = Renderer("prop-svc", Redactor(["password"]), 256 * 1024)
    line = r.render(1_700_000_000_123_456_789, level, message, "lg", fields, None, None)
    assert validate_line(line) == [], line
    rec = orjson.loads(line)
    assert rec["service"] == "prop-svc" and rec["level"] == level
    if "password" in fields:
        assert rec["password"] == MASK


@given(st.integers(min_value=0, max_value=253402300799 * 10**9))
def test_timestamps_are_rfc3339(ns: int) -> None:
    ts = format_ns(ns)
    assert check_timestamp(ts) is None and ts.endswith("Z")
    assert timestamp_ns(ts) == ns // 1000 * 1000  # exact to the microsecond
