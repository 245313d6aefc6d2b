"""Durations and sizes, the one parser for the sidecar's config and ``obskit trace``.

Durations: a number and a unit (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``), several of them in
a row (``1h30m``), decimals allowed (``1.5s``); in config files also a plain number of
seconds. Sizes: ``"64KiB"``, ``"10MB"`` (K/M/G/T are binary multiples) or a number of bytes.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Final

_TERM: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", re.ASCII)
_UNIT_NS: Final = {
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
    "w": 7 * 86400 * 1_000_000_000,
}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", re.ASCII | re.IGNORECASE)
_SIZE_UNITS: Final = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Duration(float):
    """Seconds, parsed from ``"500ms"``/``"5s"``/``"1m"``/``"2h"``/``"1d"`` or a number."""


class ByteSize(int):
    """Bytes, parsed from ``"64KiB"``/``"10MB"``/``"1GiB"`` (binary multiples) or a number."""


def duration_ns(text: str, *, unit_required: bool) -> int | None:
    """Nanoseconds in ``text`` (exact, no float rounding), or ``None`` when it is not a
    duration. A plain number means seconds unless ``unit_required``; case is ignored."""
    t = text.strip().lower()
    pos, total = 0, Fraction(0)
    while pos < len(t):
        m = _TERM.match(t, pos)
        if m is None:
            return None
        unit = m.group(2)
        if unit is None:
            # A bare number is seconds, and only on its own ("90", not "1h30").
            if unit_required or pos or m.end() != len(t):
                return None
            unit = "s"
        total += Fraction(m.group(1)) * _UNIT_NS[unit]
        pos = m.end()
    return int(total) if t else None


def parse_duration(value: object) -> Duration:
    """Seconds in a config value; raises ``ValueError`` with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 500ms, 5s, 1m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return Duration(value)
    if isinstance(value, str):
        ns = duration_ns(value, unit_required=False)
        if ns is not None:
            return Duration(ns / 1e9)
    raise ValueError(f"expected a duration like 500ms, 5s, 1m, 2h or seconds, got {value!r}")


def parse_duration_ns(text: str) -> int:
    """A positive duration typed by a person (``90s``, ``15m``, ``24h``, ``7d``, ``1w``,
    ``1h30m``) in nanoseconds; the unit is required. Raises ``ValueError``."""
    ns = duration_ns(text, unit_required=True)
    if ns is None or ns <= 0:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (ms, s, m, h, d, w), "
            "e.g. 24h or 7d"
        )
    return ns


def parse_size(value: object) -> ByteSize:
    """Bytes in ``value`` (K/M/G/T are binary multiples, with or without ``iB``/``B``)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 64KiB, 10MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {value!r}")
        return ByteSize(value)
    if isinstance(value, str):
        m = _SIZE.fullmatch(value)
        if m:
            unit = (m.group(2) or "B")[0].upper()
            return ByteSize(int(float(m.group(1)) * _SIZE_UNITS.get(unit, 1)))
    raise ValueError(f"expected a size like 64KiB, 10MiB, 1GiB or bytes, got {value!r}")


def dec_hook(typ: type, obj: Any) -> Any:
    """``msgspec.convert`` hook that turns config values into :class:`Duration` and
    :class:`ByteSize`."""
    if typ is Duration:
        return parse_duration(obj)
    if typ is ByteSize:
        return parse_size(obj)
    raise NotImplementedError(f"unsupported type {typ!r}")
