"""Batching never loses, repeats or reorders a line, and its marks are what checkpoints may
safely move to."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.batcher import Batcher
from sidecar.sinks.base import Batch
from sidecar.transform.stage import Prepared

chunk = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.lists(st.integers(1, 300), max_size=40),  # line lengths
    st.integers(0, 3),  # bytes of lines quarantined (not forwarded) after the last one
)


@settings(max_examples=300, deadline=None)
@given(st.lists(chunk, max_size=25), st.integers(1, 30), st.integers(1024, 6000))
def test_batches_cover_every_line_once_in_order_with_safe_marks(
    chunks: list[tuple[str, list[int], int]], max_lines: int, max_bytes: int
) -> None:
    b = Batcher(max_lines, max_bytes, clock=lambda: 0.0)
    pos = {"a": 0, "b": 0, "c": 0}
    expected: list[bytes] = []
    ends: dict[str, int] = {}
    batches = []
    for key, lengths, gap in chunks:
        lines, offsets = [], []
        for n in lengths:
            offsets.append(pos[key])
            lines.append(f"{key}{pos[key]}".encode().ljust(n, b"x"))
            pos[key] += n + 1
        pos[key] += gap
        p = Prepared(key, f"{key}.log", lines, [None] * len(lines), offsets, pos[key])
        expected += lines
        ends[key] = pos[key]
        batches += b.add(p)
    last = b.take()
    if last is not None:
        batches.append(last)
    assert [ln for x in batches for ln in x.lines] == expected
    seen: dict[str, int] = {}
    for x in batches:
        assert len(x.lines) <= max_lines
        assert x.nbytes <= max_bytes or len(x.lines) == 1
        assert len(x.offsets) == len(x.lines)
        shipped = Batch(0, x.lines, x.records, offsets=x.offsets, runs=x.runs)
        for i, ln in enumerate(x.lines):
            key, off = shipped.line_id(i)
            assert ln.startswith(f"{key}{off}".encode())
            # A mark never passes a line that is in a later batch.
            assert off >= seen.get(key, 0)
        for key, (_, end) in x.marks.items():
            assert end >= seen.get(key, 0)
            seen[key] = end
        for key, (first, end) in x.extents.items():
            assert first < end <= x.marks[key][1]
    assert seen == {k: v for k, v in ends.items() if k in seen}
    assert set(seen) == {k for k, *_ in chunks}
