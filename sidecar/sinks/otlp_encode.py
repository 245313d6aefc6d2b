"""OTLP logs encoding by hand: ``ExportLogsServiceRequest`` as protobuf or as OTLP/JSON.

Why by hand: the official ``opentelemetry-proto`` runtime builds a message object per record
and per attribute (see ``bench/bench_otlp.py`` for the measured cost); here a record is a
handful of byte strings joined once. Field numbers and wire types are those of
``opentelemetry/proto/logs/v1/logs.proto`` and ``common/v1/common.proto``; fields are written
in field-number order and zero values omitted, as the official serializer does, so the output
is byte-for-byte what it would produce (``tests/sinks/otlp/test_otlp_encode.py`` checks that,
and decodes the output with the official runtime).

The mapping of one schema v1 line (documented in ``docs/otlp.md``):

- ``time_unix_nano`` from ``timestamp``; ``observed_time_unix_nano`` from the read time;
- ``severity_number``/``severity_text`` from ``level`` (DEBUG 5, INFO 9, WARN 13, ERROR 17);
- ``body``: the ``message`` string (or, with ``body: line``, the whole line);
- ``trace_id``/``span_id``: the binary fields, decoded from hex;
- every other key of the line: an attribute, recursively (objects as ``kvlist_value``, arrays
  as ``array_value``, ``null`` as an empty value). Integers outside int64 and numbers a
  double cannot hold are sent as their decimal text (``string_value``), exactly; values
  nested deeper than :data:`MAX_DEPTH` levels as their JSON text. A schema key is left out
  only when its value is carried by the first-class field (a forwarded invalid line keeps
  its own ``level``, say, as an attribute): nothing of the line is lost.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import orjson

from obskit.schema.record import Record
from sidecar.sinks.protowire import SMALL, varint

#: ``level`` -> OTLP ``SeverityNumber`` (the first number of each range of the data model).
SEVERITY_NUMBER = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}
#: ``InstrumentationScope.name`` of every record.
SCOPE_NAME = "obskit-sidecar"
#: Objects and arrays nested deeper than this inside one attribute are sent as their JSON text:
#: each level is three protobuf messages, and common decoders stop at 100 (Python) nested
#: messages; 16 levels stay well inside that.
MAX_DEPTH = 16

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_pack_q = struct.Struct("<Q").pack
_pack_d = struct.Struct("<d").pack

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_T_TIME = b"\x09"  # LogRecord.time_unix_nano = 1 (fixed64)
_T_SEV_NUM = b"\x10"  # LogRecord.severity_number = 2
_T_SEV_TEXT = b"\x1a"  # LogRecord.severity_text = 3
_T_BODY = b"\x2a"  # LogRecord.body = 5
_T_ATTR = b"\x32"  # LogRecord.attributes = 6
_T_TRACE = b"\x4a\x10"  # LogRecord.trace_id = 9, 16 bytes
_T_SPAN = b"\x52\x08"  # LogRecord.span_id = 10, 8 bytes
_T_OBSERVED = b"\x59"  # LogRecord.observed_time_unix_nano = 11 (fixed64)
_T_RECORD = b"\x12"  # ScopeLogs.log_records = 2


def _schema_keys() -> frozenset[str]:
    return frozenset(Record.__struct_fields__)


#: The line's keys that have first-class fields (``timestamp``, ``level``, ...).
SCHEMA_KEYS = _schema_keys()


class _Number(str):
    """A JSON number no Python float or int64 holds as written, kept as its text."""


def _parse_float(text: str) -> float | _Number:
    value = float(text)
    return value if value - value == 0.0 else _Number(text)  # inf or nan: keep the text


def decode_line(line: bytes) -> Any:
    """The line's JSON value. msgspec (exact big integers); a number beyond a double (``1e999``,
    valid JSON) falls back to the standard library, keeping its text."""
    try:
        return msgspec.json.decode(line)
    except msgspec.DecodeError:
        return json.loads(line, parse_float=_parse_float)


# --- protobuf ------------------------------------------------------------------------------


def _pb_str(s: str) -> bytes:
    b = s.encode()
    n = len(b)
    return b"\x0a" + (SMALL[n] if n < 16384 else varint(n)) + b


def _pb_any(v: Any, depth: int) -> bytes:
    """An ``AnyValue`` message (without tag and length)."""
    t = type(v)
    if t is str:
        return _pb_str(v)
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        return b"\x18" + varint(v) if _I64_MIN <= v <= _I64_MAX else _pb_str(str(v))
    if t is float:
        return b"\x21" + _pack_d(v) if v - v == 0.0 else _pb_str(repr(v))
    if v is None:
        return b""
    if t is list or t is dict:
        if depth > MAX_DEPTH:
            return _pb_str(_json_text(v))
        if t is list:
            inner = b"".join(
                [b"\x0a" + varint(len(a)) + a for a in [_pb_any(x, depth + 1) for x in v]]
            )
            return b"\x2a" + varint(len(inner)) + inner
        inner = b"".join(
            [
                b"\x0a" + varint(len(kv)) + kv
                for kv in [_pb_kv(k, x, depth + 1) for k, x in v.items()]
            ]
        )
        return b"\x32" + varint(len(inner)) + inner
    return _pb_str(str(v))  # _Number


_KEYS: dict[str, bytes] = {}


def _pb_key(k: str) -> bytes:
    kb = _KEYS.get(k)
    if kb is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        b = k.encode()
        kb = _KEYS[k] = b"\x0a" + varint(len(b)) + b if b else b""
    return kb


def _pb_kv(k: str, v: Any, depth: int) -> bytes:
    """A ``KeyValue`` message (without tag and length)."""
    av = _pb_any(v, depth)
    return _pb_key(k) + b"\x12" + varint(len(av)) + av


def _json_text(v: Any) -> str:
    return msgspec.json.encode(v).decode()


def pb_attributes(pairs: Sequence[tuple[str, Any]], tag: bytes) -> bytes:
    """Repeated ``KeyValue`` fields with ``tag`` (``Resource.attributes``: ``b"\\x0a"``)."""
    out = []
    for k, v in pairs:
        kv = _pb_kv(k, v, 1)
        out.append(tag + varint(len(kv)) + kv)
    return b"".join(out)


def _severity_headers() -> dict[str, bytes]:
    return {
        level: _T_SEV_NUM + varint(num) + _T_SEV_TEXT + varint(len(level)) + level.encode()
        for level, num in SEVERITY_NUMBER.items()
    }


_SEV_HDR = _severity_headers()
#: ``LogRecord.body`` field header plus the ``string_value`` header, by message length.
_BODY_HDR = [_T_BODY + bytes((n + 2,)) + b"\x0a" + bytes((n,)) for n in range(126)]


def trace_bytes(value: object, size: int) -> bytes | None:
    """A W3C trace (``size`` 16) or span (8) id as bytes, or None when ``value`` is not
    ``2*size`` hex characters, or is all zeros (OTLP's "no id")."""
    if type(value) is not str or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)  # also takes spaces: then fewer bytes, refused below
    except ValueError:
        return None
    return raw if len(raw) == size and raw.count(0) != size else None


