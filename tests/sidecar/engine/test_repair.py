"""Repairs: only the documented safe fixes, byte-for-byte elsewhere, never a duplicate key."""

from __future__ import annotations

import pytest

from obskit.schema import Policy, check_line
from sidecar.transform.repair import repair_line

P = Policy()
TS = '"timestamp":"2024-10-01T12:00:00Z"'


def _repair(line: bytes, service: str | None = None) -> bytes | None:
    rec, vs = check_line(line, P)
    assert rec is None
    out = repair_line(line, vs, service, P)
    return None if out is None else out[0]


@pytest.mark.parametrize(
    ("level", "fixed"),
    [
        ("WARNING", "WARN"),
        ("warning", "WARN"),
        ("info", "INFO"),
        ("FATAL", "ERROR"),
        ("TRACE", "DEBUG"),
    ],
)
def test_level_aliases(level: str, fixed: str) -> None:
    line = f'{{{TS}, "level" : "{level}","service":"a","message":"m","extra":{{"level":"x"}}}}'
    out = _repair(line.encode())
    assert out == line.replace(f'"{level}"', f'"{fixed}"', 1).encode()


def test_upper_case_ids_lowered_rest_untouched() -> None:
    line = (
        f'{{{TS},"level":"INFO","service":"a","message":"m",'
        '"trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736","span_id":"00F067AA0BA902B7","k":[1,2]}'
    ).encode()
    assert _repair(line) == line.replace(
        b"4BF92F3577B34DA6A3CE929D0E0E4736", b"4bf92f3577b34da6a3ce929d0e0e4736"
    ).replace(b"00F067AA0BA902B7", b"00f067aa0ba902b7")


def test_missing_service_only_with_a_default() -> None:
    line = f'{{{TS},"level":"INFO","message":"m","x":1}}'.encode()
    assert _repair(line) is None
    out = _repair(line, "web")
    assert out == f'{{"service":"web",{TS},"level":"INFO","message":"m","x":1}}'.encode()
    assert out is not None and out.count(b'"service"') == 1


@pytest.mark.parametrize(
    "line",
    [
        f'{{{TS},"level":"LOUD","service":"a","message":"m"}}',  # no alias
        f'{{{TS},"level":"WARNING","service":"A B","message":"m"}}',  # plus a non-repairable
        f'{{{TS},"level":"INFO","service":"a","message":"m","trace_id":"XYZ"}}',  # not hex
        '{"level":"WARNING","service":"a","message":"m"}',  # missing timestamp
    ],
)
def test_not_repairable(line: str) -> None:
    assert _repair(line.encode(), "web") is None
