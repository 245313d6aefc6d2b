"""Hypothesis strategies for schema v1 corpora: valid records, near misses, mangled lines."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from obskit.schema import LEVELS, batch

HEX = "0123456789abcdef"
_DIM = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

ABSENT = object()  # a field left out of the record


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


@st.composite
def valid_timestamps(draw: st.DrawFn) -> str:
    """Calendar-valid RFC 3339 timestamps in every shape the schema allows."""
    y = draw(st.one_of(st.integers(1970, 2040), st.integers(1, 9999)))
    mo = draw(st.integers(1, 12))
    dim = 29 if mo == 2 and _leap(y) else _DIM[mo - 1]
    d = draw(st.one_of(st.integers(1, dim), st.just(dim)))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.text("0123456789", max_size=9))
    tz = draw(
        st.one_of(
            st.just("Z"),
            st.builds(
                lambda sign, oh, om: f"{sign}{oh:02d}:{om:02d}",
                st.sampled_from("+-"),
                st.integers(0, 23),
                st.integers(0, 59),
            ),
        )
    )
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{'.' + frac if frac else ''}{tz}"


@st.composite
def near_timestamps(draw: st.DrawFn) -> str:
    """Timestamps with every part possibly out of range or mis-shaped."""
    y = draw(st.sampled_from([0, 1, 1900, 2000, 2016, 2023, 2024, 9999]))
    mo, d = draw(st.integers(0, 14)), draw(st.integers(0, 33))
    h, mi = draw(st.sampled_from([0, 9, 15, 23, 24, 29])), draw(st.sampled_from([0, 30, 59, 60]))
    s = draw(st.sampled_from([0, 30, 59, 60, 61]))
    frac = draw(st.sampled_from(["", ".", ".5", ".123456789", ".1234567890", ".000000000001"]))
    sep = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    tz = draw(
        st.sampled_from(
            [
                *("Z", "Z", "z", "", "+00:00", "-00:00", "+01:00", "-08:00", "+23:59"),
                *("+24:00", "+02:60", "+0200", "+02", "Z ", " Z"),
            ]
        )
    )
    width = draw(st.sampled_from([4, 4, 4, 3, 5]))
    return f"{y:0{width}d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{tz}"


def hex_ids(n: int) -> st.SearchStrategy[str]:
    """Valid W3C ids of ``n`` hex characters (never all zero)."""
    return st.text(HEX, min_size=n, max_size=n).filter(lambda s: s.strip("0") != "")


@st.composite
def near_ids(draw: st.DrawFn, n: int) -> str:
    """Ids that are wrong in one way each (upper case, all zero, length, non-hex, empty)."""
    kind = draw(st.sampled_from(["upper", "zero", "short", "long", "nonhex", "empty", "mixed"]))
    good = draw(hex_ids(n))
    if kind == "upper":
        return good.upper() if good.upper() != good else "A" + good[1:]
    if kind == "zero":
        return "0" * n
    if kind == "short":
        return good[: draw(st.integers(1, n - 1))]
    if kind == "long":
        return good + draw(st.text(HEX, min_size=1, max_size=3))
    if kind == "nonhex":
        at = draw(st.integers(0, n - 1))
        return good[:at] + draw(st.sampled_from("gGxz -")) + good[at + 1 :]
    if kind == "empty":
        return ""
    return good[:-1] + "F"


services = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True) | st.just("x" * 63)
near_services = st.one_of(
    st.from_regex(r"[a-zA-Z0-9._ /-]{0,8}", fullmatch=True),
    st.just("x" * 64),
    st.just(""),
    services.map(str.upper),
    services.map(lambda s: "-" + s),
)
near_levels = st.sampled_from(["WARNING", "info", "Info", "", "FATAL", "TRACE", "ERR", "INFO "])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=6,
)
#: Context keys, including schema key names (nested they are harmless) and look-alikes.
context_keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["env", "user", "level ", "Level", "trace", "span", "msg", "x"]),
).filter(lambda k: k not in ("timestamp", "level", "service", "trace_id", "span_id", "message"))
# Values that put schema-key needles, "} {" and escapes into the line.
tricky_text = st.sampled_from(
    ['"level": "x"', "} {", '"trace_id"', "\\u006cevel", '"}{"', "\u2028", "\x00", "é", "\x1b[0m"]
)
context_values = st.one_of(json_values, tricky_text, st.text(max_size=30))


def _field(draw: st.DrawFn, good: st.SearchStrategy[Any], near: st.SearchStrategy[Any]) -> Any:
    kind = draw(st.sampled_from(["good", "good", "near", "near", "near", "any", "absent"]))
    if kind == "good":
        return draw(good)
    if kind == "near":
        return draw(near)
    if kind == "any":
        return draw(json_values)
    return ABSENT


@st.composite
def records(draw: st.DrawFn, valid_only: bool = False) -> Any:
    """A record (usually a dict; sometimes another JSON value when not ``valid_only``)."""
    if not valid_only and draw(st.integers(0, 40)) == 0:
        return draw(json_values)
    trace = draw(st.sampled_from(["id", "id", "null", "absent"]))
    fields: dict[str, Any] = {
        "timestamp": draw(valid_timestamps()),
        "level": draw(st.sampled_from(LEVELS)),
        "service": draw(services),
        "message": draw(st.one_of(st.text(max_size=40), tricky_text)),
    }
    if trace == "id":
        fields["trace_id"] = draw(hex_ids(32))
        span = draw(st.sampled_from(["id", "null", "absent"]))
        if span != "absent":
            fields["span_id"] = draw(hex_ids(16)) if span == "id" else None
    elif trace == "null":
        fields["trace_id"] = None
    if not valid_only and draw(st.booleans()):
        # Replace one to three fields by near misses, arbitrary JSON or nothing.
        near = {
            "timestamp": near_timestamps(),
            "level": near_levels,
            "service": near_services,
            "trace_id": st.one_of(near_ids(32), st.none()),
            "span_id": st.one_of(near_ids(16), st.none()),
            "message": json_values,
        }
        for name in draw(st.lists(st.sampled_from(sorted(near)), min_size=1, max_size=3)):
            good = {
                "timestamp": valid_timestamps(),
                "level": st.sampled_from(LEVELS),
                "service": services,
                "trace_id": hex_ids(32),
                "span_id": hex_ids(16),
                "message": st.text(max_size=10),
            }[name]
            value = _field(draw, good, near[name])
            if value is ABSENT:
                fields.pop(name, None)
            else:
                fields[name] = value
    ctx = draw(st.dictionaries(context_keys, context_values, max_size=4))
    items = list(fields.items()) + list(ctx.items())
    items = draw(st.permutations(items))
    return dict(items)


def dumps(obj: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only, allow_nan=False).encode("utf-8")


@st.composite
def encoded_records(draw: st.DrawFn, valid_only: bool = False) -> bytes:
    obj = draw(records(valid_only))
    compact = draw(st.booleans())
    text = json.dumps(
        obj,
        ensure_ascii=draw(st.booleans()),
        allow_nan=False,
        separators=(",", ":") if compact else None,
    )
    return text.encode("utf-8")


def _insert(line: bytes, at: int, what: bytes) -> bytes:
    at = min(max(at, 0), len(line))
    return line[:at] + what + line[at:]


@st.composite
def mangled(draw: st.DrawFn, line: bytes) -> list[bytes]:
    """One line damaged in a way real logs get damaged; may become zero to three lines."""
    how = draw(
        st.sampled_from(
            [
                "dup_schema",
                "dup_escaped",
                "dup_other",
                "two_objects",
                "two_objects",
                "split",
                "blank",
                "crlf",
                "bom",
                "bad_utf8",
                "nul",
                "byte",
                "truncate",
                "surrogate",
                "pad",
                "nest",
                "spaces",
            ]
        )
    )
    pos = draw(st.integers(0, max(len(line), 1)))
    brace = line.find(b"{") + 1
    if how == "dup_schema" and brace:
        key = draw(st.sampled_from(["timestamp", "level", "service", "trace_id", "span_id"]))
        val = draw(st.sampled_from([b'"INFO"', b"null", b'"4bf92f3577b34da6a3ce929d0e0e4736"']))
        at_end = draw(st.booleans())
        frag = b'"' + key.encode() + b'":' + val
        if at_end and line.rstrip().endswith(b"}"):
            cut = line.rstrip().rfind(b"}")
            return [line[:cut] + b"," + frag + line[cut:]]
        return [_insert(line, brace, frag + b",")]
    if how == "dup_escaped" and brace:
        frag = draw(
            st.sampled_from(
                [
                    b'"\\u006cevel":"ERROR",',
                    b'"mess\\u0061ge":"x",',
                    b'"\\u0065nv":1,',
                    b'"\\u00e9":1,',
                ]
            )
        )
        return [_insert(line, brace, frag)]
    if how == "dup_other" and brace:
        return [_insert(line, brace, b'"k":1,"k":2,')]
    if how == "two_objects":
        other = draw(encoded_records(valid_only=True))
        joined = line + draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \r "])) + other
        # With a blank line in the same window the number of decoded records still matches.
        extra = draw(st.sampled_from([[b""], [b"  "], []]))
        return [joined, *extra] if draw(st.booleans()) else [*extra, joined]
    if how == "split":
        return [line[:pos], line[pos:]]
    if how == "blank":
        return [line, draw(st.sampled_from([b"", b" ", b"\t", b"\r", b"  \r"]))]
    if how == "crlf":
        return [line + b"\r"]
    if how == "bom":
        return [b"\xef\xbb\xbf" + line]
    if how == "bad_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe9"]))
        return [_insert(line, pos, bad)]
    if how == "nul":
        return [_insert(line, pos, b"\x00")]
    if how == "byte":
        b = draw(st.integers(0, 255).filter(lambda x: x != 0x0A))
        return [_insert(line, pos, bytes([b]))]
    if how == "truncate":
        return [line[:pos]]
    if how == "surrogate" and brace:
        esc = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d\\ude00", b"\\udc00\\ud800"]))
        return [_insert(line, brace, b'"s":"' + esc + b'",')]
    if how == "pad" and brace:
        return [_insert(line, brace, b'"pad":"' + b"p" * draw(st.integers(100, 700)) + b'",')]
    if how == "nest" and brace:
        depth = draw(st.sampled_from([3, 255, 256, 500, 2000]))
        return [_insert(line, brace, b'"deep":' + b"[" * depth + b"]" * depth + b",")]
    if how == "spaces":
        return [b" \t" + line + b" "]
    return [line]


@st.composite
def bad_records(draw: st.DrawFn) -> bytes:
    """A valid record with exactly one targeted defect (the value may rarely be valid)."""
    rec = draw(records(valid_only=True))
    kind = draw(
        st.sampled_from(
            [
                *("timestamp", "level", "service", "trace_id", "span_id", "message"),
                *("drop", "span_no_trace", "any_type"),
            ]
        )
    )
    if kind == "timestamp":
        rec["timestamp"] = draw(near_timestamps())
    elif kind == "level":
        rec["level"] = draw(near_levels)
    elif kind == "service":
        rec["service"] = draw(near_services)
    elif kind == "trace_id":
        rec["trace_id"] = draw(near_ids(32))
    elif kind == "span_id":
        rec["trace_id"] = draw(hex_ids(32))
        rec["span_id"] = draw(near_ids(16))
    elif kind == "message":
        rec["message"] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    elif kind == "drop":
        rec.pop(draw(st.sampled_from(["timestamp", "level", "service", "message"])))
    elif kind == "span_no_trace":
        rec["span_id"] = draw(hex_ids(16))
        if draw(st.booleans()):
            rec.pop("trace_id", None)
        else:
            rec["trace_id"] = None
    else:
        name = draw(st.sampled_from(["timestamp", "level", "service", "trace_id", "span_id"]))
        rec[name] = draw(json_values)
    return dumps(rec, ascii_only=draw(st.booleans()))


@st.composite
def defects(draw: st.DrawFn, valid: list[bytes]) -> list[bytes]:
    """One to three lines carrying a defect."""
    how = draw(st.sampled_from(["bad", "bad", "mangle", "mangle_bad", "random"]))
    if how == "bad":
        return [draw(bad_records())]
    if how == "mangle":
        return draw(mangled(draw(st.sampled_from(valid))))
    if how == "mangle_bad":
        return draw(mangled(draw(bad_records())))
    return [draw(encoded_records())]


@st.composite
def corpora(draw: st.DrawFn) -> list[bytes]:
    """A file's lines: a valid run whose length straddles the fast path's window sizes, with
    a few defective lines inserted anywhere (every example has at least one)."""
    valid = draw(st.lists(encoded_records(valid_only=True), min_size=1, max_size=6))
    w = batch._WINDOW
    n = draw(st.sampled_from([0, 3, 4, 5, 9, w - 1, w, w + 1, 3 * w + 7, 255, 256, 257, 520]))
    lines = [valid[i % len(valid)] for i in range(n)]
    for group in draw(st.lists(defects(valid), min_size=1, max_size=5)):
        at = draw(st.integers(0, len(lines)))
        lines[at:at] = group
    return lines
