"""The file sink: a size-rotated NDJSON archive in a local folder (the embedded default).

Each record is one JSON line (the shipped line, plus this sidecar's static fields when
``enrich`` is on and the line does not already have that key). ``send`` writes the batch,
flushes and fsyncs it (``fsync: false`` trades power-loss durability for speed; a process
crash loses nothing either way) before returning, so a checkpoint never moves past a line that
is not on disk.

Exactly once across crashes: a journal (``.file-sink.journal`` in the folder) records after
each batch the segment, its size and, per source file, the offset just past the last archived
line. On start the current segment is cut back to the journalled size (dropping a batch whose
write was interrupted: it was not acknowledged, so it will be read again), and lines replayed
from before the journalled offsets are skipped. So the archive holds every line once, even
after ``kill -9``, provided the tailer keeps a file's identity across the restart. Marks are
keyed by the lines' id key (``Chunk.id_key``), so lines re-read from a copy+truncate copy
are recognised as the original's.

Segments: ``archive-<UTC time>-<n>.ndjson`` (the newest is being written), ``.ndjson.gz`` after
rotation when ``gzip: true``; ``max_segments`` bounds how many are kept (0: all).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import cramjam
import msgspec
import orjson

from obskit._atomic import write_atomic
from obskit._durations import ByteSize
from sidecar.config_convert import check
from sidecar.enrich import Enrichment
from sidecar.segments import AppendFile, SegmentIO, Segments, named
from sidecar.sinks.base import Batch, Sink
from sidecar.sinks.delivery import Outcome

JOURNAL = ".file-sink.journal"


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The local NDJSON archive (``type: file``): exactly once across restarts."""

    #: Archive folder (relative paths are relative to the working directory); one sidecar
    #: per folder, and one file sink.
    dir: str = "archive"
    #: A new segment starts when the current one would pass this size.
    max_segment_bytes: ByteSize = ByteSize(64 * 1024 * 1024)
    #: Segments kept, the oldest deleted first; 0 keeps all.
    max_segments: int = 0
    #: Compress each segment once it is complete (``.ndjson.gz``, read by ``obskit trace``).
    gzip: bool = False
    #: Add the sidecar's static fields (``enrich:``) to each record that lacks them.
    enrich: bool = True
    #: fsync every batch before acknowledging it (``false``: safe against a process crash,
    #: not against power loss).
    fsync: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.dir.strip():
            problems.append("dir: must not be empty")
        if self.max_segment_bytes < 4096:
            problems.append("max_segment_bytes: must be at least 4096")
        if self.max_segments < 0:
            problems.append("max_segments: must be 0 (keep all) or more")
        check(problems)

    @property
    def owned_folders(self) -> dict[str, str]:
        """Folders no other sidecar may write (locked at start)."""
        return {"dir": self.dir}


def build(name: str, config: Config) -> FileSink:
    """The sink for ``type: file``."""
    return FileSink(name, config)


