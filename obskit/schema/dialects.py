"""JSON log dialects mapped to schema v1: Go ``log/slog``, zap, logrus, Serilog CLEF, ECS,
python-json-logger and structlog.

Each dialect is declared as data (:class:`Dialect`): where its time, level, message and
service are, how its levels map, and which other keys are renamed. One converter
(:func:`convert`) applies a dialect to a decoded line; ``obskit validate --dialect`` and the
sidecar's ``schema.dialects`` both use it, and both check the result with the schema v1
validator, so a converted line is valid exactly when ``obskit validate`` says so.

Rules the converter follows (``docs/migration.md`` has the tables):

- A key that is already in schema v1 form is never overwritten: a half-migrated line keeps
  its ``message`` even when it also has ``msg``.
- Renames are lossless. A value that is changed in a way that loses detail (slog's
  ``INFO+2`` -> ``INFO``, zap's ``dpanic`` -> ``ERROR``, a local time read as UTC) is kept,
  as it was, under :data:`ORIGINAL_KEY` (``dialect_original``), keyed by its original key.
- Times: RFC 3339 stays as it is (offsets are valid in schema v1); epoch numbers become
  RFC 3339 UTC (seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude:
  below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds);
  ``2024-05-01 12:30:02,123`` (Python's ``asctime``) and other times without a zone are read
  as UTC, the original kept.
- Trace ids: ``trace_id``/``span_id``, camelCase (``traceId``, ``TraceId``,
  ``otelTraceID``), the otel/ECS ``trace.id``/``span.id`` (dotted or nested), Serilog's
  ``@tr``/``@sp`` and a W3C ``traceparent`` become ``trace_id``/``span_id``, lower-cased;
  a value that is not a valid id is left where it is, never guessed.
- Dotted names (``log.level``) match a top-level key of that name or the nested path
  (``{"log": {"level": ...}}``); a nested parent left empty is removed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Final

import msgspec

from obskit.schema import rules

#: Where original values that schema v1 cannot hold are kept (one object per line).
ORIGINAL_KEY: Final = "dialect_original"

#: The order of the schema keys at the start of a converted line.
_V1_ORDER: Final = ("timestamp", "level", "service", "message", "trace_id", "span_id")

TRACE_KEYS: Final = ("trace_id", "traceId", "TraceId", "trace.id", "otelTraceID", "@tr")
SPAN_KEYS: Final = ("span_id", "spanId", "SpanId", "span.id", "otelSpanID", "@sp")
TRACEPARENT_KEYS: Final = ("traceparent", "traceParent")


@dataclass(frozen=True)
class Dialect:
    """One JSON log format and its mapping to schema v1 (see the module docstring).

    ``levels`` map a level value to the schema level without loss (a spelling); values in
    ``collapsed`` map with loss (the original is kept). ``level_ci``: level values compared
    upper-cased. ``level_offsets``: slog's ``INFO+2`` form. ``level_absent``: the level a
    line without one has (CLEF: Information). ``signatures``: key sets of which one must be
    present for :func:`detect` to pick the dialect; ``level_case`` (``upper``/``lower``)
    tells dialects with the same keys apart.
    """

    name: str
    title: str
    time: tuple[str, ...]
    level: tuple[str, ...]
    message: tuple[str, ...]
    levels: Mapping[str, str]
    collapsed: Mapping[str, str] = field(default_factory=dict)
    level_ci: bool = False
    level_offsets: bool = False
    level_absent: str | None = None
    service: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    signatures: tuple[tuple[str, ...], ...] = ()
    level_case: str | None = None

    @cached_property
    def rename_plan(self) -> tuple[tuple[str, str, str], ...]:
        """``renames`` with each source's top-level key (a dotted name's first part)."""
        return tuple((src, dst, src.split(".", 1)[0]) for src, dst in self.renames)

    @cached_property
    def rename_keys(self) -> frozenset[str]:
        """The top-level keys a rename starts from: none in a line, nothing to rename."""
        return frozenset(k for src, _, head in self.rename_plan for k in (src, head))

    @cached_property
    def fast(self) -> bool:
        """Whether the sidecar's fast path (``_convert_fast``) can convert this dialect."""
        return _fast_fits(self)

    @cached_property
    def fields(self) -> tuple[tuple[str, tuple[str, ...], Callable[[Any], Any]], ...]:
        """Per schema field: where this dialect has it and how its value is converted."""
        return (
            ("timestamp", self.time, to_timestamp),
            ("level", self.level, partial(to_level, self)),
            ("service", self.service, _service_value),
            ("message", self.message, _message_value),
        )


