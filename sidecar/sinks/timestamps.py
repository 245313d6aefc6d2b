"""Unix nanoseconds of the records' schema timestamps, as every network sink needs them."""

from __future__ import annotations

from collections.abc import Iterable

from obskit.schema import timestamp_ns
from obskit.schema.record import Record


class Timestamps:
    """Converts records' ``timestamp`` to Unix nanoseconds. The usual
    ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` takes a fast path: neighbouring lines share their minute,
    whose value is cached (bounded); anything else goes through :func:`timestamp_ns`."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, records: Iterable[Record]) -> list[int]:
        cache = self._cache
        if len(cache) > 8192:
            cache.clear()
        out = []
        for rec in records:
            t = rec.timestamp
            if len(t) >= 20 and t[-1] == "Z" and t[19] in ".Z" and t[16] == ":":
                base = cache.get(t[:16])
                if base is None:
                    base = cache[t[:16]] = timestamp_ns(t[:16] + ":00Z")
                frac = t[20:-1]
                out.append(
                    base + int(t[17:19]) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
                )
            else:
                out.append(timestamp_ns(t))
        return out
