"""The loop tying the source together: scan the folder, identify files, follow them through
renames, truncation and deletion, read complete lines in blocks, release handles promptly
(the "file server")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from obskit.schema.encoding import Encoding, sniff
from sidecar.checkpoint import CheckpointStore
from sidecar.source.chunk import Chunk
from sidecar.source.fingerprint import (
    file_key,
    fingerprint,
    fingerprint_of_key,
    fingerprint_source,
    read_at,
)
from sidecar.source.fswatch import FsWakeup
from sidecar.source.lineage import Lineage
from sidecar.source.osfile import Files, default_files
from sidecar.source.paths import PathMatcher, Seen, scan
from sidecar.source.settings import SourceSettings
from sidecar.source.watcher import WatchedFile

# After a file-system event, poll at most this often: a busy writer fires thousands of
# events per second and one poll per event would only burn CPU.
_MIN_EVENT_GAP = 0.02


class _Wake(threading.Event):
    """The event ``wait()`` sleeps on; ``fired`` also remembers, until the next folder scan,
    that a file-system event (or ``stop()``) set it."""

    def __init__(self) -> None:
        super().__init__()
        self.fired = False

    def set(self) -> None:
        self.fired = True
        super().set()


@dataclass(slots=True, frozen=True)
class FileStatus:
    """One tracked file, for lag metrics: ``size - read_offset`` bytes not read yet.

    ``open`` says whether a handle is held; ``gone`` that the file was renamed away from
    the patterns or deleted and is being drained before release.
    """

    path: str
    file_key: str
    size: int
    read_offset: int
    open: bool
    gone: bool
    encoding: str


class SourceWarning(str):
    """A problem the tailer met (the message), with ``kind``: ``open``, ``stat``, ``read``,
    ``unsupported_encoding`` (gzip, UTF-32), ``truncated_while_away``, ``fs_events``."""

    kind: str

    def __new__(cls, msg: str, kind: str) -> SourceWarning:
        self = super().__new__(cls, msg)
        self.kind = kind
        return self


class Tailer:
    """Finds log files, follows them through rotations, reads complete lines in blocks.

    Not thread-safe except ``stop()``, which may be called from any thread (a signal
    handler) to wake ``wait()``.
    """

    def __init__(
        self,
        settings: SourceSettings,
        checkpoints: CheckpointStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        files: Files | None = None,
    ) -> None:
        self.settings = settings
        self.checkpoints = checkpoints
        self._clock = clock
        self._os = files if files is not None else default_files()
        self._matcher = PathMatcher(settings.include, settings.exclude)
        self._files: dict[str, WatchedFile] = {}
        # Files seen without a complete first line yet: (dev, ino) -> (size, since).
        self._pending: dict[tuple[int, int], tuple[int, float]] = {}
        # Read position per fingerprint, shared by files with the same first line: the
        # copy made by copy+truncate continues where the original was read.
        self._lineage = Lineage()
        # Seeded from checkpoints only where the first bytes were recorded: a file that
        # merely shares a first line (a constant header) must never inherit an offset.
        for key in checkpoints.file_keys():
            head = checkpoints.head_of(key)
            if head is not None:
                self._lineage.seed(
                    fingerprint_of_key(key),
                    checkpoints.get(key) or 0,
                    *head,
                    checkpoints.origin_of(key),
                )
        self._warnings: list[SourceWarning] = []
        self._warned: set[str] = set()
        self._first_poll = True
        self._last_poll = float("-inf")
        self._backlog = False
        self._last_scan = float("-inf")
        self._stopped = False
        self._wake = _Wake()
        self._fs = FsWakeup(settings.path, settings.recursive, self._wake)

    # -- public API ------------------------------------------------------------------------
    def poll(self, max_bytes: int = 4 << 20) -> list[Chunk]:
        """Discover files and read available complete lines, about ``max_bytes`` at most.

        The folder is scanned on every poll, except while catching up (the previous poll
        left unread data): then once per ``poll_interval`` or after a file-system event.

        Chunks of one file come in file order; the engine advances the checkpoint of
        ``chunk.file_key`` to ``chunk.end`` once every sink acknowledged them."""
        now = self._clock()
        self._last_poll = time.monotonic()
        if self.settings.fs_events:
            self._fs.ensure_started()
            if self._fs.error:
                self._warn(self._fs.error, "fs_events")
        # Scanning the folder is the costliest step of a poll: while catching up on a
        # backlog (polls back to back), scan only once per poll interval or after a
        # file-system event; the files already open are still read (and fstat'ed) every poll.
        mono = self._last_poll
        since = mono - self._last_scan
        if (
            not self._backlog
            or since >= self.settings.poll_interval
            or (self._wake.fired and since >= _MIN_EVENT_GAP)
        ):
            self._wake.fired = False
            self._last_scan = mono
            seen: dict[tuple[int, int], Seen] | None = scan(self.settings, self._matcher)
        else:
            seen = None
        self._refresh(seen, now)
        if seen is not None:
            self._discover(seen, now)
        self._first_poll = False
        out: list[Chunk] = []
        self._read_all(out, max_bytes, now)
        self._release(out, now)
        self._backlog = any(
            w.f is not None and not w.drained and not w.at_partial for w in self._files.values()
        )
        return out

    def wait(self, timeout: float) -> None:
        """Sleep until the poll interval (counted from the last poll) elapses, a file-system
        event arrives, or ``stop()``; return at once when the last poll left a backlog."""
        if self._stopped or self._backlog:
            return
        start = time.monotonic()
        deadline = min(start + timeout, self._last_poll + self.settings.poll_interval)
        remaining = deadline - start
        if remaining > 0 and self._wake.wait(remaining) and not self._stopped:
            gap = self._last_poll + _MIN_EVENT_GAP - time.monotonic()
            if gap > 0:
                time.sleep(min(gap, max(0.0, deadline - time.monotonic())))
        self._wake.clear()

    def stop(self) -> None:
        """Wake ``wait()`` and make later waits return at once (thread-safe)."""
        self._stopped = True
        self._wake.set()

    def close(self) -> None:
        """Release every file handle and the file-system watcher."""
        self._fs.stop()
        for w in self._files.values():
            w.close()

    def files(self) -> list[FileStatus]:
        """Tracked files with their sizes and read offsets (open or not)."""
        return [
            FileStatus(
                w.path,
                w.key,
                w.size,
                w.offset,
                w.f is not None,
                w.gone_since is not None,
                w.enc.value,
            )
            for w in self._files.values()
        ]

    def forget(self, file_key: str) -> None:
        """Stop tracking a file and close its handle."""
        w = self._files.pop(file_key, None)
        if w is not None:
            w.close()

    def warnings(self) -> list[SourceWarning]:
        """Problems met since the last call (unreadable or unsupported files), each once;
        each is its message, with a short ``kind`` for metrics."""
        out, self._warnings = self._warnings, []
        return out

    @property
    def fs_events_active(self) -> bool:
        """Whether file-system events currently wake the poll."""
        return self._fs.running

    # -- steps of a poll -------------------------------------------------------------------
    def _refresh(self, seen: dict[tuple[int, int], Seen] | None, now: float) -> None:
        # ``seen`` is None between scans: only the open files are checked (fstat).
        for key, w in list(self._files.items()):
            if seen is None:
                if w.f is None:
                    continue
            else:
                s = seen.get((w.dev, w.ino))
                if s is not None:
                    w.path = s.path
                    w.gone_since = None
                elif w.gone_since is None:
                    w.gone_since = now
                if w.f is None:
                    if s is None:
                        del self._files[key]  # drained when closed; nothing left to read
                    elif s.size != w.size or s.mtime_ns != w.mtime_ns:
                        self._reopen(w, s, now)
                    continue
            try:
                fid = self._os.identify(w.f)
            except OSError as exc:
                self._warn(f"cannot stat {w.path}: {exc}", "stat")
                continue
            changed = fid.size != w.size or fid.mtime_ns != w.mtime_ns
            if fid.size < w.size or (changed and not w.head_unchanged()):
                # Truncated (copy+truncate, a shrinking file) or rewritten: the content we
                # were following is gone; what is there now is a new file, read from 0.
                w.close()
                del self._files[key]
                continue
            if fid.size > w.size:
                w.last_growth = now
                if len(w.sample) < self.settings.fingerprint_bytes:
                    w.sample = read_at(w.f, 0, self.settings.fingerprint_bytes)
                    self.checkpoints.describe(w.key, w.sample)
            w.size = fid.size
            w.mtime_ns = fid.mtime_ns

    def _reopen(self, w: WatchedFile, s: Seen, now: float) -> None:
        try:
            f = self._os.open_read(s.path)
            fid = self._os.identify(f)
        except OSError as exc:
            self._warn(f"cannot open {s.path}: {exc}", "open")
            return
        if (fid.dev, fid.ino) != (w.dev, w.ino):
            f.close()  # renamed between the scan and the open: try again next poll
            return
        w.f = f
        if fid.size < w.size or not w.head_unchanged():
            w.close()
            del self._files[w.key]
            return
        if fid.size > w.size:
            w.last_growth = now
        w.size = fid.size
        w.mtime_ns = fid.mtime_ns

    def _discover(self, seen: dict[tuple[int, int], Seen], now: float) -> None:
        tracked = {(w.dev, w.ino) for w in self._files.values()}
        for devino in list(self._pending):
            if devino not in seen:
                del self._pending[devino]
        for devino, s in seen.items():
            if devino in tracked:
                continue
            pend = self._pending.get(devino)
            if pend is not None and pend[0] == s.size and s.size == 0:
                continue
            self._identify(s, now)

    def _identify(self, s: Seen, now: float) -> None:
        st = self.settings
        devino = (s.dev, s.ino)
        try:
            f = self._os.open_read(s.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn(f"cannot open {s.path}: {exc}", "open")
            return
        keep = False
        try:
            fid = self._os.identify(f)
            head = read_at(f, 0, st.fingerprint_bytes)
            allow_partial = False
            pend = self._pending.get(devino)
            if pend is None or pend[0] != fid.size:
                self._pending[devino] = (fid.size, now)
            elif st.partial_line_timeout is not None and now - pend[1] >= st.partial_line_timeout:
                allow_partial = True  # one line without newline, stale: flush it
            src = fingerprint_source(head, st.fingerprint_bytes, allow_partial=allow_partial)
            if src is None:
                return
            self._pending.pop(devino, None)
            enc = sniff(head[:4])
            if enc in (Encoding.GZIP, Encoding.UTF32):
                self._warn(
                    f"{s.path}: {'gzip-compressed' if enc is Encoding.GZIP else 'UTF-32'}"
                    " file is not tailed (exclude it, or write UTF-8)",
                    "unsupported_encoding",
                )
                return
            fp = fingerprint(src)
            key = file_key(fp, fid.dev, fid.ino)
            known = self._files.get(key)
            if known is not None:
                # Already followed (the scan and the open disagreed on its identity, or a
                # hard link): never start it over, that would send its lines again.
                known.path, known.gone_since = s.path, None
                return
            offset, origin = self._start_offset(key, fp, head, fid.size, f, s.path)
            w = WatchedFile(
                key=key,
                fp=fp,
                fp_source=src,
                path=s.path,
                dev=fid.dev,
                ino=fid.ino,
                f=f,
                enc=enc,
                offset=offset,
                size=fid.size,
                mtime_ns=fid.mtime_ns,
                now=now,
                sample=head,
            )
            if allow_partial and pend is not None:  # its timeout already ran while pending
                w.partial_size, w.partial_since = pend
            w.id_key = origin
            self.checkpoints.describe(key, head)
            self.checkpoints.set_origin(key, origin)
            if origin == key and self.checkpoints.get(key) is None:
                # Remember an original at once (where reading starts, with its head), not
                # only after its first acknowledgement: a copy of it found after a crash can
                # then still be recognised, and its lines named after it. (Not for a copy: it
                # starts where its original was READ, which is not acknowledged yet.)
                self.checkpoints.advance(key, offset, s.path)
            self._files[key] = w
            keep = True
        except OSError as exc:
            self._warn(f"cannot read {s.path}: {exc}", "read")
        finally:
            if not keep:
                f.close()

    def _start_offset(
        self, key: str, fp: str, head: bytes, size: int, f: BinaryIO, path: str
    ) -> tuple[int, str]:
        """Where to start reading a newly found file, and the key its line ids use."""
        saved = self.checkpoints.get(key)
        if saved is not None:
            origin = self.checkpoints.origin_of(key)
            if saved > size:
                self._warn(
                    f"{path} is shorter ({size} bytes) than its checkpoint ({saved}):"
                    " it was truncated while the sidecar was away; reading it from the start",
                    "truncated_while_away",
                )
                # Its remembered read position is past the end now; it would skip the file.
                self._lineage.forget(fp, head)
                return 0, origin
            return saved, origin
        lin = self._lineage.find(fp, head)
        if lin is not None:
            # A copy of a file already read (copy+truncate): continue where that was read,
            # naming the lines after it so they keep their ids.
            return lin.offset, lin.origin or key
        if self._first_poll and self.settings.start_at == "end":
            return self._last_line_start(size, f), key
        return 0, key

    def _last_line_start(self, size: int, fh: BinaryIO) -> int:
        # Start after the last complete line so a half-written line is not emitted as a
        # garbage fragment later.
        pos = size
        step = 1 << 16
        while pos > 0:
            lo = max(0, pos - step)
            block = read_at(fh, lo, pos - lo)
            i = block.rfind(b"\n")
            if i != -1:
                return lo + i + 1
            pos = lo
        return 0

    def _read_all(self, out: list[Chunk], max_bytes: int, now: float) -> None:
        # Rotated-away files first (their handles should go soon), then oldest first (the
        # usual order of rotated generations); each file gets a fair share of the budget in a
        # first pass so one big backlog does not starve the others, the rest in a second.
        ws = [w for w in self._files.values() if w.f is not None]
        if not ws:
            return
        ws.sort(key=lambda w: (w.gone_since is None, w.mtime_ns))
        budget = max_bytes
        share = max(max_bytes // len(ws), self.settings.max_line_bytes + 1)
        for cap in (share, max_bytes):
            for w in ws:
                if budget <= 0:
                    return
                if w.drained:
                    continue
                # Another file with the same start was read further: this one is its
                # copy (or the original of a copy already read); skip what was read.
                lin = self._lineage.find(w.fp, w.sample)
                if lin is not None and lin.offset > w.offset and w.skip is None:
                    w.offset = lin.offset
                try:
                    budget -= w.read(out, min(cap, budget), now, self.settings)
                except OSError as exc:
                    self._warn(f"cannot read {w.path}: {exc}", "read")
                    continue
                self._lineage.note(w.fp, w.sample, w.offset, w.id_key)

    def _release(self, out: list[Chunk], now: float) -> None:
        st = self.settings
        for key, w in list(self._files.items()):
            if w.f is None:
                continue
            if w.gone_since is not None:
                quiet = now - max(w.gone_since, w.last_growth) >= st.rotate_wait
                if not quiet or not (w.drained or w.at_partial):
                    continue
                if w.at_partial:  # the writer is gone: its last line will not be finished
                    w.read(out, st.max_line_bytes + 1, now, st, force_partial=True)
                w.close()
                del self._files[key]
            elif w.drained and now - w.last_growth >= st.close_idle_after:
                w.close()

    def _warn(self, msg: str, kind: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            self._warnings.append(SourceWarning(msg, kind))