_V1_LEVELS: Final = {name: name for name in rules.LEVELS}

DIALECTS: Final[tuple[Dialect, ...]] = (
    Dialect(
        name="serilog",
        title="Serilog CLEF",
        time=("@t",),
        level=("@l",),
        message=("@m", "@mt"),
        levels={"Debug": "DEBUG", "Information": "INFO", "Warning": "WARN", "Error": "ERROR"},
        collapsed={"Verbose": "DEBUG", "Fatal": "ERROR"},
        level_absent="INFO",
        renames=(("@x", "error.stack"),),
        signatures=(("@t",),),
    ),
    Dialect(
        name="ecs",
        title="Elastic Common Schema (ECS)",
        time=("@timestamp",),
        level=("log.level",),
        message=("message",),
        level_ci=True,
        levels={
            "DEBUG": "DEBUG",
            "INFO": "INFO",
            "INFORMATION": "INFO",
            "WARN": "WARN",
            "WARNING": "WARN",
            "ERROR": "ERROR",
        },
        collapsed={
            "TRACE": "DEBUG",
            "VERBOSE": "DEBUG",
            "NOTICE": "INFO",
            "CRITICAL": "ERROR",
            "FATAL": "ERROR",
            "ALERT": "ERROR",
            "EMERGENCY": "ERROR",
        },
        service=("service.name",),
        renames=(
            ("log.logger", "logger"),
            ("error.type", "error.type"),
            ("error.message", "error.message"),
            ("error.stack_trace", "error.stack"),
        ),
        signatures=(("@timestamp", "log.level"),),
    ),
    Dialect(
        name="zap",
        title="Go zap",
        time=("ts",),
        level=("level",),
        message=("msg",),
        levels={"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"},
        collapsed={"dpanic": "ERROR", "panic": "ERROR", "fatal": "ERROR"},
        signatures=(("ts", "msg"),),
    ),
    Dialect(
        name="go-slog",
        title="Go log/slog",
        time=("time",),
        level=("level",),
        message=("msg",),
        levels=_V1_LEVELS,
        level_offsets=True,
        signatures=(("time", "level", "msg"),),
        level_case="upper",
    ),
    Dialect(
        name="logrus",
        title="Go logrus",
        time=("time",),
        level=("level",),
        message=("msg",),
        levels={"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR"},
        collapsed={"trace": "DEBUG", "fatal": "ERROR", "panic": "ERROR"},
        signatures=(("time", "level", "msg"),),
        level_case="lower",
    ),
    Dialect(
        name="structlog",
        title="Python structlog",
        time=("timestamp",),
        level=("level",),
        message=("event",),
        levels={"debug": "DEBUG", "info": "INFO", "warning": "WARN", "error": "ERROR"},
        collapsed={"critical": "ERROR", "exception": "ERROR", "notset": "DEBUG"},
        renames=(("exception", "error.stack"),),
        signatures=(("event", "level"),),
        level_case="lower",
    ),
    Dialect(
        name="python-json",
        title="python-json-logger",
        time=("timestamp", "asctime"),
        level=("levelname",),
        message=("message",),
        levels={"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"},
        collapsed={"CRITICAL": "ERROR", "NOTSET": "DEBUG"},
        renames=(("name", "logger"), ("exc_info", "error.stack")),
        signatures=(("levelname",), ("asctime",)),
    ),
)

BY_NAME: Final[dict[str, Dialect]] = {d.name: d for d in DIALECTS}
#: Names accepted by ``--dialect`` and ``schema.dialects[].dialect`` (``DIALECTS`` is in
#: detection order: the more distinctive keys first).
NAMES: Final = ("auto", "go-slog", "zap", "logrus", "serilog", "ecs", "python-json", "structlog")
assert set(NAMES[1:]) == set(BY_NAME)


class UnknownDialect(ValueError):
    """A dialect name that is not one of :data:`NAMES`."""


