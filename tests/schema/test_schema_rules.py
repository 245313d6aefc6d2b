"""Hand-written cases: every rule id of schema v1 and each edge the issue names."""

from __future__ import annotations

import json

import msgspec
import pytest
from loglines import SPAN, TRACE, good, line, only, rules_of

from obskit.schema import (
    LEVELS,
    RULES,
    Policy,
    Record,
    check_line,
    nearest_level,
    timestamp_ns,
    validate_line,
    validate_lines,
)
from obskit.schema import rules as R
from obskit.schema.violation import MAX_SHOWN, shown


def test_a_complete_line_is_valid_and_decoded() -> None:
    rec, viol = check_line(line())
    assert viol == []
    assert isinstance(rec, Record)
    assert (rec.level, rec.service, rec.trace_id, rec.span_id) == (
        "INFO",
        "checkout-api",
        TRACE,
        SPAN,
    )


def test_minimal_line_without_ids_is_valid() -> None:
    rec, viol = check_line(line(drop=("trace_id", "span_id")))
    assert viol == [] and rec is not None
    assert rec.trace_id is msgspec.UNSET and not rec.trace_id and not rec.span_id


def test_every_rule_id_is_documented_in_rules() -> None:
    ids = {getattr(R, n) for n in dir(R) if isinstance(getattr(R, n), str) and n.isupper()}
    ids = {i for i in ids if i.startswith("OBS")}
    assert ids == set(RULES)


# --- OBS001 invalid JSON / UTF-8 --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"timestamp": }',
        b"not json",
        b'{"message": "x",}',
        b"{'level': 'INFO'}",
        b'{"message": "unterminated}',
        b"{} {}",
        line() + b" x",
        line() + b"{}",
        b'{"message": NaN}',
    ],
)
def test_obs001_invalid_json(raw: bytes) -> None:
    v = only(raw)
    assert v.rule == "OBS001" and v.field is None
    assert v.message.startswith("invalid JSON")


def test_obs001_invalid_utf8_in_schema_field_names_the_byte() -> None:
    raw = line().replace(b"order placed", b"caf\xe9 ok")
    at = raw.index(b"\xe9") + 1
    v = only(raw)
    assert v.rule == "OBS001"
    assert "invalid UTF-8" in v.message
    assert v.column == at
    assert f"at byte {at}" in v.message


def test_obs001_invalid_utf8_in_context_field() -> None:
    # msgspec skips unknown keys without decoding them: the UTF-8 check must still catch it.
    raw = line(ctx="PLACEHOLDER").replace(b"PLACEHOLDER", b"\xc3\x28 overlong \xc0\xaf")
    v = only(raw)
    assert v.rule == "OBS001" and "invalid UTF-8" in v.message


def test_obs001_utf8_encoded_surrogate_bytes() -> None:
    raw = line(ctx="X").replace(b'"X"', b'"\xed\xa0\x80"')
    assert rules_of(raw) == ["OBS001"]


@pytest.mark.parametrize("esc", [b"\\ud800", b"\\udfff", b"\\udc00\\ud800", b"\\uD83D x"])
@pytest.mark.parametrize("where", ["message", "ctx"])
def test_obs001_lone_surrogate_escape(esc: bytes, where: str) -> None:
    raw = line(**{where: "X"}).replace(b'"X"', b'"' + esc + b'"')
    v = only(raw)
    assert v.rule == "OBS001" and "surrogate" in v.message
    assert v.column is not None and raw[v.column - 1 : v.column + 1] == b"\\u"


def test_paired_surrogate_escape_is_valid() -> None:
    raw = line(message="X").replace(b'"X"', b'"\\ud83d\\ude00"')
    rec, viol = check_line(raw)
    assert viol == [] and rec is not None and rec.message == "\U0001f600"


