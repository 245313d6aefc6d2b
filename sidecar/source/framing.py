"""Cutting blocks read from disk into chunks of complete lines (the "buffer"/framing step).

Works on whole blocks: the last newline is found with ``rfind`` and lines are split by the
engine, so no per-line Python objects are made for UTF-8 files. Lines over ``max_line`` are
found by probing the block every ``max_line // 2`` bytes (any longer line must contain a
probe), so the check costs a few ``find`` calls per block whatever the number of lines.
UTF-16 files (Windows PowerShell 5 writes them) are transcoded line by line, with each
line's offset on disk in ``Chunk.offsets``.
"""

from __future__ import annotations

from obskit.schema.encoding import Encoding
from sidecar.source.chunk import Chunk, TooLong

#: How much of a too-long line is kept for the quarantine.
HEAD_BYTES = 1024


def newline_of(enc: Encoding) -> bytes:
    """The newline as it is on disk."""
    if enc is Encoding.UTF16_LE:
        return b"\n\x00"
    if enc is Encoding.UTF16_BE:
        return b"\x00\n"
    return b"\n"


def find_newline(block: bytes, start: int, nl: bytes) -> int:
    """First newline at or after ``start`` (aligned to the code unit), or -1."""
    width = len(nl)
    i = block.find(nl, start)
    while i != -1 and (i - start) % width:
        i = block.find(nl, i + 1)
    return i


def rfind_newline(block: bytes, nl: bytes) -> int:
    """Last newline in ``block`` (which starts code-unit aligned), or -1."""
    i = block.rfind(nl)
    if len(nl) == 1:
        return i
    while i != -1 and i % 2:
        i = block.rfind(nl, 0, i + 1)
    return i


def frame(
    block: bytes, base: int, enc: Encoding, max_line: int, file_key: str, path: str
) -> tuple[list[Chunk], int]:
    """Chunks for the complete lines at the start of ``block`` (read at offset ``base``).

    Returns the chunks and how many bytes of ``block`` they cover (0: no complete line).
    """
    nl = newline_of(enc)
    last = rfind_newline(block, nl)
    if last == -1:
        return [], 0
    used = last + len(nl)
    if enc.is_utf16:
        return _frame_utf16(block[:used], base, enc, nl, max_line, file_key, path), used
    data = block if used == len(block) else block[:used]
    if used <= max_line + 1:
        return [Chunk(file_key, path, base, base + used, data)], used
    longs = _long_lines(data, max_line)
    if not longs:
        return [Chunk(file_key, path, base, base + used, data)], used
    chunks: list[Chunk] = []
    pos = 0
    for ls, le in longs:
        if ls > pos:
            chunks.append(Chunk(file_key, path, base + pos, base + ls, data[pos:ls]))
        tl = TooLong(base + ls, le - ls, data[ls : min(le, ls + HEAD_BYTES)])
        chunks.append(Chunk(file_key, path, base + ls, base + le + 1, b"", too_long=[tl]))
        pos = le + 1
    if pos < used:
        chunks.append(Chunk(file_key, path, base + pos, base + used, data[pos:]))
    return chunks, used


def _long_lines(data: bytes, max_line: int) -> list[tuple[int, int]]:
    """(start, newline index) of each line longer than ``max_line`` in ``data``."""
    step = max(1, max_line // 2)
    found: list[tuple[int, int]] = []
    p = 0
    n = len(data)
    while p < n:
        ls = data.rfind(b"\n", 0, p) + 1
        le = data.find(b"\n", p)
        if le - ls > max_line:
            found.append((ls, le))
            p = le + 1  # next probe after this line; probes are <= step apart either way
        else:
            p += step
    return found


def _frame_utf16(
    raw: bytes, base: int, enc: Encoding, nl: bytes, max_line: int, file_key: str, path: str
) -> list[Chunk]:
    codec = enc.value
    chunks: list[Chunk] = []
    parts: list[str] = []
    offsets: list[int] = []
    run_start = 0
    pos = 0
    n = len(raw)

    def flush_run(end: int) -> None:
        if offsets:
            data = ("\n".join(parts) + "\n").encode("utf-8", "replace")
            chunks.append(
                Chunk(file_key, path, base + run_start, base + end, data, offsets=list(offsets))
            )
            parts.clear()
            offsets.clear()

    while pos < n:
        le = find_newline(raw, pos, nl)
        if le - pos > max_line:
            flush_run(pos)
            head = (
                raw[pos : min(le, pos + HEAD_BYTES)]
                .decode(codec, "replace")
                .encode("utf-8", "replace")
            )
            tl = TooLong(base + pos, le - pos, head)
            chunks.append(Chunk(file_key, path, base + pos, base + le + 2, b"", too_long=[tl]))
            run_start = le + 2
        else:
            text = raw[pos:le].decode(codec, "replace")
            if pos == 0 and base == 0:
                text = text.removeprefix("\ufeff")
            parts.append(text)
            offsets.append(base + pos)
        pos = le + 2
    flush_run(n)
    return chunks