def dialect_named(name: str) -> Dialect | None:
    """The dialect called ``name`` (``None`` for ``auto``); :class:`UnknownDialect` else."""
    if name == "auto":
        return None
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownDialect(f"unknown dialect {name!r} (known: {', '.join(NAMES)})") from None


# --- key access --------------------------------------------------------------------------

_MISSING: Final[Any] = object()


def _get(obj: Mapping[str, Any], path: str) -> Any:
    """``obj[path]``, else the nested path of a dotted name; ``_MISSING`` when absent."""
    val = obj.get(path, _MISSING)
    if val is not _MISSING or "." not in path:
        return val
    parts = path.split(".")
    node: Any = obj.get(parts[0], _MISSING)
    for part in parts[1:]:
        if not isinstance(node, dict):
            return _MISSING
        node = node.get(part, _MISSING)
    return node


def _pop(obj: dict[str, Any], path: str) -> None:
    """Remove what :func:`_get` found; nested parents left empty go too."""
    if path in obj or "." not in path:
        obj.pop(path, None)
        return
    parts = path.split(".")
    chain = [obj]
    for part in parts[:-1]:
        chain.append(chain[-1][part])
    del chain[-1][parts[-1]]
    for depth in range(len(parts) - 1, 0, -1):
        if chain[depth]:
            break
        del chain[depth - 1][parts[depth - 1]]


def _has(obj: Mapping[str, Any], path: str) -> bool:
    return _get(obj, path) is not _MISSING


# --- values ------------------------------------------------------------------------------

_NO_ZONE: Final = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?", re.ASCII)
_ZONE: Final = re.compile(r"(Z|z|[+-]\d{2}:?\d{2})$", re.ASCII)
_seconds_cache: list[Any] = [None, ""]
#: rules.TIMESTAMP_RE's date and time part (an asctime's, once its space is a T)
_ASCTIME_HEAD: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", re.ASCII)
_asctime_cache: list[Any] = [None, None]


def _utc_seconds(secs: int) -> str:
    # Formatting the same second again is common (many lines per second): cache one.
    if _seconds_cache[0] != secs:
        _seconds_cache[0] = secs
        _seconds_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    text: str = _seconds_cache[1]
    return text


def _from_epoch(value: int | float) -> tuple[str, bool] | None:
    """Epoch seconds/millis/micros/nanos -> RFC 3339 UTC (the number's own digits, not a
    float's binary expansion), and whether fraction digits were cut (past nanoseconds)."""
    if value.__class__ is float and 1e9 <= value < 1e11:
        # The usual case (zap's seconds): repr has no exponent in this range and at most seven
        # fraction digits, and the year is 2001 to 5138.
        whole, _, frac = repr(value).partition(".")
        frac = frac.rstrip("0")
        stamp = _utc_seconds(int(whole))
        return (f"{stamp}.{frac}Z" if frac else f"{stamp}Z"), False
    if isinstance(value, bool) or value <= 0:
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    if "e" in text or "E" in text or "inf" in text or "nan" in text:
        from decimal import Decimal

        try:
            text = format(Decimal(text), "f")
        except ArithmeticError:
            return None
    whole, _, frac = text.partition(".")
    digits = len(whole)
    # Scale to seconds by magnitude: 1e11 s is the year 5138, 1e11 ms is 1973.
    shift = 0 if digits <= 11 else 3 if digits <= 14 else 6 if digits <= 17 else 9
    if shift:
        frac = whole[-shift:] + frac
        whole = whole[:-shift]
    frac = frac.rstrip("0")
    cut = len(frac) > 9
    frac = frac[:9]
    try:
        stamp = _utc_seconds(int(whole))
    except (OverflowError, ValueError, OSError):
        return None
    if stamp[:4] > "9999" or len(stamp) != 19:
        return None
    return (f"{stamp}.{frac}Z" if frac else f"{stamp}Z"), cut


def _rfc3339_shape(v: str) -> bool:
    # A cheap look for the usual RFC 3339 shape (date, "T", an upper-case zone); anything else
    # is looked at closely. Whether it is a real date is the validator's to say.
    return len(v) >= 20 and v[10] == "T" and (v[-1] == "Z" or (v[-3] == ":" and v[-6] in "+-"))


