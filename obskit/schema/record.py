"""The decoded schema fields of one valid line, as the sidecar and the trace lookup use them."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

Level = Literal["DEBUG", "INFO", "WARN", "ERROR"]


class Record(msgspec.Struct, gc=False):
    """The schema v1 fields of a line that passed validation; other keys are not decoded.

    ``trace_id`` and ``span_id`` are a string, ``None`` (``null`` in the line) or
    ``msgspec.UNSET`` (absent); both ``None`` and ``UNSET`` are falsy, so test with ``if
    rec.trace_id:``.
    """

    timestamp: str
    level: Level
    service: str
    message: str
    trace_id: str | UnsetType | None = UNSET
    span_id: str | UnsetType | None = UNSET


def timestamp_ns(ts: str) -> int:
    """Unix time in nanoseconds of a valid schema v1 timestamp (full 9-digit precision).

    A leap second (``:60``) counts as the first instant of the next second.
    """
    from obskit.schema.rules import TIMESTAMP_RE

    m = TIMESTAMP_RE.fullmatch(ts)
    if m is None:
        raise ValueError(f"not a schema v1 timestamp: {ts!r}")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    days = _days_from_civil(y, mo, d)
    secs = days * 86400 + h * 3600 + mi * 60 + s
    if m.group(9):
        off = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        secs -= off if m.group(9) == "+" else -off
    frac = m.group(7)
    ns = int(frac[1:].ljust(9, "0")) if frac else 0
    return secs * 1_000_000_000 + ns


def without_leap_second(ts: str) -> str:
    """``ts`` with a leap second (``23:59:60[.f]``) moved to the last nanosecond of its minute
    (``23:59:59.999999999``), the rest (offset) kept: what Elasticsearch stores as
    ``@timestamp``, since its date parser refuses second 60. Other timestamps unchanged."""
    if ts[17:19] != "60":
        return ts
    end = 19
    while end < len(ts) and (ts[end].isdigit() or ts[end] == "."):
        end += 1
    return ts[:17] + "59.999999999" + ts[end:]


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's days_from_civil: proleptic Gregorian, no datetime objects needed.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
