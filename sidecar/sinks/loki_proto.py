"""A hand-written encoder for Loki's ``PushRequest`` (see ``push.proto`` next to this file).

Why by hand: building one message object per entry with the ``protobuf`` runtime costs several
microseconds per line; here an entry is a handful of byte-string pieces appended to a list and
joined once per stream. Only what the sink writes is supported: field numbers and wire types
are those of grafana/loki ``pkg/push/push.proto``; zero-valued fields are omitted as proto3
does. The tests decode the output with the official runtime.
"""

from __future__ import annotations

from collections.abc import Sequence

import cramjam

# Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
_T_STREAM = b"\x0a"  # PushRequest.streams = 1
_T_LABELS = b"\x0a"  # StreamAdapter.labels = 1
_T_ENTRY = b"\x12"  # StreamAdapter.entries = 2
_T_TS = b"\x0a"  # EntryAdapter.timestamp = 1
_T_LINE = b"\x12"  # EntryAdapter.line = 2
_T_SM = b"\x1a"  # EntryAdapter.structuredMetadata = 3
_T_SECONDS = b"\x08"  # Timestamp.seconds = 1
_T_NANOS = b"\x10"  # Timestamp.nanos = 2

_SMALL = [bytes((i,)) for i in range(128)] + [
    bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(128, 1 << 14)
]


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (two's complement for negatives, 10 bytes)."""
    if n < 16384:
        if n >= 0:
            return _SMALL[n]
        n += 1 << 64
    if n < 1 << 21:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    if n < 1 << 28:
        return bytes(
            ((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, n >> 21)
        )
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def label_pair(name: str, value: str) -> bytes:
    """One ``structuredMetadata`` entry, tag and length included; concatenate several."""
    nb, vb = name.encode(), value.encode()
    body = b"\x0a" + varint(len(nb)) + nb + b"\x12" + varint(len(vb)) + vb
    return _T_SM + varint(len(body)) + body


class _TsCache:
    """Timestamps of neighbouring lines share their second (and often their nanoseconds at
    millisecond precision): cache both varints."""

    __slots__ = ("nanos", "secs")

    def __init__(self) -> None:
        self.secs: dict[int, bytes] = {}
        self.nanos: dict[int, bytes] = {}

    def encode(self, ts: int) -> bytes:
        s, ns = divmod(ts, 1_000_000_000)
        sb = self.secs.get(s)
        if sb is None:
            if len(self.secs) > 4096:
                self.secs.clear()
            sb = self.secs[s] = _T_SECONDS + varint(s)
        if not ns:
            return sb
        nb = self.nanos.get(ns)
        if nb is None:
            if len(self.nanos) > 65536:
                self.nanos.clear()
            nb = self.nanos[ns] = _T_NANOS + varint(ns)
        return sb + nb


_TS = _TsCache()


def encode_stream(
    labels: str, ts: Sequence[int], lines: Sequence[bytes], sm: Sequence[bytes] | None = None
) -> bytes:
    """One ``PushRequest.streams`` field: the stream ``labels`` selector and its entries.

    ``lines`` are UTF-8 bytes; ``sm[i]`` the entry's encoded structured metadata (from
    :func:`label_pair`, ``b""`` for none). Concatenate streams to get a ``PushRequest``.
    """
    enc = _TS.encode
    small = _SMALL
    parts: list[bytes] = []
    append = parts.append
    for i, line in enumerate(lines):
        tsb = enc(ts[i])
        n = len(line)
        vl = small[n] if n < 16384 else varint(n)
        meta = sm[i] if sm is not None else b""
        elen = 2 + len(tsb) + 1 + len(vl) + n + len(meta)
        append(_T_ENTRY)
        append(small[elen] if elen < 16384 else varint(elen))
        append(_T_TS)
        append(small[len(tsb)])
        append(tsb)
        append(_T_LINE)
        append(vl)
        append(line)
        if meta:
            append(meta)
    lb = labels.encode()
    head = _T_LABELS + varint(len(lb)) + lb
    body_len = len(head) + sum(map(len, parts))
    return b"".join([_T_STREAM, varint(body_len), head, *parts])


def compress(push_request: bytes) -> bytes:
    """Snappy block format, as Loki expects for ``application/x-protobuf``."""
    return bytes(cramjam.snappy.compress_raw(push_request))