def to_timestamp(value: object) -> tuple[str, bool] | None:
    """A schema v1 timestamp for ``value`` and whether detail was lost (``None``: cannot).

    RFC 3339 is kept; ``+0100`` offsets get their colon, lower-case ``t``/``z`` are raised;
    epoch numbers become UTC; a time without zone (Python's ``asctime``, ``2024-05-01
    12:30:02,123``) is read as UTC, which is a loss (the writer's zone is not known).
    """
    if type(value) is str:
        if len(value) == 23 and value[10] == " " and value[19] == ",":
            # Python's asctime, 2024-05-01 12:30:02,123 (the usual case: its second is
            # looked at once, its milliseconds are three ASCII digits)
            head = value[:19]
            if _asctime_cache[0] != head:
                out = f"{value[:10]}T{value[11:19]}"
                _asctime_cache[:] = (head, out if _ASCTIME_HEAD.fullmatch(out) else None)
            frac = value[20:]
            if _asctime_cache[1] is None or not (frac.isdigit() and frac.isascii()):
                return None
            return f"{_asctime_cache[1]}.{frac}Z", True
        if _rfc3339_shape(value) or rules.TIMESTAMP_RE.fullmatch(value):
            return value, False  # (the validator checks the rest, calendar included)
    elif isinstance(value, (int, float)):
        return _from_epoch(value)
    else:
        return None
    m = _NO_ZONE.match(value)
    if m is None:
        return None
    rest = value[m.end() :]
    frac = m.group(3) or ""
    lost = len(frac) > 9
    base = f"{m.group(1)}T{m.group(2)}" + (f".{frac[:9]}" if frac else "")
    if not rest:
        out, lost = base + "Z", True
    else:
        z = _ZONE.fullmatch(rest)
        if z is None:
            return None
        zone = z.group(1).upper()
        if zone != "Z" and ":" not in zone:
            zone = f"{zone[:3]}:{zone[3:]}"
        out = base + zone
    # The shape only: whether the date exists is the validator's to say.
    return (out, lost) if rules.TIMESTAMP_RE.fullmatch(out) else None


_OFFSET: Final = re.compile(r"(DEBUG|INFO|WARN|ERROR)([+-]\d{1,6})", re.ASCII)
_SLOG_BASE: Final = {"DEBUG": -4, "INFO": 0, "WARN": 4, "ERROR": 8}


def to_level(d: Dialect, value: object) -> tuple[str, bool] | None:
    """The schema level of a level value in dialect ``d`` and whether detail was lost."""
    if not isinstance(value, str):
        return None
    key = value.upper() if d.level_ci else value
    hit = d.levels.get(key)
    if hit is not None:
        return hit, False
    hit = d.collapsed.get(key)
    if hit is not None:
        return hit, True
    if value in rules.LEVELS:
        return value, False
    if d.level_offsets:
        m = _OFFSET.fullmatch(value)
        if m is not None:
            # slog's ranges: below INFO is DEBUG, below WARN is INFO, below ERROR is WARN.
            n = _SLOG_BASE[m.group(1)] + int(m.group(2))
            level = "DEBUG" if n < 0 else "INFO" if n < 4 else "WARN" if n < 8 else "ERROR"
            return level, True
    return None


_HEX32: Final = re.compile(r"[0-9a-fA-F]{32}", re.ASCII)
_HEX16: Final = re.compile(r"[0-9a-fA-F]{16}", re.ASCII)
_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", re.ASCII)


# --- conversion --------------------------------------------------------------------------


@dataclass
class Conversion:
    """What was done to a line (for ``obskit validate``'s hint)."""

    obj: dict[str, Any] = field(default_factory=dict)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


_TS_SHAPE: Final = rules.TIMESTAMP_RE.fullmatch
_SERVICE_SHAPE: Final = rules.SERVICE_RE.fullmatch
_LEVEL_SET: Final = frozenset(rules.LEVELS)
_V1_SET: Final = frozenset(_V1_ORDER)
_NOT_FOUND: Final[Any] = object()


def _message_value(value: object) -> tuple[str, bool] | None:
    return (value, False) if type(value) is str else None


def _service_value(value: object) -> tuple[str, bool] | None:
    return (value, False) if type(value) is str and _SERVICE_SHAPE(value) else None


