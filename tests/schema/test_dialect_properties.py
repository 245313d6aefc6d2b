"""Property: any schema v1 record, written the way a dialect's library writes it, converts back
to an equivalent record (same fields, same other keys; the timestamp to the format's
precision), with nothing left in ``dialect_original`` (such a rendering loses nothing)."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from obskit.schema import check_line, timestamp_ns
from obskit.schema.dialects import (
    BY_NAME,
    DIALECTS,
    ORIGINAL_KEY,
    Dialect,
    convert_line,
)

_HEX = "0123456789abcdef"
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    secs = draw(st.integers(946684800, 4102444799))  # 2000-01-01 .. 2099-12-31
    digits = draw(st.integers(0, 9))
    frac = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
    zone = draw(st.sampled_from(["Z", "+01:00", "-05:30", "+00:00"]))
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{frac}" if frac else "") + zone
    )


def _id(size: int) -> st.SearchStrategy[str]:
    return st.text(_HEX, min_size=size, max_size=size).filter(lambda s: s.strip("0") != "")


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timestamp": draw(timestamps()),
        "level": draw(st.sampled_from(["DEBUG", "INFO", "WARN", "ERROR"])),
        "service": draw(st.text(_LOWER, min_size=1, max_size=20)),
        "message": draw(st.text(max_size=40)),
    }
    if draw(st.booleans()):
        rec["trace_id"] = draw(_id(32))
        if draw(st.booleans()):
            rec["span_id"] = draw(_id(16))
    # Other keys, named so they cannot be taken for any dialect's own keys.
    extra = draw(
        st.dictionaries(st.text(_LOWER, min_size=1, max_size=8), st.integers(), max_size=3)
    )
    rec.update({f"x_{k}": v for k, v in extra.items()})
    return rec


def _level_name(d: Dialect, level: str) -> str:
    return next(k for k, v in d.levels.items() if v == level)


def render(d: Dialect, rec: dict[str, Any], id_form: int) -> tuple[dict[str, Any], str]:
    """``rec`` as ``d``'s library writes it; also the timestamp the conversion can give back."""
    out: dict[str, Any] = {}
    ts = rec["timestamp"]
    expect_ts = ts
    if d.name == "zap":  # epoch seconds as a float
        out["ts"] = timestamp_ns(ts) / 1e9
        expect_ts = ""  # compared to float precision below
    elif d.name == "python-json":  # asctime: local wall time, milliseconds, no zone
        ns = timestamp_ns(ts)
        wall = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9))
        out["asctime"] = f"{wall},{ns // 10**6 % 1000:03d}"
        expect_ts = f"{wall.replace(' ', 'T')}.{ns // 10**6 % 1000:03d}Z"
    else:
        out[d.time[0]] = ts
    level = _level_name(d, rec["level"])
    if not (d.level_absent == rec["level"] and id_form % 2):
        out[d.level[0]] = level  # CLEF leaves Information out; sometimes so do we
    out[d.message[0]] = rec["message"]
    if d.name == "ecs":
        out["service"] = {"name": rec["service"]}
    else:
        out["service"] = rec["service"]
    trace, span = rec.get("trace_id"), rec.get("span_id")
    if trace:
        if id_form == 0 or (span is None and id_form == 3):
            out["trace_id"] = trace
            if span:
                out["span_id"] = span
        elif id_form == 1:
            out["traceId"] = trace.upper()
            if span:
                out["spanId"] = span
        elif id_form == 2:
            out["trace"] = {"id": trace}
            if span:
                out["span"] = {"id": span}
        else:
            out["traceparent"] = f"00-{trace}-{span}-01"
    out.update({k: v for k, v in rec.items() if k.startswith("x_")})
    return out, expect_ts


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIALECTS), records(), st.integers(0, 3), st.booleans())
def test_any_record_rendered_in_a_dialect_converts_back(
    d: Dialect, rec: dict[str, Any], id_form: int, auto: bool
) -> None:
    written, expect_ts = render(d, rec, id_form)
    # The standard library writes integers of any size (as Go's encoding/json does big.Int).
    line = json.dumps(written, ensure_ascii=False, separators=(",", ":")).encode()
    got = convert_line(line, None if auto else d)
    assert got is not None
    out, _conv, used = got
    assert used is d
    back = json.loads(out)
    assert check_line(out)[0] is not None, out
    if d.name == "zap":
        # A float of epoch seconds holds about 0.24 us at today's dates.
        assert abs(timestamp_ns(back.pop("timestamp")) - timestamp_ns(rec["timestamp"])) < 1000
    else:
        assert back.pop("timestamp") == expect_ts
    expected = {k: v for k, v in rec.items() if k != "timestamp"}
    if d.name == "python-json":
        assert back.pop(ORIGINAL_KEY) == {"asctime": written["asctime"]}  # the zone is guessed
    assert back == expected
    assert list(back)[:3] == ["level", "service", "message"]


def test_the_renderers_cover_every_dialect() -> None:
    assert {d.name for d in DIALECTS} == set(BY_NAME)