class FileSink(Sink):
    """See the module docstring."""

    kind = "file"

    def __init__(self, name: str, config: Config, *, io: SegmentIO | None = None) -> None:
        super().__init__(name)
        self.config = config
        self.dir = Path(config.dir)
        self._io = io or SegmentIO()
        self._segments = Segments(self.dir, "archive", io=self._io)
        self._marks: dict[str, int] = {}
        self._guard: dict[str, int] = {}
        self._resume: dict[str, int] = {}
        self._journal: AppendFile | None = None
        self._journal_entries = 0
        self.skipped_replayed = 0
        self._static: dict[str, str] | None = None
        self._enrichment = Enrichment({})

    @property
    def _seg(self) -> Path | None:
        cur = self._segments.current
        return cur.path if cur is not None else None

    @property
    def _size(self) -> int:
        cur = self._segments.current
        return cur.size if cur is not None else 0

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        seg_name, size = self._load_journal()
        seg = self.dir / seg_name if seg_name else None
        if seg is not None and seg.exists() and seg.suffix == ".ndjson":
            cur = self._segments.open(seg)
            if cur.size > size:
                # Written but never journalled: not acknowledged, it will be read again.
                cur.truncate(size)
                cur.sync()
        else:
            self._segments.open()
        self._guard = dict(self._marks)
        self._rewrite_journal()

    def close(self) -> None:
        for f in (self._segments.current, self._journal):
            if f is not None:
                f.sync()
                f.close()
        self._segments.current = self._journal = None

    # journal -----------------------------------------------------------------------------------
    def _load_journal(self) -> tuple[str | None, int]:
        path = self.dir / JOURNAL
        seg: str | None = None
        size = 0
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, 0
        for raw in data.split(b"\n"):
            if not raw:
                continue
            try:
                entry = orjson.loads(raw)
                seg, size = str(entry["seg"]), int(entry["size"])
                for k, v in entry.get("marks", {}).items():
                    self._marks[str(k)] = max(int(v), self._marks.get(str(k), 0))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                # A torn last entry from a crash: everything before it is intact.
                continue
        return seg, size

    def _rewrite_journal(self, seg: Path | None = None, size: int | None = None) -> None:
        """Replace the journal with one entry holding every mark (for segment ``seg`` of
        ``size`` bytes: by default the current one). On failure the old journal stays in
        force (and open again, if it can be opened; else the next batch rewrites it)."""
        seg = seg or self._seg
        assert seg is not None
        size = self._size if size is None else size
        path = self.dir / JOURNAL
        if self._journal is not None:
            self._journal.close()  # Windows cannot replace a file that is open
            self._journal = None
        try:
            write_atomic(
                path, self._entry(self._marks, seg, size), tmp=self.dir / (JOURNAL + ".tmp")
            )
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._journal = AppendFile(path, self._io)
            raise named(exc, path) from exc
        self._journal = AppendFile(path, self._io)
        self._journal_entries = 0

    def _entry(
        self, marks: dict[str, int], seg: Path | None = None, size: int | None = None
    ) -> bytes:
        seg = seg or self._seg
        assert seg is not None
        size = self._size if size is None else size
        return orjson.dumps({"seg": seg.name, "size": size, "marks": marks}) + b"\n"

    # segments ----------------------------------------------------------------------------------
    def _rotate(self) -> None:
        """Start a new segment; transactional (see :meth:`Segments.rotate`): when the folder
        cannot be written, nothing changes and the batch's retry tries again."""
        old = self._segments.rotate(commit=lambda new: self._rewrite_journal(new, 0))
        # Compression and retention are housekeeping: a failure (a reader holding the file on
        # Windows, disk full) leaves a segment uncompressed or kept, and is retried next time.
        if old is not None and self.config.gzip and old.exists():
            with contextlib.suppress(OSError):
                gz = old.with_suffix(".ndjson.gz")
                tmp = gz.with_suffix(".gz.tmp")
                tmp.write_bytes(bytes(cramjam.gzip.compress(old.read_bytes())))
                os.replace(tmp, gz)
                old.unlink()
        if self.config.max_segments:
            self._segments.prune(self.config.max_segments)

    # sending -----------------------------------------------------------------------------------
    def describe_target(self) -> str:
        return str(self.dir)

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        """Archive the whole batch (the file sink has one part: a batch is written, or
        rolled back, as a whole)."""
        t0 = time.perf_counter()
        lines = batch.lines
        if self._guard:
            lines = self._drop_replayed(batch)
        marks = {k: end for k, (_, end) in batch.extents.items()}
        data = self._encode(lines, batch.static) if lines else b""
        seg, journal = self._segments.current, self._journal
        if seg is None or journal is None or seg.lost or journal.lost:
            self._rotate()  # the folder was removed under us: a new segment and journal
        elif data and seg.size > 0 and seg.size + len(data) > self.config.max_segment_bytes:
            self._rotate()
        seg, journal = self._segments.current, self._journal
        assert seg is not None and journal is not None
        before, journal_before = seg.size, journal.size
        prev = {k: self._marks.get(k) for k in marks}
        try:
            if data:
                seg.append(data)
                if self.config.fsync:
                    seg.sync()
            self._journal_entries += 1
            if self._journal_entries >= 4096:
                self._marks.update(self._merged(marks))
                self._rewrite_journal()  # compact: one entry with every mark
            else:
                journal.append(self._entry(marks))
                if self.config.fsync:
                    journal.sync()
                self._marks.update(self._merged(marks))
        except BaseException as exc:
            # Undo a partial write so the worker's retry cannot archive the batch twice: the
            # segment and the journal are cut back to what they held (should a cut fail, the
            # next append makes it first).
            for k, v in prev.items():
                if v is None:
                    self._marks.pop(k, None)
                else:
                    self._marks[k] = v
            seg.discard_after(before)
            if self._journal is journal:
                journal.discard_after(journal_before)
            else:  # a compaction replaced the journal before failing: write it again
                with contextlib.suppress(OSError):
                    self._rewrite_journal()
            if isinstance(exc, OSError):
                raise named(exc, self.dir) from exc
            raise
        self.metrics.request(time.perf_counter() - t0, "ok")
        return Outcome.ok(len(lines), len(data))

    def _merged(self, marks: dict[str, int]) -> dict[str, int]:
        return {k: end for k, end in marks.items() if end > self._marks.get(k, -1)}

    def set_resume_points(self, offsets: dict[str, int]) -> None:
        """Where the engine resumes each file (its checkpoints), called before the first
        batch: only lines from there up to the journalled offset are replays. A file read
        again from an earlier offset (truncated while the sidecar was away) is new content."""
        self._resume = dict(offsets)

    def _drop_replayed(self, batch: Batch) -> list[bytes]:
        replay: dict[str, int] = {}
        for key, (first, end) in batch.extents.items():
            mark = self._guard.get(key)
            if mark is None:
                continue
            if first >= mark or first < self._resume.get(key, 0):
                # Caught up, or not resuming where we stopped: nothing here is a replay.
                del self._guard[key]
                continue
            replay[key] = mark
            if end >= mark:
                del self._guard[key]
        if not replay:
            return batch.lines
        keep: list[bytes] = []
        lines = batch.lines
        for key, offsets, start in batch.keys_and_offsets():
            mark = replay.get(key)
            if mark is None:
                keep += lines[start : start + len(offsets)]
                continue
            for n, off in enumerate(offsets):
                if off < mark:
                    self.skipped_replayed += 1
                else:
                    keep.append(lines[start + n])
        return keep

    def _encode(self, lines: list[bytes], static: dict[str, str]) -> bytes:
        if not (self.config.enrich and static) or not lines:
            return b"\n".join([*lines, b""])
        if static is not self._static:  # the engine passes the same dict with every batch
            self._static, self._enrichment = static, Enrichment(static)
        return self._enrichment.append_lines(lines)