def _move(
    obj: dict[str, Any],
    out: dict[str, Any],
    name: str,
    keys: tuple[str, ...],
    fix: Callable[[Any], tuple[Any, bool] | None],
    notes: Conversion | None,
) -> Any:
    """Take ``name`` from the first of ``keys`` whose value ``fix`` accepts: ``_NOT_FOUND``,
    ``None``, or ``(key, original value)`` when the conversion lost detail."""
    for key in keys:
        val = obj.get(key, _MISSING)
        if val is _MISSING:
            if "." not in key:
                continue
            val = _get(obj, key)
            if val is _MISSING:
                continue
        got = fix(val)
        if got is None:
            continue
        new, lost = got
        if key in obj:
            del obj[key]
        else:
            _pop(obj, key)
        out[name] = new
        if notes is not None:
            if key != name:
                notes.renamed.append((key, name))
            if new != val:
                notes.converted.append(f"{name} {_short(val)} -> {_short(new)}")
        return (key, val) if lost else None
    return _NOT_FOUND


def _convert(
    obj: dict[str, Any], d: Dialect, service: str | None, notes: Conversion | None
) -> tuple[dict[str, Any], bool]:
    # Written for speed: the sidecar runs it per line. A value already under its schema key
    # in the right shape stays (the validator checks it all afterwards); the usual case, the
    # value where the dialect puts it and in shape, is handled inline; anything else goes
    # the general way (_move), which also explains itself for hints.
    out: dict[str, Any] = {}
    original: dict[str, Any] = {}
    changed = leftover = False
    inline = notes is None
    for name, keys, fix in d.fields:
        cur = obj.get(name, _MISSING)
        if cur is not _MISSING:
            if cur.__class__ is str and (
                name == "message"
                or name == "service"
                or (name == "level" and cur in _LEVEL_SET)
                or (name == "timestamp" and _rfc3339_shape(cur))
            ):
                out[name] = obj.pop(name)
                continue
            leftover = True
        elif inline:
            for key in keys:
                val = obj.get(key, _MISSING)
                if val is _MISSING:
                    continue
                new: Any = None
                if val.__class__ is str:
                    if name == "level":
                        new = d.levels.get(val.upper() if d.level_ci else val)
                    elif name == "message" or (name == "timestamp" and _rfc3339_shape(val)):
                        new = val
                elif name == "timestamp" and val.__class__ in (int, float):
                    got = _from_epoch(val)
                    new = got[0] if got is not None and not got[1] else None
                if new is not None:
                    del obj[key]
                    out[name] = new
                    changed = True
                break  # the first key present decides; anything unusual goes the general way
            if name in out:
                continue
        got = _move(obj, out, name, keys, fix, notes) if keys else _NOT_FOUND
        if got is not _NOT_FOUND:
            changed = True
            if got is not None:
                original[got[0]] = got[1]
        elif name == "level":
            if d.level_absent and not any(_has(obj, k) for k in keys):
                out["level"] = d.level_absent
                changed = True
        elif name == "service" and service is not None and "service" not in obj:
            out["service"] = service
            changed = True
            if notes is not None:
                notes.added.append("service")
    return _finish(obj, out, original, changed, leftover, d, notes)


