"""Unix nanoseconds of the records' schema timestamps, as every network sink needs them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter

from obskit.schema import timestamp_ns
from obskit.schema.record import Record
from sidecar.sinks.accel import ACCEL

_CTimestamps = Callable[[list[str]], list[int | None]]
_timestamp_of = attrgetter("timestamp")


#: ``sidecar/sinks/_accel.c``'s ``timestamps_ns`` when it was built, else ``None``.
_c_timestamps: _CTimestamps | None = ACCEL.timestamps_ns if ACCEL else None


class Timestamps:
    """Converts records' ``timestamp`` to Unix nanoseconds. The usual
    ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` takes the C loop where it was built, else a Python fast
    path (neighbouring lines share their minute, whose value is cached, bounded); anything
    else goes through :func:`timestamp_ns`."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def __call__(self, records: Sequence[Record]) -> list[int]:
        if _c_timestamps is None:
            return self.python(records)
        stamps = list(map(_timestamp_of, records))
        out = _c_timestamps(stamps)
        if None in out:  # not the plain UTC form (an offset, a malformed one): in Python
            slow = self.python
            return [t if t is not None else slow([r])[0] for t, r in zip(out, records, strict=True)]
        return out  # type: ignore[return-value]

    def python(self, records: Iterable[Record]) -> list[int]:
        """The pure Python conversion: the reference for the C loop, and the fallback."""
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
