"""The tailer's line framing on arbitrary blocks: chunks tile exactly the complete lines,
never a partial line, never a line over the limit inside ``data``, offsets on disk exact."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obskit.schema.encoding import Encoding
from sidecar.source.framing import frame

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Blocks rich in newlines and long runs, so limits and boundaries are actually hit.
pieces = st.sampled_from([b"\n", b"\r\n", b"x", b"{}", b"\x00", b"\xff", b"\n\x00", b"ab" * 20])
blocks = st.binary(max_size=300) | st.lists(pieces, max_size=80).map(b"".join)


@FUZZ
@given(blocks, st.integers(0, 10**12), st.integers(1, 64))
def test_utf8_chunks_tile_the_complete_lines(block: bytes, base: int, max_line: int) -> None:
    chunks, used = frame(block, base, Encoding.UTF8, max_line, "k", "p")
    last_nl = block.rfind(b"\n")
    assert used == last_nl + 1  # everything up to the last newline, nothing after
    if not used:
        assert chunks == []
        return
    assert chunks[0].start == base and chunks[-1].end == base + used
    for a, b in itertools.pairwise(chunks):
        assert a.end == b.start
    for c in chunks:
        if c.too_long:
            assert c.data == b"" and len(c.too_long) == 1
            tl = c.too_long[0]
            assert tl.length > max_line and tl.offset == c.start
            assert c.end == tl.offset + tl.length + 1
            assert block[tl.offset - base : tl.offset - base + tl.length].find(b"\n") == -1
        else:
            assert c.data == block[c.start - base : c.end - base]
            assert c.data.endswith(b"\n")
            assert all(len(x) <= max_line for x in c.data[:-1].split(b"\n"))


@FUZZ
@given(
    blocks,
    st.sampled_from([Encoding.UTF16_LE, Encoding.UTF16_BE]),
    st.integers(0, 5).map(lambda n: n * 2),
    st.integers(1, 64),
)
def test_utf16_chunks_are_utf8_with_exact_offsets(
    block: bytes, enc: Encoding, base: int, max_line: int
) -> None:
    chunks, used = frame(block, base, enc, max_line, "k", "p")
    assert used % 2 == 0 and used <= len(block)
    if not used:
        assert chunks == []
        return
    assert chunks[0].start == base and chunks[-1].end == base + used
    for a, b in itertools.pairwise(chunks):
        assert a.end == b.start
    for c in chunks:
        c.data.decode("utf-8")  # always valid UTF-8, whatever the bytes were
        if c.too_long:
            assert c.data == b""
            continue
        lines = c.data[:-1].split(b"\n")
        assert c.offsets is not None and len(c.offsets) == len(lines)
        assert c.offsets == sorted(c.offsets)
        assert all(c.start <= o < c.end and o % 2 == 0 for o in c.offsets)