def _convert_fast(
    obj: dict[str, Any], d: Dialect, service: str | None
) -> tuple[dict[str, Any], bool] | None:
    """:func:`_convert` without notes for the usual lines, in fewer steps (the sidecar's path):
    each schema field where the dialect puts it, or already under its schema key in shape.
    ``None`` for anything else; ``obj`` may then have been changed: decode the line again and
    use :func:`_convert`, which is the reference (``tests/schema/test_dialect_fast_path.py``
    holds the two to the same output).

    Relies on the shapes :func:`_fast_fits` checks: time and message keys are top-level
    names, and there is one level key and at most one service key."""
    pop = obj.pop
    out: dict[str, Any] = {}
    original: dict[str, Any] = {}
    changed = leftover = False
    # timestamp: the first of the dialect's keys present decides (as in _convert)
    cur = pop("timestamp", _MISSING)
    if cur is not _MISSING:
        if cur.__class__ is not str or not _rfc3339_shape(cur):
            return None
        out["timestamp"] = cur
    else:
        for key in d.time:
            val = pop(key, _MISSING)
            if val is _MISSING:
                continue
            if val.__class__ is str and _rfc3339_shape(val):
                out["timestamp"] = val
            else:
                got = to_timestamp(val)
                if got is None:
                    return None
                out["timestamp"] = got[0]
                if got[1]:
                    original[key] = val
            changed = True
            break
    # level
    key = d.level[0]
    cur = pop("level", _MISSING)
    val = _MISSING
    if cur is not _MISSING:
        if cur.__class__ is str and cur in _LEVEL_SET:
            out["level"] = cur
        elif key == "level":  # the dialect's own key (zap, logrus, structlog)
            leftover = True
            val = cur
        else:
            return None
    else:
        val = pop(key, _MISSING)
        if val is _MISSING:
            if "." in key and key.split(".", 1)[0] in obj:
                return None  # perhaps nested
            if d.level_absent:
                out["level"] = d.level_absent
                changed = True
    if val is not _MISSING:
        hit = d.levels.get(val.upper() if d.level_ci else val) if val.__class__ is str else None
        if hit is not None:
            out["level"] = hit  # (to_level's first step)
        else:
            got = to_level(d, val)
            if got is None:
                return None
            out["level"] = got[0]
            if got[1]:
                original[key] = val
        changed = True
    # service
    cur = pop("service", _MISSING)
    if cur is not _MISSING:
        if cur.__class__ is str:
            out["service"] = cur
        elif d.service == ("service.name",) and cur.__class__ is dict and d.service[0] not in obj:
            # ECS's service object: its name is the service; anything else in it is kept aside
            leftover = True
            name = cur.pop("name", _MISSING)
            if name.__class__ is not str or not _SERVICE_SHAPE(name):
                return None
            out["service"] = name
            changed = True
            if cur:
                obj["service"] = cur  # (_finish keeps it aside)
        else:
            return None
    else:
        if d.service:
            val = pop(d.service[0], _MISSING)
            if val is not _MISSING:
                if val.__class__ is not str or not _SERVICE_SHAPE(val):
                    return None
                out["service"] = val
                changed = True
        if "service" not in out and service is not None:
            out["service"] = service
            changed = True
    # message
    cur = pop("message", _MISSING)
    if cur is not _MISSING:
        if cur.__class__ is not str:
            return None
        out["message"] = cur
    else:
        for key in d.message:
            val = pop(key, _MISSING)
            if val is _MISSING:
                continue
            if val.__class__ is not str:
                return None
            out["message"] = val
            changed = True
            break
    return _finish(obj, out, original, changed, leftover, d, None)


def _fast_fits(d: Dialect) -> bool:
    """Whether ``d`` has the shape :func:`_convert_fast` relies on."""
    return (
        all("." not in k for k in (*d.time, *d.message))
        and len(d.level) == 1
        and (d.service in ((), ("service.name",)))
    )


def _finish(
    obj: dict[str, Any],
    out: dict[str, Any],
    original: dict[str, Any],
    changed: bool,
    leftover: bool,
    d: Dialect,
    notes: Conversion | None,
) -> tuple[dict[str, Any], bool]:
    """After the schema fields (``out``, losses in ``original``): the trace ids, the
    dialect's renames, values kept aside (``leftover``: a schema key held another value),
    then the other keys in their order."""
    # Trace ids: schema v1 ones in shape stay (the usual case); other forms are looked for.
    done = False
    trace = obj.get("trace_id", _MISSING)
    if trace.__class__ is str and trace == trace.lower():
        out["trace_id"] = obj.pop("trace_id")
        span = obj.get("span_id", _MISSING)
        if span.__class__ is str and span == span.lower():
            out["span_id"] = obj.pop("span_id")
            done = True
    if not done:
        present = _ID_KEYS.intersection(obj)
        if present:
            changed = _take_ids(obj, out, notes, present) or changed
    for src, dst, head in d.rename_plan if not d.rename_keys.isdisjoint(obj) else ():
        if (src in obj or head in obj) and dst not in out and not _clashes(obj, src, dst):
            val = _get(obj, src)
            if val is not _MISSING:
                _pop(obj, src)
                out[dst] = val
                if src != dst:
                    changed = True
                    if notes is not None:
                        notes.renamed.append((src, dst))
    if leftover and not _V1_SET.isdisjoint(obj):
        for name in _V1_ORDER:
            if name in out and name in obj:
                # The key exists with a value schema v1 cannot hold (an ECS ``service``
                # object): keep that value aside.
                original[name] = obj.pop(name)
    out.update(obj)
    if original:
        changed = True
        prev = out.get(ORIGINAL_KEY)
        out[ORIGINAL_KEY] = {**prev, **original} if isinstance(prev, dict) else original
    return out, changed