@pytest.mark.parametrize(
    "raw",
    [
        line(message="X").replace(b'"X"', b'"a\x00b"'),
        line(ctx="X").replace(b'"X"', b'"a\x00b"'),
        line() + b"\x00",
        b"\x00" + line(),
    ],
)
def test_obs001_nul_bytes(raw: bytes) -> None:
    v = only(raw)
    assert v.rule == "OBS001" and "NUL" in v.message


def test_escaped_nul_is_valid_json() -> None:
    assert validate_line(line(message="a\x00b")) == []  # json.dumps writes \u0000


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_obs001_deeply_nested_context_is_an_error_not_a_crash(depth: int) -> None:
    raw = line(ctx="X").replace(b'"X"', b"[" * depth + b"]" * depth)
    v = only(raw)
    assert v.format() == "OBS001: JSON nested more than 256 levels deep"


def test_nesting_limit_is_exact_and_independent_of_the_call_stack() -> None:
    # The line's object is level 1: 255 arrays inside it make 256 levels, the maximum.
    at_limit = line(ctx="X").replace(b'"X"', b"[" * 255 + b"]" * 255)
    over = line(ctx="X").replace(b'"X"', b"[" * 256 + b"]" * 256)
    brackets_in_string = line(ctx="[" * 5000 + "{" * 5000)

    def verdicts() -> list[bool]:
        return [not validate_line(x) for x in (at_limit, over, brackets_in_string)]

    def nested_call(depth: int) -> list[bool]:
        return verdicts() if depth == 0 else nested_call(depth - 1)

    assert verdicts() == [True, False, True]
    # Called 600 frames deep (a deep caller, e.g. the batch path's recursion), same verdicts.
    assert nested_call(600) == [True, False, True]
    assert validate_lines([at_limit, over] * 10).invalid == 10


def test_obs001_deeply_nested_objects() -> None:
    raw = line(ctx="X").replace(b'"X"', b'{"a":' * 10_000 + b"1" + b"}" * 10_000)
    assert rules_of(raw) == ["OBS001"]


def test_huge_number_in_context_field_is_valid() -> None:
    raw = line(ctx="X").replace(b'"X"', b"1" + b"0" * 5000)
    assert validate_line(raw) == []
    raw = line(ctx="X").replace(b'"X"', b"-1." + b"9" * 5000 + b"e99999")
    assert validate_line(raw) == []


def test_obs001_bom_in_middle_of_file() -> None:
    v = only(b"\xef\xbb\xbf" + line())
    assert v.rule == "OBS001" and "byte-order mark" in v.message


# --- OBS002 not an object ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[1, 2]", "array"),
        (b'"text"', "str"),
        (b"42", "int"),
        (b"null", "null"),
        (b"true", "bool"),
    ],
)
def test_obs002_not_an_object(raw: bytes, kind: str) -> None:
    v = only(raw)
    assert v.rule == "OBS002" and v.field is None
    assert "not an object" in v.message and kind in v.message


# --- OBS003 level ------------------------------------------------------------------------------


@pytest.mark.parametrize("lvl", LEVELS)
def test_levels_allowed(lvl: str) -> None:
    assert validate_line(line(level=lvl)) == []


@pytest.mark.parametrize(
    ("bad", "near"),
    [
        ("WARNING", "WARN"),
        ("info", "INFO"),
        ("FATAL", "ERROR"),
        ("Error", "ERROR"),
        ("CRITICAL", "ERROR"),
        ("TRACE", "DEBUG"),
        ("INFO ", "INFO"),
    ],
)
def test_obs003_level_names_nearest(bad: str, near: str) -> None:
    v = only(line(level=bad))
    assert v.rule == "OBS003" and v.field == "level"
    assert v.message == f"{bad!r} is not one of DEBUG, INFO, WARN, ERROR (did you mean {near}?)"
    assert nearest_level(bad) == near


