"""Minute buckets, with the edge convention of the backend they are compared with.

Loki and Elasticsearch disagree about which minute a line that falls exactly on a minute
boundary belongs to, and the files side must agree with the backend it is compared with:

* **Loki** (``count_over_time({...}[1m])`` evaluated at step-aligned times ``t``): the range
  ``[1m]`` at ``t`` selects entries with ``t - 1m < ts <= t`` (left-open, right-closed: Loki's
  ``batchRangeVectorIterator`` drops samples ``<= start`` and keeps those ``<= end``). The
  bucket of minute ``k`` is the point at ``t = k + 1m`` and holds ``(k, k + 1m]``.
* **Elasticsearch** (``date_histogram`` with ``fixed_interval: 1m``): ``key = floor(ts / 1m)
  * 1m`` on ``@timestamp``, so minute ``k`` holds ``[k, k + 1m)``. The sink stores a leap
  second (``23:59:60``) as ``23:59:59.999999999`` (:func:`obskit.schema.record.
  without_leap_second`), so it stays in minute 23:59.

A bucket is always named by the start of its minute ``k`` (Unix nanoseconds).
"""

from __future__ import annotations

import enum
import re
import threading
from dataclasses import dataclass, field
from typing import Final

from obskit.schema import timestamp_ns
from obskit.schema.record import without_leap_second
from obskit.schema.rules import check_timestamp
from obskit.trace.model import TraceUsageError, Window, format_ns

MINUTE_NS: Final = 60 * 1_000_000_000


class Edges(enum.Enum):
    """Which edge of a minute is inside its bucket."""

    #: Loki: minute ``k`` holds ``(k, k + 1m]``.
    LEFT_OPEN = "left-open"
    #: Elasticsearch: minute ``k`` holds ``[k, k + 1m)``.
    RIGHT_OPEN = "right-open"

    def key(self, ns: int) -> int:
        """The bucket (start of its minute) of the instant ``ns``."""
        if self is Edges.LEFT_OPEN:
            return ((ns - 1) // MINUTE_NS) * MINUTE_NS
        return (ns // MINUTE_NS) * MINUTE_NS

    def describe(self, start_ns: int) -> str:
        """``(10:00:00Z, 10:01:00Z]`` or ``[10:00:00Z, 10:01:00Z)``."""
        a, b = format_ns(start_ns, 0), format_ns(start_ns + MINUTE_NS, 0)
        return f"({a}, {b}]" if self is Edges.LEFT_OPEN else f"[{a}, {b})"


# "YYYY-MM-DDTHH:MM" is validated and converted once per minute seen; the seconds and fraction
# of each line are checked by this pattern (anything else takes the precise path).
_TAIL: Final = re.compile(r":([0-5]\d)(?:\.(\d{1,9}))?Z")
_MINUTES_CACHE_MAX: Final = 65_536


class TimestampReader:
    """Schema v1 ``timestamp`` text -> Unix nanoseconds, or ``None`` when invalid.

    The usual ``...THH:MM:SS[.f]Z`` form costs one dict lookup and one small regex match per
    line; other forms (offsets, leap seconds) go through the schema's own check.
    """

    def __init__(self) -> None:
        self._minutes: dict[str, int | None] = {}

    def ns(self, ts: object, edges: Edges) -> int | None:
        """The instant of ``ts`` as ``edges``' backend indexes it, or ``None`` if invalid."""
        if not isinstance(ts, str):
            return None
        if len(ts) >= 20 and ts[16] == ":" and ts[-1] == "Z":
            base = self.minute(ts[:16])
            if base is None:
                return None
            m = _TAIL.fullmatch(ts, 16)
            if m is not None:
                frac = m.group(2)
                return (
                    base
                    + int(m.group(1)) * 1_000_000_000
                    + (int(frac.ljust(9, "0")) if frac else 0)
                )
        if check_timestamp(ts) is not None:
            return None
        if edges is Edges.RIGHT_OPEN:
            ts = without_leap_second(ts)
        return timestamp_ns(ts)

    def minute(self, prefix: str) -> int | None:
        """``YYYY-MM-DDTHH:MM`` (UTC) -> Unix ns of that minute, or ``None`` if it does not
        exist (cached)."""
        try:
            return self._minutes[prefix]
        except KeyError:
            pass
        text = prefix + ":00Z"
        base = timestamp_ns(text) if check_timestamp(text) is None else None
        if len(self._minutes) >= _MINUTES_CACHE_MAX:
            self._minutes.clear()
        self._minutes[prefix] = base
        return base


@dataclass(frozen=True)
class BucketRange:
    """The minutes compared: buckets ``first``, ``first + 1m``, ... before ``end``."""

    first: int
    end: int
    edges: Edges

    @classmethod
    def covering(cls, window: Window, edges: Edges, now_ns: int, settle_ns: int = 0) -> BucketRange:
        """Every whole minute that overlaps ``window`` (rounded outwards, so no minute is
        compared in part), without the minutes that end later than ``now - settle`` (lines of
        those may still be on their way to the backend).

        Raises :class:`TraceUsageError` when no whole, settled minute is left.
        """
        first = (window.start_ns // MINUTE_NS) * MINUTE_NS
        end = -(-window.end_ns // MINUTE_NS) * MINUTE_NS
        settled = ((now_ns - settle_ns) // MINUTE_NS) * MINUTE_NS
        end = min(end, settled)
        if end <= first:
            raise TraceUsageError(
                f"no whole minute of the window {window.describe()} has settled yet "
                f"(lines of the last {settle_ns / 1e9:g} s may still be on their way; "
                "use an earlier --to, or --settle 0s)"
            )
        return cls(first, end, edges)

    @property
    def minutes(self) -> int:
        return (self.end - self.first) // MINUTE_NS

    def __contains__(self, key: object) -> bool:
        return isinstance(key, int) and self.first <= key < self.end

    def describe(self) -> str:
        return f"{format_ns(self.first, 0)} .. {format_ns(self.end, 0)}"

    def split(self, minutes: int, align_ns: int = 0) -> list[BucketRange]:
        """Consecutive ranges of at most ``minutes`` buckets; with ``align_ns`` (a multiple of
        a minute, e.g. a day) the pieces also break at multiples of it."""
        out: list[BucketRange] = []
        k = self.first
        step = minutes * MINUTE_NS
        while k < self.end:
            stop = min(self.end, k + step)
            if align_ns:
                stop = min(stop, (k // align_ns + 1) * align_ns)
            out.append(BucketRange(k, stop, self.edges))
            k = stop
        return out


@dataclass
class BackendCounts:
    """What a backend holds per (service, minute), and how it was asked."""

    name: str
    #: ``(service, bucket) -> lines``.
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    #: ``(service, bucket) -> {instance: lines}`` (Loki with ``by_instance``).
    per_instance: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    requests: int = 0
    #: How it searched (queries, paging), for ``--debug``.
    info: list[str] = field(default_factory=list)
    #: Things the user should know (a limit worked around, a warning of the server).
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, service: str, key: int, n: int, instance: str | None = None) -> None:
        with self._lock:
            k = (service, key)
            self.counts[k] = self.counts.get(k, 0) + n
            if instance is not None:
                per = self.per_instance.setdefault(k, {})
                per[instance] = per.get(instance, 0) + n

    def request_made(self) -> None:
        with self._lock:
            self.requests += 1

    def note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