#: Encoded attribute fields of recent (key, string or bool value) pairs: low-cardinality
#: context (``logger``, ``env``...) repeats line after line.
_FIELDS: dict[tuple[str, Any], bytes] = {}


def pb_attribute(k: str, v: Any) -> bytes:
    """One ``LogRecord.attributes`` field (tag, length, ``KeyValue``)."""
    t = type(v)
    if t is str or t is bool:
        key = (k, v)
        f = _FIELDS.get(key)
        if f is not None:
            return f
        kv = _pb_kv(k, v, 1)
        n = len(kv)
        f = _T_ATTR + (SMALL[n] if n < 16384 else varint(n)) + kv
        if t is bool or len(v) <= 128:
            if len(_FIELDS) > 4096:
                _FIELDS.clear()
            _FIELDS[key] = f
        return f
    kv = _pb_kv(k, v, 1)
    n = len(kv)
    return _T_ATTR + (SMALL[n] if n < 16384 else varint(n)) + kv


# --- JSON ----------------------------------------------------------------------------------


def _js_any(v: Any, depth: int) -> dict[str, Any]:
    t = type(v)
    if t is str:
        return {"stringValue": v}
    if t is bool:
        return {"boolValue": v}
    if t is int:
        if _I64_MIN <= v <= _I64_MAX:
            return {"intValue": str(v)}  # int64 as a decimal string (proto3 JSON)
        return {"stringValue": str(v)}
    if t is float:
        return {"doubleValue": v} if v - v == 0.0 else {"stringValue": repr(v)}
    if v is None:
        return {}
    if t is list or t is dict:
        if depth > MAX_DEPTH:
            return {"stringValue": _json_text(v)}
        if t is list:
            return {"arrayValue": {"values": [_js_any(x, depth + 1) for x in v]}}
        return {"kvlistValue": {"values": [_js_kv(k, x, depth + 1) for k, x in v.items()]}}
    return {"stringValue": str(v)}


def _js_kv(k: str, v: Any, depth: int) -> dict[str, Any]:
    return {"key": k, "value": _js_any(v, depth)}


