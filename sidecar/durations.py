"""Durations and sizes in config: ``"500ms"``, ``"5s"``, ``"1m"``, ``"2h"`` or a number of
seconds; ``"64KiB"``, ``"10MB"`` or a number of bytes."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*", re.ASCII | re.IGNORECASE)
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Duration(float):
    """Seconds, parsed from ``"500ms"``/``"5s"``/``"1m"``/``"2h"``/``"1d"`` or a number."""


class ByteSize(int):
    """Bytes, parsed from ``"64KiB"``/``"10MB"``/``"1GiB"`` (binary multiples) or a number."""


def parse_duration(value: object) -> Duration:
    """Seconds in ``value``; raises ``ValueError`` with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 500ms, 5s, 1m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return Duration(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m:
            return Duration(float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"expected a duration like 500ms, 5s, 1m, 2h or seconds, got {value!r}")


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
