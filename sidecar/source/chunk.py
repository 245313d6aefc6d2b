"""What the source hands the engine: complete lines read from one file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class TooLong:
    """A line longer than ``max_line_bytes``, left out of ``Chunk.data``.

    ``offset`` is where it starts on disk, ``length`` its length in bytes on disk without the
    newline, ``head`` its first bytes (at most 1 KiB) so the quarantine can show what it was.
    The tailer streams past such a line: it is never held in memory whole.
    """

    offset: int
    length: int
    head: bytes


@dataclass(slots=True)
class Chunk:
    """Complete lines read from one file, in order.

    ``file_key`` is the file's identity (fingerprint + device/inode), stable across renames;
    ``start``/``end`` are byte offsets in the file as it is on disk: ``end`` is where the next
    read starts and what the checkpoint advances to once every sink acknowledged these lines.
    ``data`` is UTF-8 (a UTF-16 file is transcoded; a UTF-8 BOM is dropped), lines separated
    by ``\\n``, the last one terminated. ``offsets`` gives each line's start offset on disk when
    it cannot be derived from ``data`` (transcoded files); otherwise it is ``None``.
    ``flushed_partial`` is set when the last line had no newline and was flushed by timeout
    (``data`` still ends with ``\n``; ``end`` is the offset on disk, without it).
    ``too_long`` lists lines over the limit that lie in ``[start, end)`` but are not in
    ``data``; the tailer emits each in a chunk of its own with empty ``data``, so ``data`` is
    always contiguous from ``start`` (or described by ``offsets``).
    ``id_key`` names the lines for line ids and sinks' replay guards (``<id_key>-<offset>``):
    the file's own key, except for a copy made by copy+truncate rotation, whose lines keep
    the ORIGINAL file's key (same content at the same offsets, so the same ids, even when the
    copy is read after a restart). Checkpoints stay keyed by ``file_key``.
    """

    file_key: str
    path: str
    start: int
    end: int
    data: bytes
    offsets: list[int] | None = None
    flushed_partial: bool = False
    too_long: list[TooLong] = field(default_factory=list)
    id_key: str = ""

    def __post_init__(self) -> None:
        if not self.id_key:
            self.id_key = self.file_key

    def line_offsets(self, lines: list[bytes]) -> list[int]:
        """Each line's start offset in the file (``lines`` is ``data`` split on ``\\n``)."""
        if self.offsets is not None:
            return self.offsets
        out = []
        pos = self.start
        for ln in lines:
            out.append(pos)
            pos += len(ln) + 1
        return out
