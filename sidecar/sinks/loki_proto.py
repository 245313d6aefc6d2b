"""A hand-written encoder for Loki's ``PushRequest`` (see ``push.proto`` next to this file).

Why by hand: building one message object per entry with the ``protobuf`` runtime costs several
microseconds per line; here an entry is a handful of byte-string pieces appended to a list and
joined once per stream. Only what the sink writes is supported: field numbers and wire types
are those of grafana/loki ``pkg/push/push.proto``; zero-valued fields are omitted as proto3
does. The tests decode the output with the official runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cramjam

from sidecar.sinks.accel import ACCEL
from sidecar.sinks.protowire import SMALL as _SMALL
from sidecar.sinks.protowire import varint

# Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
_T_STREAM = b"\x0a"  # PushRequest.streams = 1
_T_LABELS = b"\x0a"  # StreamAdapter.labels = 1
_T_ENTRY = b"\x12"  # StreamAdapter.entries = 2
_T_TS = b"\x0a"  # EntryAdapter.timestamp = 1
_T_LINE = b"\x12"  # EntryAdapter.line = 2
_T_SM = b"\x1a"  # EntryAdapter.structuredMetadata = 3
_T_SECONDS = b"\x08"  # Timestamp.seconds = 1
_T_NANOS = b"\x10"  # Timestamp.nanos = 2


def label_pair(name: str, value: str) -> bytes:
    """One ``structuredMetadata`` entry, tag and length included; concatenate several."""
    nb, vb = name.encode(), value.encode()
    body = b"\x0a" + varint(len(nb)) + nb + b"\x12" + varint(len(vb)) + vb
    return _T_SM + varint(len(body)) + body


# Field headers (tag + length) for every length below 16384, looked up instead of built.
_ENTRY_HDR = [_T_ENTRY + v for v in _SMALL]
_LINE_HDR = [_T_LINE + v for v in _SMALL]
_TS_HDR = [_T_TS + v for v in _SMALL[:128]]

# Neighbouring lines share their second, and at millisecond precision often their
# nanoseconds: both varints are cached (bounded).
_SECS: dict[int, bytes] = {}
_NANOS: dict[int, bytes] = {0: b""}


def _secs(s: int) -> bytes:
    if len(_SECS) > 4096:
        _SECS.clear()
    b = _SECS[s] = _T_SECONDS + varint(s)
    return b


def _nanos(ns: int) -> bytes:
    if len(_NANOS) > 2048:
        _NANOS.clear()
        _NANOS[0] = b""
    b = _NANOS[ns] = _T_NANOS + varint(ns)
    return b


def encode_stream_py(
    labels: str, ts: Sequence[int], lines: Sequence[bytes], sm: Sequence[bytes] | None = None
) -> bytes:
    """:func:`encode_stream` in pure Python: the reference the C loop is tested against, and
    what runs where the C extension was not built."""
    secs, nanos = _SECS, _NANOS
    entry_hdr, line_hdr, ts_hdr = _ENTRY_HDR, _LINE_HDR, _TS_HDR
    parts: list[bytes] = []
    extend = parts.extend
    size = 0
    metas = sm if sm is not None else [b""] * len(lines)
    for t, line, meta in zip(ts, lines, metas, strict=True):
        s, ns = divmod(t, 1_000_000_000)
        sb = secs.get(s) or _secs(s)
        nb = nanos.get(ns)
        if nb is None:
            nb = _nanos(ns)
        tl = len(sb) + len(nb)
        n = len(line)
        lh = line_hdr[n] if n < 16384 else _T_LINE + varint(n)
        elen = 2 + tl + len(lh) + n + len(meta)
        eh = entry_hdr[elen] if elen < 16384 else _T_ENTRY + varint(elen)
        extend((eh, ts_hdr[tl], sb, nb, lh, line, meta))
        size += len(eh) + elen
    lb = labels.encode()
    head = _T_LABELS + varint(len(lb)) + lb
    return b"".join([_T_STREAM, varint(len(head) + size), head, *parts])


_CTraceMeta = Callable[[list[object], list[object]], list[bytes | None]]
_CEncoder = Callable[[str, Sequence[int], Sequence[bytes], Sequence[bytes] | None], bytes | None]


#: ``sidecar/sinks/_accel.c``'s ``encode_stream`` and ``trace_metadata_list`` when it was
#: built, else ``None``.
_c_encode: _CEncoder | None = ACCEL.encode_stream if ACCEL else None
_c_trace_meta: _CTraceMeta | None = ACCEL.trace_metadata_list if ACCEL else None


def encode_stream(
    labels: str, ts: Sequence[int], lines: Sequence[bytes], sm: Sequence[bytes] | None = None
) -> bytes:
    """One ``PushRequest.streams`` field: the stream ``labels`` selector and its entries.

    ``lines`` are UTF-8 bytes; ``sm[i]`` the entry's encoded structured metadata (from
    :func:`label_pair`, ``b""`` for none). Concatenate streams to get a ``PushRequest``.
    The C loop (about 10x faster) takes lists of ints and bytes; anything else, or anything
    it does not handle, goes through :func:`encode_stream_py`, byte for byte the same.
    """
    if _c_encode is not None:
        out = _c_encode(labels, ts, lines, sm)
        if out is not None:
            return out
    return encode_stream_py(labels, ts, lines, sm)


#: structuredMetadata headers for a 32-byte trace_id / 16-byte span_id value.
TRACE_HDR = _T_SM + varint(44) + b"\x0a\x08trace_id\x12\x20"  # 32-hex trace id
SPAN_HDR = _T_SM + varint(27) + b"\x0a\x07span_id\x12\x10"  # 16-hex span id


def trace_metadata(trace_id: str, span_id: str | None) -> bytes:
    """``trace_id`` (and ``span_id``) structured metadata; fast for W3C-sized ids."""
    tb = trace_id.encode()
    out = TRACE_HDR + tb if len(tb) == 32 else label_pair("trace_id", trace_id)
    if span_id:
        sb = span_id.encode()
        out += SPAN_HDR + sb if len(sb) == 16 else label_pair("span_id", span_id)
    return out


def compress(push_request: bytes) -> bytes:
    """Snappy block format, as Loki expects for ``application/x-protobuf``."""
    return bytes(cramjam.snappy.compress_raw(push_request))


def trace_metadata_list_py(trace_ids: Sequence[object], span_ids: Sequence[object]) -> list[bytes]:
    """:func:`trace_metadata_list` in pure Python: the reference for the C loop."""
    return [
        trace_metadata(tid, sid or None) if tid else b""  # type: ignore[arg-type]
        for tid, sid in zip(trace_ids, span_ids, strict=True)
    ]


def trace_metadata_list(trace_ids: list[object], span_ids: list[object]) -> list[bytes]:
    """Each entry's structured metadata (:func:`trace_metadata`; ``b""`` without a trace id)
    from its record's ``trace_id`` and ``span_id`` (``str``, ``None`` or ``UNSET``)."""
    if _c_trace_meta is None:
        return trace_metadata_list_py(trace_ids, span_ids)
    out = _c_trace_meta(trace_ids, span_ids)
    if None in out:  # ids of other sizes: in Python
        return [
            m if m is not None else trace_metadata(t, s or None)  # type: ignore[arg-type]
            for m, t, s in zip(out, trace_ids, span_ids, strict=True)
        ]
    return out  # type: ignore[return-value]