def test_obs003_exact_format_from_the_issue() -> None:
    v = only(line(level="WARNING"))
    assert v.format() == (
        "OBS003 level: 'WARNING' is not one of DEBUG, INFO, WARN, ERROR (did you mean WARN?)"
    )
    raw = line(level="WARNING")
    assert v.column == raw.index(b'"WARNING"') + 1


@pytest.mark.parametrize("bad", [3, None, ["INFO"], {"n": "INFO"}, "", "xyzzy"])
def test_obs003_level_wrong_type_or_unknown(bad: object) -> None:
    v = only(line(level=bad))
    assert v.rule == "OBS003"
    assert "did you mean" not in v.message


# --- OBS004 timestamp --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "2024-05-01T12:30:00Z",
        "2024-05-01T12:30:00.1Z",
        "2024-05-01T12:30:00.123456789Z",
        "2024-05-01T12:30:00+02:00",
        "2024-05-01T12:30:00-00:00",  # RFC 3339 4.3: UTC, local offset unknown
        "2024-05-01T12:30:00.5+23:59",
        "2016-12-31T23:59:60Z",  # leap second
        "2016-12-31T15:59:60-08:00",  # the same leap second in Pacific time (RFC 3339 5.8)
        "2017-01-01T00:59:60+01:00",
        "2024-02-29T00:00:00Z",  # leap year
        "2000-02-29T00:00:00Z",  # divisible by 400
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
    ],
)
def test_valid_timestamps(ts: str) -> None:
    assert validate_line(line(timestamp=ts)) == []


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("2024-05-01T12:30:00.1234567890Z", "at most 9 fractional digits"),
        ("2024-05-01t12:30:00Z", "upper-case"),
        ("2024-05-01T12:30:00z", "upper-case"),
        ("2024-05-01 12:30:00Z", "upper-case"),
        ("2024-05-01T12:30:00", "time-zone designator"),
        ("2024-05-01T12:30:00.5", "time-zone designator"),
        ("2023-02-29T00:00:00Z", "day 29 does not exist in 2023-02"),
        ("1900-02-29T00:00:00Z", "day 29 does not exist in 1900-02"),
        ("2024-02-30T00:00:00Z", "day 30 does not exist"),
        ("2024-04-31T00:00:00Z", "day 31 does not exist"),
        ("2024-00-10T00:00:00Z", "month 00 does not exist"),
        ("2024-13-10T00:00:00Z", "month 13 does not exist"),
        ("2024-05-00T00:00:00Z", "day 00 does not exist"),
        ("2024-05-01T24:00:00Z", "hour 24 does not exist"),
        ("2024-05-01T12:60:00Z", "minute 60 does not exist"),
        ("2024-05-01T12:30:61Z", "second 61 does not exist"),
        ("2024-05-01T12:30:60Z", "only valid as a leap second"),
        ("2016-12-31T23:59:60+01:00", "only valid as a leap second"),
        ("2024-05-01T12:30:00+24:00", "offset +24:00 does not exist"),
        ("2024-05-01T12:30:00+02:60", "offset +02:60 does not exist"),
        ("2024-05-01T12:30:00+0200", "not RFC 3339"),
        ("2024-05-01T12:30:00.Z", "not RFC 3339"),
        ("2024-5-1T12:30:00Z", "not RFC 3339"),
        ("2024-05-01T12:30Z", "not RFC 3339"),
        ("20240501T123000Z", "not RFC 3339"),
        ("2024-05-01T12:30:00Z\n", "not RFC 3339"),
        ("2024-05-01T12:30:00\u0660Z", "not RFC 3339"),  # Arabic-Indic digit: not ASCII
        ("", "not RFC 3339"),
        ("1714566600", "not RFC 3339"),
    ],
)
def test_obs004_invalid_timestamps(ts: str, why: str) -> None:
    v = only(line(timestamp=ts))
    assert v.rule == "OBS004" and v.field == "timestamp"
    assert why in v.message