def convert(obj: dict[str, Any], d: Dialect, service: str | None = None) -> Conversion:
    """Map one decoded line of dialect ``d`` to schema v1 (``Conversion.obj``) and say what
    was done; ``service`` is the value used when the line names none. The input dict is
    consumed. The result still has to pass the validator (a field the dialect does not supply
    stays missing)."""
    notes = Conversion()
    notes.obj, _ = _convert(obj, d, service, notes)
    return notes


def _clashes(obj: dict[str, Any], src: str, dotted: str) -> bool:
    # ``error.stack`` next to a string ``error`` (zap's and logrus' error field) is a mapping
    # conflict in Elasticsearch, which reads dotted names as object paths: leave it. And a
    # target that exists already is never overwritten.
    if dotted in obj and dotted != src:
        return True
    head = dotted.split(".", 1)[0]
    return head != dotted and head in obj and not isinstance(obj[head], dict)


#: Top-level keys that may hold a trace or span id (for a dotted name, its first part too).
_ID_KEYS: Final = frozenset(
    part for k in (*TRACE_KEYS, *SPAN_KEYS, *TRACEPARENT_KEYS) for part in {k, k.split(".", 1)[0]}
)


#: Per set of id keys seen in a line, the trace and span keys worth looking at, in order (a
#: file's lines mostly share one set); bounded against hostile input.
_IdKeys = tuple[tuple[str, str, str | None], ...]
_ID_PLANS: dict[frozenset[str], tuple[_IdKeys, _IdKeys]] = {}


def _id_plan(present: frozenset[str]) -> tuple[_IdKeys, _IdKeys]:
    # Each key as (key, first part, rest or None): the id keys' dotted names have two parts.
    plan = _ID_PLANS.get(present)
    if plan is None:
        trace, span = (
            tuple(
                (k, head, tail or None)
                for k in keys
                for head, _, tail in [k.partition(".")]
                if k in present or head in present
            )
            for keys in (TRACE_KEYS, SPAN_KEYS)
        )
        if len(_ID_PLANS) >= 512:
            _ID_PLANS.clear()
        plan = _ID_PLANS[present] = (trace, span)
    return plan


def _take_ids(
    obj: dict[str, Any], out: dict[str, Any], notes: Conversion | None, present: frozenset[str]
) -> bool:
    """Trace and span ids in another form (``present``: the line's keys in ``_ID_KEYS``)."""
    changed = False
    trace_keys, span_keys = _id_plan(present)
    for name, keys, pattern in (
        ("trace_id", trace_keys, _HEX32),
        ("span_id", span_keys, _HEX16),
    ):
        if name in out:
            continue
        cur = obj.get(name, _MISSING)
        if cur is not _MISSING and (cur is None or (type(cur) is str and cur == cur.lower())):
            out[name] = obj.pop(name)  # (whether it is hex is the validator's to say)
            continue
        for key, head, tail in keys:
            val = obj.get(key, _MISSING)
            node: Any = None
            if val is _MISSING:
                if tail is None:
                    continue
                node = obj.get(head)  # (_get and _pop for a name of two parts, inline)
                if not isinstance(node, dict):
                    continue
                val = node.get(tail, _MISSING)
                if val is _MISSING:
                    continue
            if not (isinstance(val, str) and pattern.fullmatch(val)):
                continue
            hexid = val.lower()
            if not hexid.strip("0"):
                continue
            if node is None:
                del obj[key]
            else:
                del node[tail]
                if not node:
                    del obj[head]
            out[name] = hexid
            changed = True
            if notes is not None:
                if key != name:
                    notes.renamed.append((key, name))
                elif hexid != val:
                    notes.converted.append(f"{name} lower-cased")
            break
    if "trace_id" in out:
        return changed
    for key in TRACEPARENT_KEYS:
        val = obj.get(key)
        m = _TRACEPARENT.fullmatch(val.lower()) if isinstance(val, str) else None
        if m is not None and m.group(1).strip("0") and m.group(2).strip("0"):
            obj.pop(key)
            out["trace_id"] = m.group(1)
            out.setdefault("span_id", m.group(2))
            if notes is not None:
                notes.renamed.append((key, "trace_id/span_id"))
            return True
    return changed


