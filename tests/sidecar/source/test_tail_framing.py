"""Property tests of the block framing against a plain split: any lines, any block size, any
encoding; chunks tile the bytes exactly and over-long lines are reported, never split."""

from __future__ import annotations

import codecs
import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer

MAX = 64

line_st = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
        max_size=20,
    ),
    st.integers(MAX - 2, MAX + 3).map(lambda n: "y" * n),
    st.integers(MAX + 4, 400).map(lambda n: "z" * n),
)


@settings(
    max_examples=int(os.environ.get("FRAMING_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    lines=st.lists(line_st, min_size=1, max_size=30),
    codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be"]),
    chunk=st.integers(MAX + 1, 300),
    budget=st.integers(1, 2000),
    crlf=st.booleans(),
)
def test_framing_matches_a_plain_split(
    tmp_path_factory: object, lines: list[str], codec: str, chunk: int, budget: int, crlf: bool
) -> None:
    tmp = tmp_path_factory.mktemp("f")  # type: ignore[attr-defined]
    logs = Path(tmp) / "logs"
    logs.mkdir()
    eol = "\r\n" if crlf else "\n"
    bom = {
        "utf-8": b"",
        "utf-8-sig": codecs.BOM_UTF8,
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
    }[codec]
    enc = "utf-8" if codec.startswith("utf-8") else codec
    body = bom + "".join(ln + eol for ln in lines).encode(enc)
    (logs / "a.log").write_bytes(body)
    st_ = SourceSettings(
        path=str(logs),
        fs_events=False,
        max_line_bytes=MAX,
        read_chunk_bytes=chunk,
        partial_line_timeout=None,
    )
    store = CheckpointStore(Path(tmp) / "cp.json")
    t = Tailer(st_, store)
    chunks = []
    for _ in range(10_000):  # a poll may return nothing while streaming past a long line
        chunks.extend(t.poll(budget))
        if chunks and chunks[-1].end == len(body):
            break
    t.close()
    # Expected: lines whose on-disk length (without "\n") fits; the others reported.
    width = 2 if enc.startswith("utf-16") else 1
    exp_lines, exp_long = [], []
    pos = len(bom)
    for ln in lines:
        raw = (ln + eol).encode(enc)
        n = len(raw) - width
        if n > MAX:
            exp_long.append((pos, n))
        else:
            exp_lines.append((pos, (ln + eol[:-1]).encode("utf-8")))
        pos += len(raw)
    got_lines, got_long = [], []
    for c in chunks:
        got_long.extend((x.offset, x.length) for x in c.too_long)
        if c.data:
            parts = c.data[:-1].split(b"\n")
            got_lines.extend(zip(c.line_offsets(parts), parts, strict=True))
    assert got_lines == exp_lines
    assert got_long == exp_long
    # Chunks tile the file from the first byte after the BOM to the end.
    assert chunks[0].start == len(bom) and chunks[-1].end == len(body)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
