"""The sidecar's fast dialect path (``_convert_fast``) against the reference converter
(``_convert``): the same bytes out and the same "changed" verdict for every line it takes, on
the golden files and on generated lines mixing every dialect's keys with odd values."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obskit.schema.dialects import (
    DIALECTS,
    ORIGINAL_KEY,
    SPAN_KEYS,
    TRACE_KEYS,
    TRACEPARENT_KEYS,
    Dialect,
    _convert,
    _convert_fast,
    _from_epoch,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "dialects"
_dec = msgspec.json.Decoder().decode
_enc = msgspec.json.Encoder().encode


def _both(line: bytes, d: Dialect, service: str | None) -> tuple[Any, tuple[bytes, bool]]:
    fast = _convert_fast(_dec(line), d, service)
    ref_obj, ref_changed = _convert(_dec(line), d, service, None)
    got = None if fast is None else (_enc(fast[0]), fast[1])
    return got, (_enc(ref_obj), ref_changed)


def test_every_dialect_fits_the_fast_path() -> None:
    assert all(d.fast for d in DIALECTS)
    for d in DIALECTS:
        keys = [k for _, ks, _ in d.fields for k in ks]
        assert len(keys) == len(set(keys)), d.name  # no key serves two fields
    # _take_ids reads a dotted id name as an object and one key in it.
    assert all(k.count(".") <= 1 for k in (*TRACE_KEYS, *SPAN_KEYS))


@pytest.mark.parametrize("d", DIALECTS, ids=lambda d: d.name)
def test_golden_lines_take_the_fast_path_with_the_reference_output(d: Dialect) -> None:
    lines = [ln for p in sorted(DATA.glob(f"{d.name}*.log")) for ln in p.read_bytes().splitlines()]
    assert lines
    for line in lines:
        for service in (None, "orders"):
            got, ref = _both(line, d, service)
            assert got == ref, line


_HEX32 = "4bf92f3577b34da6a3ce929d0e0e4736"
_HEX16 = "00f067aa0ba902b7"
_SPECIAL = [
    "2024-05-01T12:30:02.123Z",
    "2024-05-01T12:30:02+0100",
    "2024-05-01 12:30:02,123",
    "2024-05-01t12:30:02z",
    "yesterday",
    "",
    "INFO",
    "info",
    "Information",
    "warning",
    "WARN+2",
    "dpanic",
    "Fatal",
    "orders",
    "Orders Svc",
    _HEX32,
    _HEX32.upper(),
    _HEX16,
    _HEX16.upper(),
    "00000000000000000000000000000000",
    f"00-{_HEX32}-{_HEX16}-01",
    "boom\n\tat x",
    1714566602,
    1714566602.123456,
    1714566602123,
    1.7e18,
    0,
    -5,
    True,
    None,
]
# Mostly values that mean something to some dialect; now and then anything.
_VALUES = st.one_of(
    st.sampled_from(_SPECIAL),
    st.sampled_from(_SPECIAL),
    st.sampled_from(_SPECIAL),
    st.text(max_size=6),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_KEYS = sorted(
    {
        "timestamp",
        "level",
        "service",
        "message",
        ORIGINAL_KEY,
        "error",
        "other",
        *TRACE_KEYS,
        *SPAN_KEYS,
        *TRACEPARENT_KEYS,
        *(k for d in DIALECTS for _, ks, _ in d.fields for k in ks),
        *(k for d in DIALECTS for pair in d.renames for k in pair),
    }
)


def _nested(key: str) -> st.SearchStrategy[Any]:
    # Dotted names also as nested objects ({"log": {"level": ...}}), sometimes with more in them.
    head, _, tail = key.partition(".")
    more = {k: _VALUES for k in ("extra", "name", "id") if k != tail}
    return st.fixed_dictionaries({tail: _VALUES}, optional=more).map(lambda v: {head: v})


# Lines a dialect converts as a whole where a key is also in another form: where the
# reference keeps a value aside and where it lets it through.
_CASES = [
    ("zap", {"ts": 1714566602.5, "level": "info", "msg": "m", "trace_id": 42, "traceId": _HEX32}),
    ("zap", {"ts": 1714566602.5, "level": "INFO", "msg": "m", "trace_id": 42, "traceId": _HEX32}),
    (
        "logrus",
        {
            "time": "2024-05-01T12:30:02Z",
            "level": "warning",
            "msg": "m",
            "span_id": 7,
            "trace_id": _HEX32,
            "spanId": _HEX16,
        },
    ),
    (
        "ecs",
        {
            "@timestamp": "2024-05-01T12:30:02Z",
            "log.level": "info",
            "message": "m",
            "service": {"name": "orders", "version": "1"},
            "trace_id": 1,
            "trace.id": _HEX32,
        },
    ),
    (
        "ecs",
        {
            "@timestamp": "2024-05-01T12:30:02Z",
            "log.level": "info",
            "message": "m",
            "service": {"name": "orders"},
            "trace": {"id": _HEX32},
        },
    ),
    ("ecs", {"@timestamp": "2024-05-01T12:30:02Z", "log": {"level": "info"}, "message": "m"}),
    (
        "python-json",
        {
            "asctime": "2024-05-01 12:30:02,123",
            "levelname": "CRITICAL",
            "message": "m",
            ORIGINAL_KEY: {"x": 1},
            "name": "app",
        },
    ),
    ("serilog", {"@t": "2024-05-01T12:30:02Z", "@mt": "m", "@tr": _HEX32.upper(), "@sp": _HEX16}),
    (
        "go-slog",
        {
            "time": "2024-05-01T12:30:02Z",
            "level": "INFO+2",
            "msg": "m",
            "service": "a",
            "traceparent": f"00-{_HEX32}-{_HEX16}-01",
        },
    ),
]


@pytest.mark.parametrize(("name", "obj"), _CASES)
def test_fast_path_on_lines_with_ids_and_values_kept_aside(name: str, obj: dict[str, Any]) -> None:
    d = next(d for d in DIALECTS if d.name == name)
    line = json.dumps(obj).encode()
    got, ref = _both(line, d, "orders")
    if "log" in obj:
        assert got is None  # a nested level: the reference way
    else:
        assert got == ref


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(_KEYS), max_size=9, unique=True)):
        if "." in key and draw(st.booleans()):
            obj.update(draw(_nested(key)))
        else:
            obj[key] = draw(_VALUES | st.dictionaries(st.sampled_from(["name", "id"]), _VALUES))
    return json.dumps(obj).encode()


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(DIALECTS), _lines(), st.sampled_from([None, "orders"]))
def test_fast_path_output_is_the_reference_output(
    d: Dialect, line: bytes, service: str | None
) -> None:
    got, ref = _both(line, d, service)
    if got is not None:  # None: the line goes the reference way
        assert got == ref


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e9, max_value=1e11, exclude_max=True))
def test_epoch_seconds_as_floats_keep_their_own_digits(value: float) -> None:
    # zap's seconds take a short way in _from_epoch: the same text as the digits say.
    whole, _, frac = repr(value).partition(".")
    stamp = datetime.fromtimestamp(int(whole), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = frac.rstrip("0")
    assert _from_epoch(value) == ((f"{stamp}.{frac}Z" if frac else f"{stamp}Z"), False)