def _short(value: object) -> str:
    text = value if isinstance(value, str) else _ENCODE(value).decode()
    return text if len(text) <= 40 else text[:40] + "…"


def detect(obj: Mapping[str, Any]) -> Dialect | None:
    """The dialect a decoded line looks like, or ``None`` (schema v1 lines match none)."""
    for d in DIALECTS:
        for sig in d.signatures:
            if all(_has(obj, k) for k in sig):
                break
        else:
            continue
        if d.level_case is not None:
            level = _get(obj, d.level[0])
            if not isinstance(level, str) or not level[:1].isalpha():
                continue
            if (d.level_case == "upper") != level[:1].isupper():
                continue
        return d
    return None


def convert_line(
    line: bytes, dialect: Dialect | None, service: str | None = None, *, explain: bool = False
) -> tuple[bytes, Conversion | None, Dialect] | None:
    """Convert one line; ``dialect`` ``None`` detects it. ``None`` when the line is not a
    JSON object, matches no dialect, or needs no change. With ``explain``, also what was done
    (for hints; the sidecar's path skips it)."""
    try:
        # msgspec, not orjson: orjson reads an integer beyond 64 bits as a float (loses it).
        obj = _DECODE(line)
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    d = dialect if dialect is not None else detect(obj)
    if d is None:
        return None
    if not explain:
        got = _convert_decoded(obj, line, d, service)
        return None if got is None else (got, None, d)
    notes = Conversion()
    out, changed = _convert(obj, d, service, notes)
    if not changed:
        return None
    notes.obj = out
    return _ENCODE(out), notes, d


def _convert_decoded(
    obj: dict[str, Any], line: bytes, d: Dialect, service: str | None
) -> bytes | None:
    """``line`` (decoded: ``obj``, consumed) converted from ``d``; ``None``: no change."""
    got = _convert_fast(obj, d, service) if d.fast else None
    if got is None:
        if d.fast:
            obj = _DECODE(line)  # the fast path may have changed it
        got = _convert(obj, d, service, None)
    return _ENCODE(got[0]) if got[1] else None


def convert_lines(
    lines: list[bytes], dialect: Dialect | None, service: str | None = None
) -> tuple[list[bytes], list[int], list[str]]:
    """:func:`convert_line` over ``lines`` (the sidecar's path): the lines, converted where
    that changed them; the indexes of those; and the dialect each was converted from. Only
    lines that start with ``{`` are looked at (crash output and blank lines are not JSON)."""
    out = list(lines)
    changed: list[int] = []
    names: list[str] = []
    decode, detect_, convert = _DECODE, detect, _convert_decoded
    for i, line in enumerate(lines):
        if not line.startswith(b"{"):
            continue
        try:
            obj = decode(line)
        except msgspec.DecodeError:
            continue
        d = dialect if dialect is not None else detect_(obj)
        if d is None:
            continue
        new = convert(obj, line, d, service)
        if new is not None:
            out[i] = new
            changed.append(i)
            names.append(d.name)
    return out, changed, names


_DECODE: Final = msgspec.json.Decoder().decode
_ENCODE: Final = msgspec.json.Encoder().encode


def hint(conv: Conversion, d: Dialect, path: str) -> str:
    """``looks like Go log/slog: rename msg -> message, time -> timestamp; or let the sidecar
    convert it with schema.dialects: [...]`` for ``obskit validate``."""
    steps: list[str] = []
    if conv.renamed:
        steps.append("rename " + ", ".join(f"{a} -> {b}" for a, b in conv.renamed))
    steps.extend(conv.converted)
    if conv.added:
        steps.append("add " + ", ".join(conv.added))
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    name = "*.log" if name in ("", "-") else name
    entry = f'{{include: ["{name}"], dialect: {d.name}'
    entry += ", service: <name>}" if conv.added else "}"
    what = "; ".join(steps) if steps else "already schema v1 once converted"
    return (
        f"looks like {d.title}: {what}; "
        f"or let the sidecar convert it with schema.dialects: [{entry}]"
    )
