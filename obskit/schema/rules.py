"""Schema v1: every rule, once. The fast batch path in :mod:`obskit.schema.batch` is an
optimisation that must agree with these functions (property-tested).

Rule ids are stable; ``docs/schema.md`` has an example of each.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from obskit.schema.violation import Violation, shown

SCHEMA_VERSION: Final = "1"

#: Loki's default per-line limit; the configured maximum line length in bytes (newline excluded).
DEFAULT_MAX_LINE_BYTES: Final = 256 * 1024

LEVELS: Final = ("DEBUG", "INFO", "WARN", "ERROR")
SCHEMA_FIELDS: Final = ("timestamp", "level", "service", "trace_id", "span_id", "message")
REQUIRED_FIELDS: Final = ("timestamp", "level", "service", "message")

# rule ids -----------------------------------------------------------------------------------
JSON_INVALID: Final = "OBS001"
NOT_OBJECT: Final = "OBS002"
LEVEL: Final = "OBS003"
TIMESTAMP: Final = "OBS004"
SERVICE: Final = "OBS005"
TRACE_ID: Final = "OBS006"
SPAN_ID: Final = "OBS007"
MESSAGE: Final = "OBS008"
MISSING: Final = "OBS009"
DUPLICATE_SCHEMA_KEY: Final = "OBS010"
LINE_TOO_LONG: Final = "OBS011"
BLANK_LINE: Final = "OBS012"
UTF16_FILE: Final = "OBS013"
POLICY_REQUIRED: Final = "OBS020"
POLICY_SERVICE: Final = "OBS021"
POLICY_TRACE_COVERAGE: Final = "OBS022"
DUPLICATE_KEY: Final = "OBS101"  # warning

RULES: Final[dict[str, str]] = {
    JSON_INVALID: "line is not valid UTF-8 JSON",
    NOT_OBJECT: "line is JSON but not an object",
    LEVEL: "level is not one of DEBUG, INFO, WARN, ERROR",
    TIMESTAMP: "timestamp is not an RFC 3339 date-time with time zone",
    SERVICE: "service is not a valid service name",
    TRACE_ID: "trace_id is not a W3C trace id",
    SPAN_ID: "span_id is not a W3C span id, or comes without trace_id",
    MESSAGE: "message is not a string",
    MISSING: "a required field is missing",
    DUPLICATE_SCHEMA_KEY: "a schema field appears twice in one object",
    LINE_TOO_LONG: "line is longer than the maximum",
    BLANK_LINE: "blank line",
    UTF16_FILE: "file is UTF-16 encoded",
    POLICY_REQUIRED: "a field required by the organisation policy is missing",
    POLICY_SERVICE: "service is not in the organisation's allowed list",
    POLICY_TRACE_COVERAGE: "too few lines carry trace_id",
    DUPLICATE_KEY: "a non-schema key appears twice in one object (warning)",
}

# nesting ------------------------------------------------------------------------------------
#: Deepest nesting of objects and arrays a line may have, the line's own object counting as 1.
#: Fixed here so the verdict never depends on how deep the caller's stack is (the JSON
#: decoder's own limit follows the interpreter's recursion limit).
MAX_DEPTH: Final = 256
_DEPTH_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``line`` nests objects/arrays more than ``limit`` levels (strings skipped)."""
    if line.count(b"[") + line.count(b"{") <= limit:
        return False  # cheap: depth cannot exceed the number of openers
    depth = 0
    for m in _DEPTH_TOKEN.finditer(line):
        tok = m.group()
        if tok in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif tok in (b"]", b"}"):
            depth -= 1
    return False


# timestamp ----------------------------------------------------------------------------------
# RFC 3339 `date-time`, with upper-case T and Z only (stricter than RFC 3339's note that allows
# lower case: Elasticsearch and most log tools expect upper case), fraction up to 9 digits.
TIMESTAMP_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# The same timestamps without leap seconds, calendar included, as one regular expression (the
# Gregorian leap-year rule is a regular language): what matches is valid at once, and the
# batch path matches a whole window of timestamps with it. Leap seconds take the long way.
_LEAP_YEAR: Final = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE: Final = (
    r"(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))|" + _LEAP_YEAR + r"-02-29)"
)
CALENDAR_TIMESTAMP: Final = (
    _DATE + r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_CALENDAR_RE: Final = re.compile(CALENDAR_TIMESTAMP, re.ASCII)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def check_timestamp(value: object) -> str | None:
    """Return why ``value`` is not a schema v1 timestamp, or ``None`` when it is."""
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)} {shown(value)}"
    if _CALENDAR_RE.fullmatch(value):
        return None
    m = TIMESTAMP_RE.fullmatch(value)
    if m is None:
        hint = ""
        if TIMESTAMP_RE.fullmatch(value.upper().replace(" ", "T", 1)):
            hint = " (use upper-case 'T' between date and time and 'Z' for UTC)"
        elif re.fullmatch(r"[\d\-T:.]+", value):
            hint = " (a time-zone designator, 'Z' or ±hh:mm, is required)"
        elif re.fullmatch(r".*\.\d{10,}.*", value):
            hint = " (at most 9 fractional digits)"
        return f"{shown(value)} is not RFC 3339 (YYYY-MM-DDThh:mm:ss[.fffffffff]Z|±hh:mm){hint}"
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12:
        return f"{shown(value)}: month {month:02d} does not exist"
    dim = 29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= dim:
        return f"{shown(value)}: day {day:02d} does not exist in {year:04d}-{month:02d}"
    if hour > 23:
        return f"{shown(value)}: hour {hour:02d} does not exist (00-23)"
    if minute > 59:
        return f"{shown(value)}: minute {minute:02d} does not exist (00-59)"
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return f"{shown(value)}: offset {m.group(8)} does not exist"
    else:
        oh = om = 0
    if second == 60:
        # RFC 3339 5.7: a leap second is the last second of a UTC day.
        sign = -1 if m.group(9) == "-" else 1
        utc_minutes = (hour * 60 + minute - sign * (oh * 60 + om)) % (24 * 60)
        if utc_minutes != 23 * 60 + 59:
            return f"{shown(value)}: second 60 is only valid as a leap second (23:59:60 UTC)"
    elif second > 59:
        return f"{shown(value)}: second {second:02d} does not exist (00-59, 60 for leap)"
    return None


