"""What every backend returns: :class:`Entry` (one log line of the trace), the trace id and the
time window; plus the merge that turns several backends' results into one ordered timeline."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from obskit import _durations as durations
from obskit.schema import check_line, timestamp_ns

_HEX32: Final = re.compile(r"[0-9a-fA-F]{32}")
_TRACEPARENT: Final = re.compile(
    r"([0-9a-fA-F]{2})-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-([0-9a-fA-F]{2})"
)


#: The most shards a lookup may split its window into, per backend: every shard costs at least
#: one request and its own bookkeeping (``--shard 1ms --since 1d`` once meant 86 million).
MAX_SHARDS: Final = 10_000


class TraceUsageError(ValueError):
    """The command line or the config names something unusable (exit code 2)."""


class BackendError(Exception):
    """A backend could not be queried; ``str()`` names the backend and the cause, never secrets."""

    def __init__(self, backend: str, cause: str) -> None:
        super().__init__(f"{backend}: {cause}")
        self.backend = backend
        self.cause = cause


def parse_trace_id(value: str) -> str:
    """The 32-hex lower-case trace id in ``value`` (a trace id or a ``traceparent`` value).

    Raises :class:`TraceUsageError` with a message that says what was expected.
    """
    v = value.strip()
    if _HEX32.fullmatch(v):
        tid = v.lower()
    elif m := _TRACEPARENT.fullmatch(v):
        if m.group(1).lower() == "ff":
            raise TraceUsageError(f"{value!r}: traceparent version ff is invalid")
        tid = m.group(2).lower()
    else:
        raise TraceUsageError(
            f"{value!r} is not a trace id: expected 32 hex digits "
            "(e.g. 4bf92f3577b34da6a3ce929d0e0e4736) or a traceparent value "
            "(00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)"
        )
    if tid == "0" * 32:
        raise TraceUsageError("the all-zero trace id is invalid (W3C Trace Context)")
    return tid


def parse_duration_ns(text: str) -> int:
    """``90s``, ``15m``, ``24h``, ``7d``, ``1w``, ``1h30m`` -> nanoseconds (usage error else)."""
    try:
        return durations.parse_duration_ns(text)
    except ValueError as exc:
        raise TraceUsageError(str(exc)) from None


def parse_time_ns(text: str, what: str) -> int:
    """An RFC 3339 date-time (``2026-11-25T10:00:00Z``, offsets allowed) -> unix ns."""
    t = text.strip()
    if len(t) > 10 and t[10] in " t":
        t = t[:10] + "T" + t[11:]
    t = t.upper()
    try:
        return timestamp_ns(t)
    except ValueError:
        raise TraceUsageError(
            f"{what} {text!r} is not an RFC 3339 date-time (e.g. 2026-11-25T10:00:00Z)"
        ) from None


@dataclass(frozen=True)
class Window:
    """The half-open time range ``[start_ns, end_ns)`` searched."""

    start_ns: int
    end_ns: int

    @classmethod
    def build(
        cls, since: str | None, from_: str | None, to: str | None, now_ns: int | None = None
    ) -> Window:
        now = time.time_ns() if now_ns is None else now_ns
        end = parse_time_ns(to, "--to") if to else now
        if from_:
            if since:
                raise TraceUsageError("give either --since or --from, not both")
            start = parse_time_ns(from_, "--from")
        else:
            start = end - parse_duration_ns(since or "24h")
        if start >= end:
            raise TraceUsageError("the window is empty: --from must be before --to")
        return cls(start, end)

    def shard_count(self, size_ns: int) -> int:
        """How many shards of ``size_ns`` cover the window."""
        return -(-(self.end_ns - self.start_ns) // size_ns)

    def shards(self, size_ns: int) -> list[Window]:
        """Split into consecutive windows of at most ``size_ns`` (the last may be shorter);
        more than :data:`MAX_SHARDS` is a usage error (each shard is at least one request)."""
        if size_ns <= 0 or self.shard_count(size_ns) > MAX_SHARDS:
            raise TraceUsageError(
                f"{self.shard_count(max(size_ns, 1)):,} shards: at most {MAX_SHARDS:,} are "
                "allowed (use a larger shard or a shorter window)"
            )
        out, s = [], self.start_ns
        while s < self.end_ns:
            e = min(s + size_ns, self.end_ns)
            out.append(Window(s, e))
            s = e
        return out

    def describe(self) -> str:
        return f"{format_ns(self.start_ns)} .. {format_ns(self.end_ns)}"


def format_ns(ns: int, digits: int = 6) -> str:
    """Unix ns -> ``2026-11-25T20:31:02.123456Z`` (UTC, ``digits`` fraction digits)."""
    secs, frac = divmod(ns, 1_000_000_000)
    tm = time.gmtime(secs)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    if digits:
        base += "." + f"{frac:09d}"[:digits]
    return base + "Z"


@dataclass
class Entry:
    """One log line of the trace, from any backend.

    ``fields`` is the whole decoded JSON object of the line (empty when the line is not JSON);
    ``source`` says where it came from (``loki``, ``elasticsearch:<index>``, ``<path>:<line>``).
    """

    ts_ns: int
    timestamp: str
    service: str
    level: str
    message: str
    span_id: str | None
    source: str
    raw: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    #: schema v1 violations of the line, formatted (empty when valid).
    problems: list[str] = field(default_factory=list)

    def dedup_key(self) -> tuple[str, int, str, str]:
        return (self.service, self.ts_ns, self.message, self.span_id or "")

    def field(self, path: str) -> Any:
        """A field by name, or a dotted path into nested objects (``http.status``)."""
        if path in self.fields:
            return self.fields[path]
        cur: Any = self.fields
        for part in path.split("."):
            if not isinstance(cur, Mapping) or part not in cur:
                return None
            cur = cur[part]
        return cur


@dataclass(frozen=True)
class BrokenLine:
    """A line that mentions the trace id but cannot be put on the timeline, and why."""

    reason: str


def entry_from_line(
    raw: bytes | str,
    source: str,
    trace_id: str,
    *,
    fallback_ts_ns: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> Entry | None:
    """:func:`read_line`, with a broken line counted as no line (for the backends that give
    every line a time of their own)."""
    got = read_line(raw, source, trace_id, fallback_ts_ns=fallback_ts_ns, labels=labels)
    return got if isinstance(got, Entry) else None


def read_line(
    raw: bytes | str,
    source: str,
    trace_id: str,
    *,
    fallback_ts_ns: int | None = None,
    labels: Mapping[str, str] | None = None,
) -> Entry | BrokenLine | None:
    """Build an :class:`Entry` from one log line that should belong to ``trace_id``.

    Returns ``None`` when the line is JSON whose ``trace_id`` is another trace (a byte match of
    the id somewhere else in the line), and a :class:`BrokenLine` when the line cannot be
    placed in time: not a JSON object (a raw control byte, cut off, not UTF-8, plain text) or
    without a readable timestamp, and no ``fallback_ts_ns``. Lines that break schema v1 are
    kept, with their problems listed: a trace lookup shows what is there.
    ``fallback_ts_ns`` and ``labels`` come from the backend (Loki's entry time and stream
    labels, Elasticsearch's ``@timestamp``) and fill in what the line itself lacks.
    """
    line = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    line = line.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
    text = line.decode("utf-8", "replace")
    labels = labels or {}
    obj = _loads(line)
    if not isinstance(obj, dict):
        if fallback_ts_ns is None:
            return BrokenLine(why_not_json(line))
        # Shipped over OTLP (Loki's /otlp endpoint): the line is the record's body (its
        # message) and the rest is in labels and structured metadata, severity included.
        otlp = "severity_text" in labels
        level = labels.get("severity_text") if otlp else None
        return Entry(
            ts_ns=fallback_ts_ns,
            timestamp=format_ns(fallback_ts_ns, 9),
            service=str(labels.get("service", labels.get("service_name", "?"))),
            level=str(level or labels.get("level", labels.get("detected_level", "?"))).upper(),
            message=text,
            span_id=labels.get("span_id"),
            source=source,
            raw=text,
            fields=dict(labels) if otlp else {},
            problems=[] if otlp else ["not a JSON object"],
        )
    tid = obj.get("trace_id")
    if isinstance(tid, str) and tid.lower() != trace_id:
        return None
    if tid is None and labels.get("trace_id", trace_id) != trace_id:
        return None
    rec, violations = check_line(line)
    problems = [v.format() for v in violations if v.severity == "error"]
    ts = obj.get("timestamp")
    ts_ns: int | None = None
    if rec is not None:
        ts_ns = timestamp_ns(rec.timestamp)
    elif isinstance(ts, str):
        try:
            ts_ns = timestamp_ns(ts)
        except ValueError:
            ts_ns = None
    if ts_ns is None:
        ts_ns = fallback_ts_ns
    if ts_ns is None:
        if ts is None:
            return BrokenLine("no timestamp: cannot place it on the timeline")
        shown = ts if isinstance(ts, str) else _text(ts, "")
        return BrokenLine(f"timestamp {shown[:64]!r} is not an RFC 3339 date-time")
    span = obj.get("span_id")
    return Entry(
        ts_ns=ts_ns,
        timestamp=ts if isinstance(ts, str) else format_ns(ts_ns, 9),
        service=_text(obj.get("service"), labels.get("service", "?")),
        level=_text(obj.get("level"), labels.get("level", "?")),
        message=_text(obj.get("message"), ""),
        span_id=span if isinstance(span, str) else None,
        source=source,
        raw=text,
        fields=obj,
        problems=problems,
    )


_ORJSON_AT: Final = re.compile(r": line \d+ column \d+ \(char (\d+)\)$")


def why_not_json(line: bytes) -> str:
    """Why ``line`` (one line, no newline) is not a JSON object, with the byte column."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{line[exc.start]:02x} at column {exc.start + 1}"
    if not text.lstrip().startswith("{"):
        return "not JSON"
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
    else:
        return "not a JSON object"
    m = _ORJSON_AT.search(msg)
    offset = len(text[: int(m.group(1))].encode()) if m else 0
    msg = msg[: m.start()] if m else msg
    if "end of data" in msg:
        return "cut off: the line ends inside the JSON object (partly written?)"
    if "control character" in msg and offset < len(line):
        return (
            f"raw control byte 0x{line[offset]:02x} at column {offset + 1} "
            "(JSON strings must escape it)"
        )
    return f"not valid JSON: {msg} at column {offset + 1}"


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses integers beyond 64 bits; the standard library keeps them (as text, so
    # the JSON output can still be written).
    try:
        return json.loads(line, parse_int=lambda s: int(s) if len(s) < 19 else s)
    except (ValueError, RecursionError):
        return None


def _text(value: object, default: str) -> str:
    if value is None:
        return default
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def merge(groups: Iterable[Iterable[Entry]]) -> list[Entry]:
    """One timeline from several backends' entries: ordered by time (stable, so a backend's
    own order of tied lines is kept), duplicates dropped (same service, timestamp, message and
    span, or the identical raw line)."""
    seen_keys: set[tuple[str, int, str, str]] = set()
    seen_raw: set[str] = set()
    out: list[Entry] = []
    for group in groups:
        for e in group:
            k = e.dedup_key()
            if k in seen_keys or (e.raw and e.raw in seen_raw):
                continue
            seen_keys.add(k)
            if e.raw:
                seen_raw.add(e.raw)
            out.append(e)
    out.sort(key=lambda e: e.ts_ns)
    return out
