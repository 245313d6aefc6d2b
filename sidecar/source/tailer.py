"""The loop tying the source together: scan the folder, identify files, follow them through
renames, truncation and deletion, read complete lines in blocks, release handles promptly
(the "file server").

Every file is handled inside its own error boundary (see ``faults.py``): an OSError on one
file becomes a warning, a counted error and a retry with back-off of that file alone. Content
that becomes unreachable before it was read (a file gone, a truncation that overtook the
reader) is reported as lost, never silently dropped.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from obskit._names import safe_path
from sidecar.source.chunk import Chunk
from sidecar.source.faults import FileFaults, SourceEvent, describe, reason_of
from sidecar.source.fswatch import FsWakeup
from sidecar.source.identity import (
    Decision,
    Discovery,
    KnownFiles,
    Lineage,
    Probe,
    Start,
    Tracked,
    Unsupported,
    Wait,
    head_digest,
    identify,
)
from sidecar.source.losses import Losses, LostTotals
from sidecar.source.osfile import FileId, Files, default_files, read_at
from sidecar.source.paths import PathMatcher, ScanResult, Seen, scan
from sidecar.source.settings import SourceSettings
from sidecar.source.watcher import WatchedFile

# After a file-system event, poll at most this often: a busy writer fires thousands of
# events per second and one poll per event would only burn CPU.
_MIN_EVENT_GAP = 0.02
# Lines of a gone file's unacknowledged rest are counted (for the loss report at shutdown)
# when it is at most this big; beyond, only its bytes.
_COUNT_LINES_UP_TO = 64 << 20


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


class Tailer:
    """Finds log files, follows them through rotations, reads complete lines in blocks.

    ``checkpoints`` is read only here: what the tailer learns for them is handed out by
    :meth:`discovered`, and the engine records it (only the engine moves checkpoints).
    Not thread-safe except ``stop()``, which may be called from any thread (a signal
    handler) to wake ``wait()``.
    """

    def __init__(
        self,
        settings: SourceSettings,
        checkpoints: KnownFiles,
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
        self._pending_paths: dict[tuple[int, int], str] = {}
        # Read position per fingerprint, shared by files with the same first line: the
        # copy made by copy+truncate continues where the original was read.
        self._lineage = Lineage.from_known(checkpoints)
        self._events: list[SourceEvent] = []
        self._told: dict[str, set[str]] = {}  # path -> kinds of one-time warnings given
        self._faults = FileFaults()
        self._discovered: list[Discovery] = []
        self._losses = Losses(checkpoints, self._events, self._discovered)
        self._folder_state = ""  # "" (readable or not scanned yet), "missing", or a reason
        # Folders the last scan could not list: files there only look gone.
        self._unlisted: list[str] = []
        self._scans = 0
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
        ``poll(0)`` scans and releases without reading.

        Chunks of one file come in file order; the engine advances the checkpoint of
        ``chunk.file_key`` to ``chunk.end`` once every sink acknowledged them. Never raises
        for a problem with one file or the folder: see :meth:`warnings`."""
        now = self._clock()
        self._last_poll = time.monotonic()
        if self.settings.fs_events:
            self._fs.ensure_started()
            if self._fs.error:
                self._tell(self.settings.path, "fs_events", self._fs.error)
        # Scanning the folder is the costliest step of a poll: while catching up on a
        # backlog (polls back to back), scan only once per poll interval or after a
        # file-system event; the files already open are still read (and fstat'ed) every poll.
        mono = self._last_poll
        since = mono - self._last_scan
        res: ScanResult | None = None
        if (
            not self._backlog
            or since >= self.settings.poll_interval
            or (self._wake.fired and since >= _MIN_EVENT_GAP)
        ):
            self._wake.fired = False
            self._last_scan = mono
            res = self._scan(now)
        seen = None if res is None else res.found
        self._refresh(seen, now)
        if res is not None and seen is not None:
            self._discover(seen, now)
            self._losses.settle(
                seen, self._files.values(), self._scans, self._unlisted, not self._folder_state
            )
            present = res.listed | {w.path for w in self._files.values()}
            self._faults.keep_only(present)
            for p in [p for p in self._told if p not in present and p != self.settings.path]:
                del self._told[p]
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
        """Release every file handle and the file-system watcher.

        A gone file (deleted, or renamed away from the patterns) whose lines were not all
        acknowledged cannot be read again after a restart: its unacknowledged rest is
        reported lost here (bytes, and lines when it is at most 64 MiB), with a
        :class:`Discovery` that marks it settled. The engine should handle :meth:`warnings`
        and :meth:`discovered` after ``close()`` and before its last checkpoint save."""
        self._fs.stop()
        for w in list(self._files.values()):
            if w.gone_since is not None and w.f is not None:
                self._report_gone_at_close(w)
            with contextlib.suppress(OSError):
                w.close()
        self._files.clear()
        self._losses.close()

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

    def warnings(self) -> list[SourceEvent]:
        """What happened since the last call, for the engine to log and count: problems
        (unreadable files and folders, unsupported files, lost content) and recoveries.
        Each is a :class:`SourceEvent` (its message, ``kind``, ``level``, ``reason``,
        ``fields``); an event with an empty ``level`` is only counted (a repeated failure
        of a path whose failure was already logged)."""
        out = self._events[:]
        self._events.clear()  # (in place: the loss ledger appends to the same list)
        return out

    def discovered(self) -> list[Discovery]:
        """What was learnt about files since the last call, for the engine to record with
        ``CheckpointStore.record`` (in order, before the acknowledgements of this poll's
        chunks): a new file's identity, first-bytes digest, origin and, for a new original,
        its start offset; the final size of a released gone file; a loss settled."""
        out = self._discovered[:]
        self._discovered.clear()
        return out

    def health(self) -> list[str]:
        """Why the source cannot do its job now, one short reason each (empty when fine):
        ``source folder /app/logs does not exist``, ``source folder ... cannot be read
        (EACCES)``, ``source path ... is not a folder``. Changes only at folder scans."""
        st = self._folder_state
        if not st:
            return []
        shown = safe_path(self.settings.path)
        if st == "missing":
            return [f"source folder {shown} does not exist"]
        if st == "ENOTDIR":
            return [f"source path {shown} is not a folder"]
        return [f"source folder {shown} cannot be read ({st})"]

    @property
    def lost(self) -> LostTotals:
        """Content reported lost since start (see ``losses.py``): bytes, lines where known."""
        return self._losses.totals

    @property
    def fs_events_active(self) -> bool:
        """Whether file-system events currently wake the poll."""
        return self._fs.running

    # -- events ----------------------------------------------------------------------------
    def _tell(self, path: str, kind: str, msg: str, **fields: object) -> None:
        """A warning given once per path and kind (until the path disappears)."""
        kinds = self._told.setdefault(path, set())
        if kind not in kinds:
            kinds.add(kind)
            self._events.append(SourceEvent(msg, kind, fields={"path": safe_path(path), **fields}))

    def _fail(self, path: str, exc: OSError | UnicodeError, op: str, now: float) -> None:
        self._events.append(self._faults.failed(path, exc, op, now))

    def _ok(self, path: str, ops: tuple[str, ...] = ()) -> None:
        if self._faults.failing(path):
            ev = self._faults.succeeded(path, ops)
            if ev is not None:
                self._events.append(ev)

    # -- the folder ------------------------------------------------------------------------
    def _scan(self, now: float) -> ScanResult:
        tracked = {w.path for w in self._files.values()}

        def skip(path: str) -> bool:
            return path not in tracked and not self._faults.ready(path, now)

        res = scan(self.settings, self._matcher, skip)
        self._scans += 1
        self._folder(res.root_error)
        self._unlisted = [p.path for p in res.problems if p.op == "list"]
        if res.root_error is not None:
            self._unlisted.append(self.settings.path)
        for p in res.problems:
            self._fail(p.path, p.error, p.op, now)
        for path, what in res.special:
            exc = OSError(errno.ENXIO, f"not a regular file ({what}); not tailed")
            self._fail(path, exc, "open", now)
        return res

    def _folder(self, err: OSError | None) -> None:
        """The source folder's state: a WARN when it goes missing or unreadable, an INFO when
        it is back; once per change, not per scan."""
        if err is None:
            state = ""
        elif isinstance(err, FileNotFoundError):
            state = "missing"
        else:
            state = reason_of(err)
        if state == self._folder_state:
            return
        was, self._folder_state = self._folder_state, state
        shown = safe_path(self.settings.path)
        fields = {"path": shown}
        if not state:
            msg = f"source folder {shown} is readable again ({was} before); reading resumes"
            self._events.append(SourceEvent(msg, "recovered", level="INFO", fields=fields))
        elif state == "missing":
            msg = (
                f"source folder {shown} does not exist: nothing is read until it appears"
                " (check source.path and the volume mount)"
            )
            self._events.append(SourceEvent(msg, "folder_missing", fields=fields))
        else:
            msg = f"cannot read source folder {shown}: {describe(err or OSError())} ({state})"
            fields["errno"] = state
            self._events.append(SourceEvent(msg, "error", reason=state, fields=fields))

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
                    w.seen_size = s.size
                elif w.gone_since is None:
                    w.gone_since = now
                if w.f is None:
                    if s is None:  # gone while its handle was closed: what is unread is lost
                        self._losses.gone(w, self._scans)
                        del self._files[key]
                    elif (s.size != w.size or s.mtime_ns != w.mtime_ns) and self._faults.ready(
                        w.path, now
                    ):
                        self._reopen(w, s, now)
                    continue
            if not self._faults.ready(w.path, now):
                continue
            try:
                self._check(w, now)
            except OSError as exc:
                self._fail_file(w, exc, "stat", now)

    def _check(self, w: WatchedFile, now: float) -> None:
        """fstat an open file: truncated or rewritten (a new file now), or grown."""
        assert w.f is not None
        fid = self._os.identify(w.f)
        changed = fid.size != w.size or fid.mtime_ns != w.mtime_ns
        if fid.size < w.size or (changed and not w.head_unchanged()):
            self._truncated(w)
            return
        if fid.size > w.size:
            w.last_growth = now
            if len(w.sample) < self.settings.fingerprint_bytes:
                w.sample = read_at(w.f, 0, self.settings.fingerprint_bytes)
                head = (len(w.sample), head_digest(w.sample))
                self._discovered.append(Discovery(w.key, w.path, head=head))
        w.size = fid.size
        w.seen_size = max(w.seen_size, fid.size)
        w.mtime_ns = fid.mtime_ns
        self._ok(w.path, ("stat",))

    def _truncated(self, w: WatchedFile) -> None:
        # Truncated (copy+truncate, a shrinking file) or rewritten: the content we were
        # following is gone; what is there now is a new file, read from 0. What we had not
        # read of the old content is lost, unless a copy holds it.
        self._losses.truncated(w, self._scans)
        with contextlib.suppress(OSError):
            w.close()
        del self._files[w.key]

    def _reopen(self, w: WatchedFile, s: Seen, now: float) -> None:
        try:
            f = self._os.open_read(s.path)
        except FileNotFoundError:
            return  # gone since the scan: the next scan settles it
        except OSError as exc:
            self._fail(s.path, exc, "open", now)
            return
        try:
            fid = self._os.identify(f)
            if (fid.dev, fid.ino) != (w.dev, w.ino):
                f.close()  # renamed between the scan and the open: try again next poll
                return
            w.f = f
            if fid.size < w.size or not w.head_unchanged():
                self._truncated(w)
                return
        except OSError as exc:
            w.f = None
            f.close()
            self._fail(s.path, exc, "read", now)
            return
        self._ok(s.path, ("open",))
        if fid.size > w.size:
            w.last_growth = now
        w.size = fid.size
        w.mtime_ns = fid.mtime_ns

    def _discover(self, seen: dict[tuple[int, int], Seen], now: float) -> None:
        tracked = {(w.dev, w.ino) for w in self._files.values()}
        for devino in list(self._pending):
            if devino not in seen:
                size, _ = self._pending.pop(devino)
                path = self._pending_paths.pop(devino, "")
                if size:  # only a first line without its newline, and it is gone
                    self._losses.report(path, size, 1, "gone before its first line was complete")
        for devino, s in seen.items():
            if devino in tracked:
                continue
            pend = self._pending.get(devino)
            if pend is not None and pend[0] == s.size and s.size == 0:
                continue
            if not self._faults.ready(s.path, now):
                continue
            self._identify(s, now)

    def _identify(self, s: Seen, now: float) -> None:
        """Open a newly seen file, probe it, decide (``identity.identify``), apply."""
        try:
            f = self._os.open_read(s.path)
        except FileNotFoundError:
            # Gone between the scan and the open: lost unless it was only renamed.
            self._losses.vanished(s.path, (s.dev, s.ino), s.size, self._scans)
            return
        except OSError as exc:
            self._fail(s.path, exc, "open", now)
            return
        keep = False
        try:
            fid = self._os.identify(f)
            head = read_at(f, 0, self.settings.fingerprint_bytes)
            probe, pend = self._probe(s, fid, head, now)
            stale = pend if probe.stale_partial else None
            decision = identify(
                probe,
                limit=self.settings.fingerprint_bytes,
                known=self.checkpoints,
                lineage=self._lineage,
                tracked=self._files,
                at_end=self._first_poll and self.settings.start_at == "end",
            )
            if isinstance(decision, Start):
                self._follow(decision, s, f, fid, head, stale, now)
                keep = True
            else:
                self._skip(decision, s)
            self._ok(s.path)
        except OSError as exc:
            self._fail(s.path, exc, "read", now)
        finally:
            if not keep:
                f.close()

    def _probe(
        self, s: Seen, fid: FileId, head: bytes, now: float
    ) -> tuple[Probe, tuple[int, float] | None]:
        # A file whose only line has no newline waits; once it has not changed for
        # partial_line_timeout, that line is its identity (and flushed).
        devino = (s.dev, s.ino)
        pend = self._pending.get(devino)
        stale = False
        timeout = self.settings.partial_line_timeout
        if pend is None or pend[0] != fid.size:
            self._pending[devino] = (fid.size, now)
            self._pending_paths[devino] = s.path
        elif timeout is not None and now - pend[1] >= timeout:
            stale = True
        return Probe(fid.dev, fid.ino, fid.size, head, stale), pend

    def _skip(self, d: Decision, s: Seen) -> None:
        """A file not to follow (now): waiting for its first line, unsupported, or already
        followed."""
        if isinstance(d, Wait):
            return
        self._forget_pending(s)
        if isinstance(d, Unsupported):
            self._tell(
                s.path,
                "unsupported_encoding",
                f"{safe_path(s.path)}: {d.what} file is not tailed (exclude it, or write UTF-8)",
            )
        elif isinstance(d, Tracked):
            known = self._files[d.key]
            known.path, known.gone_since = s.path, None

    def _forget_pending(self, s: Seen) -> None:
        self._pending.pop((s.dev, s.ino), None)
        self._pending_paths.pop((s.dev, s.ino), None)

    def _follow(
        self,
        d: Start,
        s: Seen,
        f: BinaryIO,
        fid: FileId,
        head: bytes,
        stale: tuple[int, float] | None,
        now: float,
    ) -> None:
        """Track the file from where ``d`` says, and report it for the checkpoints.
        ``stale``: the pending state of a file identified by a first line without its
        newline (its partial-line timeout already ran)."""
        self._forget_pending(s)
        if d.why == "truncated_while_away":
            self._truncated_while_away(d, s, fid, head)
        offset = d.offset if d.offset is not None else self._last_line_start(fid.size, f)
        w = WatchedFile(
            key=d.key,
            fp=d.fp,
            fp_source=d.fp_source,
            path=s.path,
            dev=fid.dev,
            ino=fid.ino,
            f=f,
            enc=d.enc,
            offset=offset,
            size=fid.size,
            mtime_ns=fid.mtime_ns,
            now=now,
            sample=head,
        )
        if stale is not None:
            w.partial_size, w.partial_since = stale  # its timeout already ran while pending
        w.id_key = d.origin
        origin = d.origin if d.origin != d.key else ""
        advance = offset if d.record_start else None
        head_id = (len(head), head_digest(head))
        self._discovered.append(Discovery(d.key, s.path, head_id, origin, advance))
        self._files[d.key] = w

    def _truncated_while_away(self, d: Start, s: Seen, fid: FileId, head: bytes) -> None:
        shown = safe_path(s.path)
        self._events.append(
            SourceEvent(
                f"{shown} is shorter ({fid.size} bytes) than its checkpoint ({d.saved}):"
                " it was truncated while the sidecar was away; reading it from the start",
                "truncated_while_away",
                fields={"path": shown},
            )
        )
        # Its remembered read position is past the end now; it would skip the file.
        self._lineage.forget(d.fp, head)
        if d.saved is not None:
            self._losses.truncated_while_away(d.key, s.path, d.saved, self._scans)

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
                if w.drained or w.f is None or not self._faults.ready(w.path, now):
                    continue
                # Another file with the same start was read further: this one is its
                # copy (or the original of a copy already read); skip what was read.
                lin = self._lineage.find(w.fp, w.sample)
                if lin is not None and lin.offset > w.offset and w.skip is None:
                    w.offset = lin.offset
                try:
                    budget -= w.read(out, min(cap, budget), now, self.settings)
                except OSError as exc:
                    self._fail_file(w, exc, "read", now)
                    continue
                self._ok(w.path)
                self._lineage.note(w.fp, w.sample, w.offset, w.id_key)

    def _release(self, out: list[Chunk], now: float) -> None:
        # A gone file is held only until it is read to its end and quiet for rotate_wait
        # (its writer may still add its last lines); a live one until idle.
        st = self.settings
        for key, w in list(self._files.items()):
            if w.f is None:
                continue
            if w.gone_since is not None:
                quiet = now - max(w.gone_since, w.last_growth) >= st.rotate_wait
                if quiet and not (w.drained or w.at_partial) and self._deleted(w):
                    # Deleted, and still not read after rotate_wait (reading is paused: a
                    # full spool, or a sink without one): its handle is not kept to hold the
                    # data. On Windows it would leave the name "delete pending" and the
                    # service's next rename onto it would fail; elsewhere, disk space.
                    self._losses.report(
                        w.path, max(0, w.size - w.offset), None, "deleted before it was read", w.key
                    )
                    self._discovered.append(Discovery(key, w.path, size=w.size))
                    with contextlib.suppress(OSError):
                        w.close()
                    del self._files[key]
                    continue
                if not quiet or not (w.drained or w.at_partial):
                    continue
                if w.at_partial:  # the writer is gone: its last line will not be finished
                    try:
                        w.read(out, st.max_line_bytes + 1, now, st, force_partial=True)
                    except OSError as exc:
                        self._fail_file(w, exc, "read", now)
                        continue
                self._discovered.append(Discovery(key, w.path, size=w.size))
                with contextlib.suppress(OSError):
                    w.close()
                del self._files[key]
                self._losses.released(w)
            elif w.drained and now - w.last_growth >= st.close_idle_after:
                with contextlib.suppress(OSError):
                    w.close()

    def _deleted(self, w: WatchedFile) -> bool:
        assert w.f is not None
        try:
            return self._os.deleted(w.f)
        except OSError:
            return False

    def _fail_file(self, w: WatchedFile, exc: OSError, op: str, now: float) -> None:
        """A tracked file failed: retried with back-off; a gone one is released at once (the
        device errs and the name is gone: holding the handle would keep nothing readable)."""
        self._fail(w.path, exc, op, now)
        if w.gone_since is None or self._files.get(w.key) is not w:
            return
        self._losses.report(w.path, max(0, w.size - w.offset), None, "gone and unreadable", w.key)
        with contextlib.suppress(OSError):
            w.close()
        del self._files[w.key]

    # -- lost content at stop (the rest is in losses.py) -----------------------------------
    def _report_gone_at_close(self, w: WatchedFile) -> None:
        # Its unacknowledged rest cannot be read after a restart; counted while the handle
        # is still here.
        acked = self._losses.acked(w)
        size = w.size
        with contextlib.suppress(OSError):
            assert w.f is not None
            size = max(size, self._os.identify(w.f).size)
        if size <= acked:
            return
        lines = self._count_lines(w, acked, size)
        self._losses.report(w.path, size - acked, lines, "gone, and the sidecar stops", w.key)

    def _count_lines(self, w: WatchedFile, start: int, end: int) -> int | None:
        """Lines in ``[start, end)`` of an open file (a last line without its newline counts),
        or None when too big to count at shutdown, UTF-16, or unreadable."""
        if end - start > _COUNT_LINES_UP_TO or w.enc.is_utf16 or w.f is None:
            return None
        lines, pos, last = 0, start, b"\n"
        try:
            while pos < end:
                block = read_at(w.f, pos, min(1 << 20, end - pos))
                if not block:
                    break
                lines += block.count(b"\n")
                pos += len(block)
                last = block[-1:]
        except OSError:
            return None
        return lines + (last != b"\n")