# level --------------------------------------------------------------------------------------
#: Level spellings that mean one allowed level without doubt (upper-cased); the sidecar's
#: repair stage rewrites exactly these.
LEVEL_ALIASES: Final = {
    "WARNING": "WARN",
    "CRITICAL": "ERROR",
    "FATAL": "ERROR",
    "PANIC": "ERROR",
    "ERR": "ERROR",
    "SEVERE": "ERROR",
    "TRACE": "DEBUG",
    "FINE": "DEBUG",
    "DBG": "DEBUG",
    "INFORMATION": "INFO",
    "NOTICE": "INFO",
}


def nearest_level(value: str) -> str | None:
    """The allowed level a wrong ``value`` most likely meant (``WARNING`` -> ``WARN``)."""
    up = value.strip().upper()
    if up in LEVELS:
        return up
    if up in LEVEL_ALIASES:
        return LEVEL_ALIASES[up]
    close = difflib.get_close_matches(up, LEVELS, n=1, cutoff=0.5)
    return close[0] if close else None


def check_level(value: object) -> str | None:
    """Return why ``value`` is not a schema v1 level, or ``None``."""
    if isinstance(value, str) and value in LEVELS:
        return None
    msg = f"{shown(value)} is not one of DEBUG, INFO, WARN, ERROR"
    if isinstance(value, str):
        near = nearest_level(value)
        if near:
            msg += f" (did you mean {near}?)"
    return msg


# service ------------------------------------------------------------------------------------
SERVICE_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}", re.ASCII)


def check_service(value: object) -> str | None:
    """Return why ``value`` is not a schema v1 service name, or ``None``."""
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)} {shown(value)}"
    if SERVICE_RE.fullmatch(value):
        return None
    if not value:
        return "must not be empty"
    if len(value) > 63:
        return f"{shown(value)} is {len(value)} characters long (at most 63)"
    if SERVICE_RE.fullmatch(value.lower()):
        return f"{shown(value)} must be lower-case (did you mean {value.lower()!r}?)"
    return (
        f"{shown(value)} must start with a lower-case letter or digit and contain only "
        "a-z, 0-9, '-', '_', '.'"
    )


# trace and span ids -------------------------------------------------------------------------
_HEX32: Final = re.compile(r"[0-9a-f]{32}", re.ASCII)
_HEX16: Final = re.compile(r"[0-9a-f]{16}", re.ASCII)


def _check_hex_id(value: object, pattern: re.Pattern[str], size: int, what: str) -> str | None:
    if not isinstance(value, str):
        return f"must be a string or null, got {_json_type(value)} {shown(value)}"
    if pattern.fullmatch(value):
        if value.count("0") == size:
            return f"all-zero {what} is invalid (W3C Trace Context)"
        return None
    if pattern.fullmatch(value.lower()):
        return f"{shown(value)} must be lower-case hex"
    return f"{shown(value)} is not {size} lower-case hex characters ({len(value)} characters)"


def check_trace_id(value: object) -> str | None:
    """Return why a present, non-null ``trace_id`` is invalid, or ``None``."""
    return _check_hex_id(value, _HEX32, 32, "trace_id")


def check_span_id(value: object) -> str | None:
    """Return why a present, non-null ``span_id`` is invalid, or ``None``."""
    return _check_hex_id(value, _HEX16, 16, "span_id")


def check_message(value: object) -> str | None:
    """Return why ``value`` is not a schema v1 message, or ``None``."""
    if isinstance(value, str):
        return None
    return f"must be a string, got {_json_type(value)} {shown(value)}"


FIELD_CHECKS: Final = {
    "timestamp": (TIMESTAMP, check_timestamp),
    "level": (LEVEL, check_level),
    "service": (SERVICE, check_service),
    "trace_id": (TRACE_ID, check_trace_id),
    "span_id": (SPAN_ID, check_span_id),
    "message": (MESSAGE, check_message),
}


def check_fields(fields: dict[str, object]) -> list[Violation]:
    """Apply the per-field rules to the decoded schema fields of one object.

    ``fields`` holds only the schema keys that are present in the line.
    """
    out: list[Violation] = []
    for name in SCHEMA_FIELDS:
        if name not in fields:
            if name in REQUIRED_FIELDS:
                out.append(Violation(MISSING, name, "required field is missing"))
            continue
        value = fields[name]
        if value is None and name in ("trace_id", "span_id"):
            continue
        rule, check = FIELD_CHECKS[name]
        why = check(value)
        if why is not None:
            out.append(Violation(rule, name, why))
    if fields.get("span_id") is not None and fields.get("trace_id") is None:
        out.append(Violation(SPAN_ID, "span_id", "span_id without trace_id"))
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