def js_attributes(pairs: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """``KeyValue`` objects of OTLP/JSON."""
    return [_js_kv(k, v, 1) for k, v in pairs]


# --- records and requests ------------------------------------------------------------------


class LogEncoder:
    """Encodes records and assembles requests in one wire format.

    ``encoding``: ``protobuf`` or ``json``; ``body``: ``message`` (the record's message, the
    other keys as attributes) or ``line`` (the whole line as the body, no attributes).
    """

    def __init__(
        self,
        encoding: Literal["protobuf", "json"] = "protobuf",
        body: Literal["message", "line"] = "message",
        scope_version: str = "",
    ) -> None:
        self.json = encoding == "json"
        self.body_line = body == "line"
        self.content_type = "application/json" if self.json else "application/x-protobuf"
        scope: dict[str, str] = {"name": SCOPE_NAME}
        if scope_version:
            scope["version"] = scope_version
        self._observed = 0
        self._observed_field = b""
        if self.json:
            self._scope = orjson.dumps(scope)
        else:
            self._scope = b"\x0a" + _scope_pb(scope)

    def attributes(
        self, line: bytes, rec: Record, tid: bytes | None, sid: bytes | None
    ) -> list[tuple[str, Any]]:
        """The line's keys that become attributes, in line order (see the module docstring:
        a schema key is left out when the first-class field carries its value)."""
        if self.body_line:
            return []
        obj = decode_line(line)
        if type(obj) is not dict:
            return []
        out = []
        for k, v in obj.items():
            if k in SCHEMA_KEYS:
                if k == "trace_id":
                    if tid is not None and v == rec.trace_id:
                        continue
                elif k == "span_id":
                    if sid is not None and v == rec.span_id:
                        continue
                elif v == getattr(rec, k):
                    continue
            out.append((k, v))
        return out

    def record(self, line: bytes, rec: Record, ts: int, observed: int) -> bytes:
        """One ``LogRecord``, framed as a ``ScopeLogs.log_records`` field (protobuf) or as a
        JSON object (OTLP/JSON). May raise for a line it cannot encode."""
        tid = trace_bytes(rec.trace_id, 16)
        sid = trace_bytes(rec.span_id, 8) if tid is not None else None
        attrs = self.attributes(line, rec, tid, sid)
        body = line.decode() if self.body_line else rec.message
        if self.json:
            d: dict[str, Any] = {}
            if ts:
                d["timeUnixNano"] = str(ts)
            if observed:
                d["observedTimeUnixNano"] = str(observed)
            d["severityNumber"] = SEVERITY_NUMBER[rec.level]
            d["severityText"] = rec.level
            d["body"] = {"stringValue": body}
            if attrs:
                d["attributes"] = js_attributes(attrs)
            if tid is not None:
                d["traceId"] = tid.hex()
                if sid is not None:
                    d["spanId"] = sid.hex()
            return orjson.dumps(d)
        bb = body.encode()
        n = len(bb)
        if n < 126:  # body AnyValue and its field header in two lookups
            head = _BODY_HDR[n]
        else:
            av = b"\x0a" + varint(n)
            head = _T_BODY + varint(len(av) + n) + av
        if observed != self._observed:
            self._observed = observed
            self._observed_field = _T_OBSERVED + _pack_q(observed) if observed else b""
        msg = b"".join(
            (
                _T_TIME + _pack_q(ts) if ts else b"",
                _SEV_HDR[rec.level],
                head,
                bb,
                b"".join([pb_attribute(k, v) for k, v in attrs]),
                _T_TRACE + tid if tid is not None else b"",
                _T_SPAN + sid if sid is not None else b"",
                self._observed_field,
            )
        )
        n = len(msg)
        return _T_RECORD + (SMALL[n] if n < 16384 else varint(n)) + msg

    def resource(self, attributes: Sequence[tuple[str, Any]]) -> bytes:
        """A ``Resource`` with ``attributes``: message bytes, or a JSON object."""
        if self.json:
            return orjson.dumps({"attributes": js_attributes(attributes)})
        return pb_attributes(attributes, b"\x0a")

    def request(self, groups: Sequence[tuple[bytes, Sequence[bytes]]]) -> bytes:
        """An ``ExportLogsServiceRequest``: one ``ResourceLogs`` per ``(resource, records)``
        group (from :meth:`resource` and :meth:`record`), each with one ``ScopeLogs``."""
        if self.json:
            rls = [
                b'{"resource":'
                + res
                + b',"scopeLogs":[{"scope":'
                + self._scope
                + b',"logRecords":['
                + b",".join(recs)
                + b"]}]}"
                for res, recs in groups
            ]
            return b'{"resourceLogs":[' + b",".join(rls) + b"]}"
        out = []
        for res, recs in groups:
            scope_logs = self._scope + b"".join(recs)
            rl = b"\x0a" + varint(len(res)) + res + b"\x12" + varint(len(scope_logs)) + scope_logs
            out.append(b"\x0a" + varint(len(rl)) + rl)
        return b"".join(out)


def _scope_pb(scope: dict[str, str]) -> bytes:
    """``ScopeLogs.scope`` body: ``InstrumentationScope`` name (1) and version (2)."""
    name = scope["name"].encode()
    msg = b"\x0a" + varint(len(name)) + name
    if scope.get("version"):
        v = scope["version"].encode()
        msg += b"\x12" + varint(len(v)) + v
    return varint(len(msg)) + msg
