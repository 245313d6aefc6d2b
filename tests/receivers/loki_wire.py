"""Loki's wire formats as the test receiver sees them, built independently of the sink.

The protobuf ``PushRequest`` is decoded with the official ``protobuf`` runtime from
descriptors built here (mirroring grafana/loki ``pkg/push/push.proto``), never with the
sink's hand-written encoder, so a sink bug cannot hide behind a matching decoder bug.
Label strings and time formats follow what Loki prints in its error texts:
Prometheus ``labels.Labels.String()`` and Go's ``time.Time.String()`` / RFC 3339.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

# --- protobuf descriptors (grafana/loki pkg/push/push.proto, package logproto) ---------------

_FDP = descriptor_pb2.FieldDescriptorProto


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(
        name="obskit_tests/push.proto",
        package="logproto",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )

    def msg(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> None:
        m = f.message_type.add(name=name)
        for fname, num, ftype, label, type_name in fields:
            fd = m.field.add(name=fname, number=num, type=ftype, label=label)  # type: ignore[arg-type]
            if type_name:
                fd.type_name = type_name

    opt, rep = _FDP.LABEL_OPTIONAL, _FDP.LABEL_REPEATED
    msg("PushRequest", [("streams", 1, _FDP.TYPE_MESSAGE, rep, ".logproto.StreamAdapter")])
    msg("PushResponse", [])
    msg(
        "StreamAdapter",
        [
            ("labels", 1, _FDP.TYPE_STRING, opt, None),
            ("entries", 2, _FDP.TYPE_MESSAGE, rep, ".logproto.EntryAdapter"),
            ("hash", 3, _FDP.TYPE_UINT64, opt, None),
        ],
    )
    msg(
        "EntryAdapter",
        [
            ("timestamp", 1, _FDP.TYPE_MESSAGE, opt, ".google.protobuf.Timestamp"),
            ("line", 2, _FDP.TYPE_STRING, opt, None),
            ("structuredMetadata", 3, _FDP.TYPE_MESSAGE, rep, ".logproto.LabelPairAdapter"),
        ],
    )
    msg(
        "LabelPairAdapter",
        [("name", 1, _FDP.TYPE_STRING, opt, None), ("value", 2, _FDP.TYPE_STRING, opt, None)],
    )
    pool.Add(f)
    return pool


POOL = _build_pool()
PushRequest: Any = message_factory.GetMessageClass(
    POOL.FindMessageTypeByName("logproto.PushRequest")
)


# --- decoded push -------------------------------------------------------------------------------


@dataclass
class Entry:
    ts: int  # unix ns
    line: str
    sm: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stream:
    labels: str  # as sent
    entries: list[Entry]


class DecodeError(ValueError):
    """The body is not a valid push payload (Loki answers 400 with the text)."""


def decode_protobuf(raw: bytes) -> list[Stream]:
    req = PushRequest()
    try:
        req.ParseFromString(raw)
    except Exception as exc:  # DecodeError from the runtime: malformed bytes
        raise DecodeError(f"proto: {exc}") from exc
    out = []
    for s in req.streams:
        entries = [
            Entry(
                e.timestamp.seconds * 1_000_000_000 + e.timestamp.nanos,
                e.line,
                [(p.name, p.value) for p in e.structuredMetadata],
            )
            for e in s.entries
        ]
        out.append(Stream(s.labels, entries))
    return out


def decode_json(raw: bytes) -> list[Stream]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"loghttp.PushRequest.Streams: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("streams", []), list):
        raise DecodeError("loghttp.PushRequest: expected an object with a streams array")
    out = []
    for s in doc.get("streams") or []:
        if not isinstance(s, dict):
            raise DecodeError("loghttp.PushRequest.Streams: expected an object")
        lbls = s.get("stream") or {}
        if not isinstance(lbls, dict) or not all(isinstance(v, str) for v in lbls.values()):
            raise DecodeError("loghttp.Stream.stream: expected an object of strings")
        entries = []
        for v in s.get("values") or []:
            if not isinstance(v, list) or len(v) not in (2, 3):
                raise DecodeError("loghttp.Entry: expected [timestamp, line(, metadata)]")
            ts, line = v[0], v[1]
            if not isinstance(ts, str) or not ts.isdigit() or not isinstance(line, str):
                raise DecodeError(f"loghttp.Entry.Timestamp: invalid timestamp {ts!r}")
            sm: list[tuple[str, str]] = []
            if len(v) == 3:
                if not isinstance(v[2], dict):
                    raise DecodeError("loghttp.Entry.StructuredMetadata: expected an object")
                sm = [(str(k), str(x)) for k, x in v[2].items()]
            entries.append(Entry(int(ts), line, sm))
        out.append(Stream(labels_string(lbls), entries))
    return out


# --- labels -------------------------------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def go_quote(s: str) -> str:
    """Close to Go's strconv.Quote for the characters that occur in label values."""
    return json.dumps(s, ensure_ascii=False)