@pytest.mark.parametrize("bad", [1714566600, 1.5, None, True, ["2024-05-01T12:30:00Z"]])
def test_obs004_timestamp_not_a_string(bad: object) -> None:
    v = only(line(timestamp=bad))
    assert v.rule == "OBS004" and v.message.startswith("must be a string")


def test_timestamp_ns_precision_offsets_and_leap_second() -> None:
    assert timestamp_ns("1970-01-01T00:00:00Z") == 0
    assert timestamp_ns("1970-01-01T00:00:00.000000001Z") == 1
    assert timestamp_ns("2024-05-01T12:30:00.123456789Z") == 1714566600_123456789
    assert timestamp_ns("2024-05-01T14:30:00.123456789+02:00") == 1714566600_123456789
    assert timestamp_ns("2024-05-01T12:30:00-00:00") == 1714566600_000000000
    assert timestamp_ns("2016-12-31T23:59:60Z") == timestamp_ns("2017-01-01T00:00:00Z")
    assert timestamp_ns("2016-12-31T15:59:60-08:00") == timestamp_ns("2016-12-31T23:59:60Z")
    with pytest.raises(ValueError):
        timestamp_ns("yesterday")


# --- OBS005 service ----------------------------------------------------------------------------


@pytest.mark.parametrize("svc", ["a", "0", "api", "checkout-api", "a.b_c-d", "x" * 63, "9lives"])
def test_valid_services(svc: str) -> None:
    assert validate_line(line(service=svc)) == []


@pytest.mark.parametrize(
    ("svc", "why"),
    [
        ("", "must not be empty"),
        ("x" * 64, "64 characters long (at most 63)"),
        ("Checkout", "must be lower-case (did you mean 'checkout'?)"),
        ("-api", "must start with a lower-case letter or digit"),
        (".api", "must start with"),
        ("my api", "contain only"),
        ("api/v1", "contain only"),
        ("café", "contain only"),
        ("api\n", "contain only"),
    ],
)
def test_obs005_invalid_services(svc: str, why: str) -> None:
    v = only(line(service=svc))
    assert v.rule == "OBS005" and v.field == "service" and why in v.message


@pytest.mark.parametrize("bad", [5, None, ["api"]])
def test_obs005_service_not_a_string(bad: object) -> None:
    assert only(line(service=bad)).rule == "OBS005"


# --- OBS006 trace_id / OBS007 span_id ----------------------------------------------------------


def test_null_ids_are_no_trace() -> None:
    assert validate_line(line(trace_id=None, span_id=None)) == []
    assert validate_line(line(trace_id=None, drop=("span_id",))) == []
    assert validate_line(line(span_id=None)) == []


@pytest.mark.parametrize(
    ("tid", "why"),
    [
        (TRACE.upper(), "must be lower-case hex"),
        ("0" * 32, "all-zero trace_id is invalid"),
        (TRACE[:-1], "is not 32 lower-case hex characters (31 characters)"),
        (TRACE + "0", "(33 characters)"),
        ("g" * 32, "is not 32 lower-case hex"),
        ("", "(0 characters)"),
        (12, "must be a string or null"),
        (False, "must be a string or null"),
    ],
)
def test_obs006_trace_id(tid: object, why: str) -> None:
    v = only(line(trace_id=tid, drop=("span_id",)))
    assert v.rule == "OBS006" and v.field == "trace_id" and why in v.message


@pytest.mark.parametrize(
    ("sid", "why"),
    [
        (SPAN.upper(), "must be lower-case hex"),
        ("0" * 16, "all-zero span_id is invalid"),
        (SPAN[:-1], "(15 characters)"),
        (TRACE, "(32 characters)"),
        (7, "must be a string or null"),
    ],
)
def test_obs007_span_id(sid: object, why: str) -> None:
    v = only(line(span_id=sid))
    assert v.rule == "OBS007" and v.field == "span_id" and why in v.message


