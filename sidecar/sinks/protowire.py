"""Protocol Buffers wire format, the little the hand-written encoders need: varints for
writing, and a field reader for the small replies the sinks parse (OTLP responses,
``google.rpc.Status``). See https://protobuf.dev/programming-guides/encoding/."""

from __future__ import annotations

from collections.abc import Iterator

#: The varint of every value below 16384, looked up instead of built (lengths and small ints).
SMALL = [bytes((i,)) for i in range(128)] + [
    bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(128, 1 << 14)
]


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (two's complement for negatives, 10 bytes)."""
    if n < 16384:
        if n >= 0:
            return SMALL[n]
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


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (one byte or more), the length, ``payload``."""
    return tag + varint(len(payload)) + payload


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def read_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` of each field of a message, in order: an int for varint and
    fixed-size fields, bytes for length-delimited ones. Raises :class:`WireError` on
    malformed input (groups, truncation, field number 0)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, value
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise WireError("truncated length-delimited field")
            yield number, buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise WireError("truncated fixed-size field")
            yield number, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise WireError(f"unsupported wire type {wire}")