def labels_string(lbls: dict[str, str]) -> str:
    """Prometheus ``labels.Labels.String()``: sorted by name, ``", "`` separated."""
    return "{" + ", ".join(f"{k}={go_quote(lbls[k])}" for k in sorted(lbls)) + "}"


class LabelParseError(ValueError):
    pass


def parse_labels(text: str) -> list[tuple[str, str]]:
    """Parse a push stream selector (only ``=`` matchers), keeping order and duplicates."""
    i, n = 0, len(text)

    def err(msg: str) -> LabelParseError:
        # The Prometheus label parser's format, as Loki 3 reports it.
        return LabelParseError(f"1:{i + 1}: parse error: {msg}")

    def ws() -> None:
        nonlocal i
        while i < n and text[i] in " \t\r\n":
            i += 1

    ws()
    if i >= n or text[i] != "{":
        raise (
            err("syntax error: unexpected IDENTIFIER, expecting {")
            if i < n
            else err("syntax error: unexpected $end")
        )
    i += 1
    out: list[tuple[str, str]] = []
    ws()
    if i < n and text[i] == "}":
        i += 1
    else:
        while True:
            ws()
            m = _NAME.match(text, i)
            if not m:
                c = text[i] if i < n else "}"
                raise err(f"unexpected character inside braces: {c!r}".replace('"', "'"))
            name = m.group(0)
            i = m.end()
            ws()
            if text.startswith("=~", i) or text.startswith("!", i):
                raise err("syntax error: only equality matchers are allowed in a stream")
            if i >= n or text[i] != "=":
                raise err("syntax error: unexpected character, expecting = or =~ or != or !~")
            i += 1
            ws()
            value, i2 = read_string(text, i)
            if value is None:
                raise err("syntax error: unexpected character, expecting STRING")
            i = i2
            out.append((name, value))
            ws()
            if i < n and text[i] == ",":
                i += 1
                continue
            if i < n and text[i] == "}":
                i += 1
                break
            raise err("syntax error: unexpected $end, expecting } or ,")
    ws()
    if i != n:
        raise err("syntax error: unexpected characters after }")
    return out


_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "`": "`", "0": "\0"}


def read_string(text: str, i: int) -> tuple[str | None, int]:
    """A Go-style double-quoted or back-quoted string at ``i``: (value, end) or (None, i)."""
    if i >= len(text):
        return None, i
    q = text[i]
    if q == "`":
        j = text.find("`", i + 1)
        return (None, i) if j < 0 else (text[i + 1 : j], j + 1)
    if q != '"':
        return None, i
    buf: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == '"':
            return "".join(buf), j + 1
        if c == "\\" and j + 1 < len(text):
            e = text[j + 1]
            if e == "u" and j + 6 <= len(text):
                buf.append(chr(int(text[j + 2 : j + 6], 16)))
                j += 6
                continue
            if e == "x" and j + 4 <= len(text):
                buf.append(chr(int(text[j + 2 : j + 4], 16)))
                j += 4
                continue
            buf.append(_ESC.get(e, e))
            j += 2
            continue
        buf.append(c)
        j += 1
    return None, i


# --- time formats -------------------------------------------------------------------------------


def _utc(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=ns // 10**9)


def go_time_string(ns: int) -> str:
    """Go ``time.Time.String()`` in UTC: ``2024-01-02 03:04:05.5 +0000 UTC``."""
    frac = ns % 10**9
    base = _utc(ns).strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + " +0000 UTC"


def rfc3339(ns: int) -> str:
    """Go ``time.RFC3339`` in UTC (no fraction): ``2024-01-02T03:04:05Z``."""
    return _utc(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time_param(value: str) -> int:
    """Loki's ``start``/``end``/``time``: unix ns (or seconds, float) or RFC 3339."""
    v = value.strip()
    if re.fullmatch(r"\d+", v):
        n = int(v)
        # Loki treats integers that are too small to be ns as seconds.
        return n if n > 10**12 else n * 10**9
    if re.fullmatch(r"\d+\.\d+", v):
        sec, frac = v.split(".")
        return int(sec) * 10**9 + int(frac[:9].ljust(9, "0"))
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f'cannot parse "{value}" to a valid timestamp') from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    # Keep nanoseconds that fromisoformat cannot represent.
    m = re.search(r"\.(\d+)", v)
    frac_ns = int(m.group(1)[:9].ljust(9, "0")) if m else 0
    return int(t.replace(microsecond=0).timestamp()) * 10**9 + frac_ns


def parse_duration(value: str) -> int:
    """A Prometheus/Go duration (``1h``, ``30m``, ``1h30m``) or seconds, in ns."""
    v = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", v):
        return int(float(v) * 10**9)
    units = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    units["d"] = 24 * units["h"]
    units["w"] = 7 * units["d"]
    total, pos = 0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d|w)", v):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * units[m.group(2)])
        pos = m.end()
    if pos != len(v) or not v:
        raise ValueError(f"invalid duration {value!r}")
    return total


def go_duration(ns: int) -> str:
    """Go ``time.Duration.String()`` for whole seconds: ``721h0m0s``."""
    s = ns // 10**9
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"