@pytest.mark.parametrize("trace", ["absent", None])
def test_obs007_span_without_trace(trace: object) -> None:
    raw = line(drop=("trace_id",)) if trace == "absent" else line(trace_id=None)
    v = only(raw)
    assert v.format() == "OBS007 span_id: span_id without trace_id"


def test_invalid_trace_with_span_is_reported_once_as_trace() -> None:
    assert rules_of(line(trace_id="nope")) == ["OBS006"]


# --- OBS008 message, OBS009 missing ------------------------------------------------------------


@pytest.mark.parametrize(
    "msg", ["", " ", "multi\nline", "\x1b[31mred\x1b[0m", "日本語", "x" * 10000]
)
def test_messages_any_string(msg: str) -> None:
    assert validate_line(line(message=msg)) == []


@pytest.mark.parametrize("bad", [5, None, {"text": "x"}, ["x"], True])
def test_obs008_message_not_a_string(bad: object) -> None:
    v = only(line(message=bad))
    assert v.rule == "OBS008" and v.message.startswith("must be a string, got")


@pytest.mark.parametrize("name", ["timestamp", "level", "service", "message"])
def test_obs009_missing_required(name: str) -> None:
    v = only(line(drop=(name,)))
    assert v.format() == f"OBS009 {name}: required field is missing"


def test_empty_object_lists_every_missing_field() -> None:
    assert rules_of(b"{}") == ["OBS009"] * 4


def test_several_violations_in_field_order() -> None:
    raw = line(timestamp="x", level="x", service="X", trace_id="x", span_id="x", message=1)
    assert rules_of(raw) == ["OBS004", "OBS003", "OBS005", "OBS006", "OBS007", "OBS008"]


# --- OBS010 duplicate schema key, OBS101 other duplicates --------------------------------------


@pytest.mark.parametrize(
    "name", ["timestamp", "level", "service", "trace_id", "span_id", "message"]
)
def test_obs010_duplicate_schema_key(name: str) -> None:
    rec = good()
    raw = json.dumps(rec)[:-1].encode() + b", " + json.dumps({name: rec[name]})[1:].encode()
    v = only(raw)
    assert v.rule == "OBS010" and v.field == name
    assert "appears twice" in v.message and "readers disagree" in v.message
    assert v.column == raw.rindex(f'"{name}"'.encode()) + 1


def test_obs010_duplicate_key_spelled_with_unicode_escape() -> None:
    raw = line()[:-1] + b', "\\u006cevel": "ERROR"}'
    v = only(raw)
    assert v.rule == "OBS010" and v.field == "level"
    raw = line()[:-1] + b', "mess\\u0061ge": "forged"}'
    assert rules_of(raw) == ["OBS010"]


def test_escaped_spelling_of_a_single_schema_key_is_fine() -> None:
    raw = line(drop=("level",))[:-1] + b', "\\u006cevel": "ERROR"}'
    assert validate_line(raw) == []


def test_schema_key_name_inside_values_or_nested_objects_is_not_a_duplicate() -> None:
    raw = line(message='"level": "x"', ctx={"level": "DEBUG", "message": 1})
    assert validate_line(raw) == []
    raw = line()[:-1] + b', "ctx": {"level": 1, "level": 2}}'
    assert validate_line(raw) == []


def test_duplicate_other_key_only_warned_with_policy() -> None:
    raw = line()[:-1] + b', "user": "a", "user": "b"}'
    assert validate_line(raw) == []
    rec, viol = check_line(raw, Policy(warn_duplicate_keys=True))
    assert rec is not None  # a warning does not make the line invalid
    assert [(v.rule, v.field, v.severity) for v in viol] == [("OBS101", "user", "warning")]
    assert viol[0].column == raw.rindex(b'"user"') + 1


# --- OBS011 line length, OBS012 blank ----------------------------------------------------------


