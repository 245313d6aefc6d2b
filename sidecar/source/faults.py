"""What the source reports, and its error boundary per file.

Any ``OSError`` on one file or folder (EIO, ELOOP, EACCES, ENAMETOOLONG, EISDIR, ENXIO, ...) is
caught where that one file is handled: it becomes a :class:`SourceEvent` (a WARN naming the
path, safely escaped, and the errno name) and that path is retried with back-off while every
other file goes on. Back-off after the n-th failure in a row: ``min(1 s * 2^(n-1), 60 s)``
(1, 2, 4, 8, 16, 32, 60, 60 ... s), reset by a success. The WARN is logged when a path starts
failing or fails for another reason, and an INFO when it recovers; every failed attempt is
counted (``obskit_sidecar_source_errors_total{reason}``).
"""

from __future__ import annotations

import errno
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from obskit._names import safe_path

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
# Paths remembered as failing; past this the oldest are forgotten (retried at once, logged
# again), so a folder of a million unreadable names cannot grow memory without bound.
MAX_FAILING = 10_000


class SourceEvent(str):
    """One thing the source reports: the message (the string itself) and how to report it.

    ``kind``: ``error`` (an OSError on a file or folder; ``reason`` is the errno name, or
    ``special_file``), ``recovered``, ``lost`` (``lost_bytes`` unread bytes of a file that is
    gone or was truncated; ``lost_lines`` when known, else None), ``folder_missing``,
    ``unsupported_encoding``, ``truncated_while_away``, ``fs_events``. ``level``: ``WARN``,
    ``INFO``, or empty for an event that is only counted (a repeated failure already logged).
    ``fields``: extra fields for the log line (``path`` escaped, ``errno``, ``bytes``...).
    """

    kind: str
    level: str
    reason: str
    fields: dict[str, Any]
    lost_bytes: int
    lost_lines: int | None

    def __new__(
        cls,
        msg: str,
        kind: str,
        *,
        level: str = "WARN",
        reason: str = "",
        fields: dict[str, Any] | None = None,
        lost_bytes: int = 0,
        lost_lines: int | None = None,
    ) -> SourceEvent:
        self = super().__new__(cls, msg)
        self.kind = kind
        self.level = level
        self.reason = reason or kind
        self.fields = fields or {}
        self.lost_bytes = lost_bytes
        self.lost_lines = lost_lines
        return self


def reason_of(exc: BaseException) -> str:
    """The errno name of an OSError (``EIO``, ``ELOOP``...), else a short kind."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno_{exc.errno}")
    if isinstance(exc, UnicodeError):
        return "undecodable_name"
    return type(exc).__name__


def describe(exc: BaseException) -> str:
    """The error's text without the file name (the message names the path, escaped)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(slots=True)
class _Failing:
    reason: str
    op: str
    count: int = 0
    retry_at: float = 0.0


@dataclass
class FileFaults:
    """Paths failing now: when each may be retried, and which reason was last reported."""

    first: float = BACKOFF_FIRST
    cap: float = BACKOFF_MAX
    limit: int = MAX_FAILING
    _by_path: OrderedDict[str, _Failing] = field(default_factory=OrderedDict)

    def ready(self, path: str, now: float) -> bool:
        """May ``path`` be tried now (not failing, or its back-off has run out)?"""
        f = self._by_path.get(path)
        return f is None or now >= f.retry_at

    def failing(self, path: str) -> bool:
        return path in self._by_path

    def failed(self, path: str, exc: BaseException, op: str, now: float) -> SourceEvent:
        """Record a failure of ``op`` (``open``, ``read``, ``stat``, ``list``) on ``path`` and
        schedule its retry; the event is logged when the path's state changed."""
        reason = reason_of(exc)
        f = self._by_path.get(path)
        new_state = f is None or f.reason != reason
        if f is None:
            f = self._by_path[path] = _Failing(reason, op)
            while len(self._by_path) > self.limit:
                self._by_path.popitem(last=False)
        f.reason, f.op = reason, op
        f.count += 1
        delay = min(self.first * 2 ** (f.count - 1), self.cap)
        f.retry_at = now + delay
        shown = safe_path(path)
        return SourceEvent(
            f"cannot {op} {shown}: {describe(exc)} ({reason}); other files go on,"
            f" this one is retried with back-off (next in {delay:g} s, at most every"
            f" {self.cap:g} s)",
            "error",
            level="WARN" if new_state else "",
            reason=reason,
            fields={"path": shown, "errno": reason, "op": op},
        )

    def succeeded(self, path: str, ops: tuple[str, ...] = ()) -> SourceEvent | None:
        """``path`` worked again (only ``ops``, when given: an fstat that works says nothing
        about a read that failed): an INFO when it was failing."""
        f = self._by_path.get(path)
        if f is None or (ops and f.op not in ops):
            return None
        del self._by_path[path]
        shown = safe_path(path)
        return SourceEvent(
            f"{shown} is readable again (after {f.count} failed attempts, {f.reason})",
            "recovered",
            level="INFO",
            reason=f.reason,
            fields={"path": shown},
        )

    def keep_only(self, present: set[str]) -> None:
        """Forget paths that are no longer there (deleted, renamed)."""
        for p in [p for p in self._by_path if p not in present]:
            del self._by_path[p]

    def __len__(self) -> int:
        return len(self._by_path)
