"""The shipped JSON Schema (obskit/schema/log-v1.schema.json) and the validator agree.

Compared per rule id: a JSON Schema error is mapped to the rule of the field it is about.
Excluded, explicitly, are the rules JSON Schema cannot express (docs/schema.md, "What the JSON
Schema cannot express"): leap-second placement (the date-time format rejects every :60),
year 0000 (rfc3339-validator rejects it, RFC 3339 allows it), duplicate keys, line length and
encoding-level problems (invalid UTF-8, lone surrogates, BOM), which never reach a JSON Schema
validator as a parsed object.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import jsonschema
import pytest
from corpus import records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import ValidationError
from loglines import SPAN, TRACE, good

from obskit.schema import LEVELS, REQUIRED_FIELDS, SCHEMA_VERSION, check_line, json_schema
from obskit.schema import rules as R

SCALE = int(os.environ.get("OBSKIT_PROPERTY_SCALE", "1"))
FIELD_RULE = {
    "timestamp": R.TIMESTAMP,
    "level": R.LEVEL,
    "service": R.SERVICE,
    "trace_id": R.TRACE_ID,
    "span_id": R.SPAN_ID,
    "message": R.MESSAGE,
}


def _ecma_pattern(
    validator: Any, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # JSON Schema patterns are ECMA-262: "$" is the end of the string. Python's re lets "$"
    # also match before a final "\n", so jsonschema would accept "api\n" as a service name.
    if validator.is_type(instance, "string"):
        py = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(py, instance):  # type: ignore[arg-type]
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Ecma = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
FORMATS = jsonschema.FormatChecker(formats=["date-time"])
VALIDATOR = _Ecma(json_schema(), format_checker=FORMATS)


def schema_rules(obj: object) -> set[str]:
    """The rule ids the JSON Schema reports for ``obj``."""
    out = set()
    for err in VALIDATOR.iter_errors(obj):
        where = list(err.schema_path)
        if where == ["type"]:
            out.add(R.NOT_OBJECT)
        elif where[0] == "then":
            out.add(R.SPAN_ID)  # span_id without trace_id
        elif where == ["required"]:
            out.add(R.MISSING)
        else:
            out.add(FIELD_RULE[err.absolute_path[0]])  # type: ignore[index]
    return out


def our_rules(obj: object) -> set[str]:
    raw = json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return {v.rule for v in check_line(raw)[1]}


def inexpressible(obj: object) -> bool:
    """A timestamp whose verdict JSON Schema cannot reproduce (see the module docstring)."""
    if not isinstance(obj, dict):
        return False
    ts = obj.get("timestamp")
    if not isinstance(ts, str):
        return False
    m = R.TIMESTAMP_RE.fullmatch(ts)
    return m is not None and (m.group(6) == "60" or m.group(1) == "0000")


def assert_agree(obj: object) -> None:
    ours, theirs = our_rules(obj), schema_rules(obj)
    if inexpressible(obj):
        ours.discard(R.TIMESTAMP)
        theirs.discard(R.TIMESTAMP)
    assert ours == theirs, obj


# --- the document ------------------------------------------------------------------------------


def test_document_is_a_valid_draft_2020_12_schema() -> None:
    doc = json_schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == "https://obskit.dev/schema/log-v1.schema.json"
    assert doc["version"] == SCHEMA_VERSION == "1"
    assert doc["required"] == list(REQUIRED_FIELDS)
    assert doc["properties"]["level"]["enum"] == list(LEVELS)
    assert doc["properties"]["service"]["maxLength"] == 63
    assert doc["additionalProperties"] is True


def test_document_ships_as_package_data_and_loader_returns_a_copy() -> None:
    text = resources.files("obskit.schema").joinpath("log-v1.schema.json").read_text("utf-8")
    assert json.loads(text) == json_schema()
    first = json_schema()
    first["required"].append("x")
    assert json_schema()["required"] == list(REQUIRED_FIELDS)


def test_format_checker_really_checks_date_time() -> None:
    # Without rfc3339-validator installed jsonschema silently skips date-time.
    assert "date-time" in FORMATS.checkers
    assert not FORMATS.conforms("2023-02-29T00:00:00Z", "date-time")


def test_python_re_dollar_quirk_that_the_ecma_adapter_removes() -> None:
    plain = jsonschema.Draft202012Validator(json_schema())
    assert plain.is_valid(good(service="api\n"))  # Python re: "$" matches before "\n"
    assert not VALIDATOR.is_valid(good(service="api\n"))
    assert our_rules(good(service="api\n")) == {R.SERVICE}


# --- hand-written agreement --------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        good(),
        good(trace_id=None, span_id=None),
        good(drop=("trace_id", "span_id")),
        good(drop=("trace_id",)),
        good(trace_id=None),
        good(trace_id=None, drop=("span_id",)),
        good(span_id=None, drop=("trace_id",)),
        good(trace_id=5),
        good(trace_id="x", span_id=5, drop=()),
        good(span_id=5, drop=("trace_id",)),
        good(trace_id=TRACE.upper()),
        good(trace_id="0" * 32),
        good(span_id="0" * 16),
        good(span_id=SPAN.upper()),
        good(trace_id=""),
        good(level="WARNING"),
        good(level=None),
        good(service=""),
        good(service="x" * 64),
        good(service="x" * 63),
        good(service="Api"),
        good(service="-api"),
        good(message=""),
        good(message=None),
        good(message=["x"]),
        good(timestamp="2024-05-01T12:30:00-00:00"),
        good(timestamp="2024-05-01T12:30:00.123456789+05:30"),
        good(timestamp="2024-05-01T12:30:00.1234567890Z"),
        good(timestamp="2024-05-01t12:30:00Z"),
        good(timestamp="2024-05-01T12:30:00z"),
        good(timestamp="2024-05-01T24:00:00Z"),
        good(timestamp="2024-02-29T00:00:00Z"),
        good(timestamp="2023-02-29T00:00:00Z"),
        good(timestamp="2100-02-29T00:00:00Z"),
        good(timestamp="2024-04-31T00:00:00Z"),
        good(timestamp="2024-05-01T12:30:00"),
        good(timestamp="2024-05-01T12:30:00Z\n"),
        good(timestamp="2024-05-01T12:30:00+24:00"),
        good(timestamp=1714566600),
        good(drop=("timestamp", "level")),
        good(ctx={"level": "nope", "trace_id": 1}),
        good(huge=10**4000),
        {},
        [],
        "x",
        None,
        3,
    ],
)
def test_hand_written_cases_agree(obj: object) -> None:
    assert_agree(obj)


def test_leap_seconds_are_what_json_schema_cannot_express() -> None:
    # Documented: the date-time format rejects every second 60; obskit accepts the real ones.
    for ts in ("2016-12-31T23:59:60Z", "2016-12-31T15:59:60-08:00"):
        assert our_rules(good(timestamp=ts)) == set()
        assert schema_rules(good(timestamp=ts)) == {R.TIMESTAMP}
    assert our_rules(good(timestamp="2024-05-01T12:30:60Z")) == {R.TIMESTAMP}


def test_duplicate_keys_are_what_json_schema_cannot_express() -> None:
    raw = b'{"timestamp":"2024-05-01T12:30:00Z","level":"INFO","level":"ERROR","service":"a",'
    raw += b'"message":""}'
    assert VALIDATOR.is_valid(json.loads(raw))  # a JSON parser keeps one value silently
    assert [v.rule for v in check_line(raw)[1]] == [R.DUPLICATE_SCHEMA_KEY]


# --- property: a large generated corpus --------------------------------------------------------


@settings(
    max_examples=200 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=st.lists(records(), min_size=1, max_size=12))
def test_generated_records_agree_with_json_schema(batch: list[object]) -> None:
    for obj in batch:
        assert_agree(obj)