def test_obs011_line_too_long_not_parsed() -> None:
    pol = Policy(max_line_bytes=300)
    raw = b"{" + b"\xff" * 400  # not even UTF-8: not parsed
    v = only(raw, pol)
    assert v.format() == "OBS011: line is 401 bytes, more than the maximum 300"
    ok = line(message="PAD")
    ok = ok.replace(b"PAD", b"x" * (300 - len(ok) + 3))
    assert len(ok) == 300 and validate_line(ok, pol) == []
    assert rules_of(ok + b" ", pol) == ["OBS011"]


def test_obs011_default_limit_is_256_kib() -> None:
    assert R.DEFAULT_MAX_LINE_BYTES == 262144
    body = line(message="PAD")
    pad = b"x" * (262144 - len(body) + 3)
    assert validate_line(body.replace(b"PAD", pad)) == []
    assert rules_of(body.replace(b"PAD", pad + b"x")) == ["OBS011"]


@pytest.mark.parametrize("raw", [b"", b" ", b"\t", b"\r", b"  \t\r"])
def test_obs012_blank_lines(raw: bytes) -> None:
    assert only(raw).format() == "OBS012: blank line"
    assert check_line(raw, Policy(allow_blank=True)) == (None, [])


def test_crlf_line_is_valid() -> None:
    rec, viol = check_line(line() + b"\r")
    assert viol == [] and rec is not None and rec.message == "order placed"


def test_surrounding_whitespace_is_allowed() -> None:
    assert validate_line(b" \t" + line() + b" \t") == []


# --- policy rules on lines (OBS020, OBS021) ----------------------------------------------------


def test_obs020_policy_required_field() -> None:
    pol = Policy(required_fields=("env", "version"))
    assert validate_line(line(env="prod", version="1.2"), pol) == []
    viol = validate_line(line(env="prod"), pol)
    assert [v.format() for v in viol] == ["OBS020 version: required by policy but missing"]
    # Present only inside a nested object is not present.
    assert [v.rule for v in validate_line(line(ctx={"env": "x", "version": 1}), pol)] == [
        "OBS020",
        "OBS020",
    ]


def test_obs021_allowed_services_exact_and_regex() -> None:
    pol = Policy(allowed_services=("checkout-api", "re:payments-[a-z]+"))
    assert validate_line(line(), pol) == []
    assert validate_line(line(service="payments-eu"), pol) == []
    v = only(line(service="payments-eu1"), pol)
    assert v.format() == "OBS021 service: 'payments-eu1' is not in the allowed services"
    # An invalid name is reported once, as OBS005, not again as a policy violation.
    assert rules_of(line(service="Bad"), pol) == ["OBS005"]


# --- showing values safely ---------------------------------------------------------------------


def test_offending_values_are_truncated_and_escaped() -> None:
    v = only(line(level="\x1b[2J\x1b[31m" + "A" * 500))
    assert "\x1b" not in v.message and "\\x1b" in v.message
    assert "A" * (MAX_SHOWN + 1) not in v.message and "…" in v.message
    v = only(line(service="evil\u202eexe"))  # bidi override: reorders what a terminal shows
    assert "\u202e" not in v.message and "\\u202e" in v.message
    v = only(line(timestamp="a\r\nforged: line"))
    assert "\n" not in v.message and "\r" not in v.message


def test_shown_never_prints_the_whole_line() -> None:
    raw = line(level="SECRET" * 100, message="not-shown-message")
    v = only(raw)
    assert "not-shown-message" not in v.format()
    assert len(shown("x" * 10_000)) < MAX_SHOWN + 10
    assert shown(b"\xff\x00") == "'\\\\xff\\x00'"


def test_column_points_at_the_top_level_value_not_a_nested_namesake() -> None:
    raw = (
        b'{"error":{"message":"x"},"message":5,"timestamp":"2024-01-01T00:00:00Z",'
        b'"level":"INFO","service":"a"}'
    )
    (v,) = validate_line(raw)
    assert v.rule == "OBS008"
    assert v.column == raw.index(b'"message":5') + len(b'"message":') + 1
