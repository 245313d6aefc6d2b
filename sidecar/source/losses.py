"""No loss is silent: content that became unreachable before the sidecar read it (or, when it
stops, before every sink acknowledged it) is reported, with its bytes and, where they could be
counted, its lines.

Where content can be lost, and when it is reported:

- a file gone (deleted, or renamed away from the patterns) while the tailer had no handle on
  it (closed as idle, failing, or vanished between the scan and the open): its bytes past the
  read position, at the next folder scan, unless the file turns up again (renamed);
- a truncation that overtook the reader (copy+truncate, a shrinking file): the bytes between
  the read position and the old size, at the next scan, less what a copy in the folder holds
  (a file with the same first line and first bytes; the copy is read from where the original
  was, see ``identity.py``);
- at start, a checkpointed file gone or replaced while the sidecar was away: its bytes between
  the checkpoint and its size when last seen (after a ``kill -9`` some of them may have reached
  a sink before the crash without being acknowledged);
- at stop, a gone file whose lines are not all acknowledged (it cannot be read again): from
  its checkpoint to its end, lines counted through the handle when it is still held.

Lines are known only where the bytes can still be read (the last case); elsewhere the bytes
were never read and the line count is reported as unknown. A reported loss is settled in the
checkpoints (its recorded size is set to its offset) so the next start does not report it
again. Content in a folder that could not be listed only looks gone: it waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from obskit._names import safe_path
from sidecar.source.faults import SourceEvent
from sidecar.source.identity import Discovery, Entry, KnownFiles, devino_of_key, fingerprint_of_key
from sidecar.source.watcher import WatchedFile

# Released gone files awaiting their acknowledgements, remembered for the report at stop
# (beyond this many, the next start reports them from the checkpoints instead).
MAX_RELEASED = 10_000


@dataclass(slots=True, frozen=True)
class LostTotals:
    """Content reported lost since start: ``bytes``, the ``lines`` among them that could be
    counted, in how many ``events``, of which ``lines_unknown`` without a line count."""

    bytes: int = 0
    lines: int = 0
    events: int = 0
    lines_unknown: int = 0


@dataclass(slots=True)
class _AtRisk:
    """Content of ``key`` from ``start`` to ``end`` that may be lost. Settled at the first
    full scan after ``scan``: not lost while the file is still there (``devino``, for a file
    that only vanished), nor as far as a copy with the same start (``sample``) holds it."""

    key: str
    path: str
    start: int
    end: int
    scan: int
    why: str
    devino: tuple[int, int] | None = None
    sample: Entry | None = None


class Losses:
    """The source's ledger of content at risk and lost. Reports go to ``events``; what the
    checkpoints must remember (a loss settled) to ``discovered``."""

    def __init__(
        self, known: KnownFiles, events: list[SourceEvent], discovered: list[Discovery]
    ) -> None:
        self.known = known
        self.totals = LostTotals()
        self._events = events
        self._discovered = discovered
        self._at_risk: list[_AtRisk] = []
        # Gone files released (read to their end) whose lines are not all acknowledged
        # yet: key -> (path, start, size).
        self._released: dict[str, tuple[str, int, int]] = {}
        self._checked_start = False

    # -- what may be lost --------------------------------------------------------------------
    def gone(self, w: WatchedFile, scan: int) -> None:
        """``w`` vanished while no handle was held on it: what it had not read is at risk."""
        self._risk(w, max(w.seen_size, w.size), scan, "gone before it was read", gone=True)

    def truncated(self, w: WatchedFile, scan: int) -> None:
        """``w`` was truncated or rewritten: its old content past the read offset is at risk."""
        self._risk(w, w.size, scan, "truncated before it was read", gone=False)

    def vanished(self, path: str, devino: tuple[int, int], size: int, scan: int) -> None:
        """A file seen by a scan was gone when opened: lost unless it was only renamed."""
        if size:
            self._at_risk.append(
                _AtRisk("", path, 0, size, scan, "gone before it was opened", devino)
            )

    def released(self, w: WatchedFile) -> None:
        """A gone file read to its end was released; its lines may not be acknowledged yet."""
        if len(self._released) < MAX_RELEASED:
            self._released[w.key] = (w.path, w.start, w.size)

    def _risk(self, w: WatchedFile, end: int, scan: int, why: str, *, gone: bool) -> None:
        if end > w.offset:
            devino = (w.dev, w.ino) if gone else None
            self._at_risk.append(
                _AtRisk(w.key, w.path, w.offset, end, scan, why, devino, Entry(0, w.sample))
            )

    # -- settling ----------------------------------------------------------------------------
    def settle(
        self,
        seen: Iterable[tuple[int, int]],
        files: Iterable[WatchedFile],
        scan: int,
        unlisted: list[str],
        folder_ok: bool,
    ) -> None:
        """After a folder scan (number ``scan``; ``seen``: the devinos it found, ``files`` the
        tracked files, ``unlisted`` the folders it could not list): report what is lost."""
        self._prune_released()
        seen = set(seen)
        files = list(files)
        if not self._checked_start and folder_ok:
            self._checked_start = True
            self._check_start(seen, files, scan)
        keep = []
        for r in self._at_risk:
            if r.scan >= scan or _under(r.path, unlisted):
                keep.append(r)  # no scan since (a copy may not be listed yet), or unseeable
                continue
            if r.devino is not None and r.devino in seen:
                continue  # renamed, not gone: it is read under its new name
            lost = r.end - max(r.start, self._carried(r, files))
            if lost > 0:
                self.report(r.path, lost, None, r.why, r.key)
        self._at_risk = keep

    def _carried(self, r: _AtRisk, files: list[WatchedFile]) -> int:
        # How far a copy (same first line and first bytes, another identity) holds it.
        if r.sample is None or not r.key:
            return 0
        fp = fingerprint_of_key(r.key)
        sizes = [
            w.size for w in files if w.key != r.key and w.fp == fp and r.sample.matches(w.sample)
        ]
        return max(sizes, default=0)

    def _check_start(self, seen: set[tuple[int, int]], files: list[WatchedFile], scan: int) -> None:
        # Checkpointed files gone (or replaced) while the sidecar was away, with bytes past
        # their checkpoint never acknowledged; settled at once (``scan - 1``).
        by_devino = {(w.dev, w.ino): w.key for w in files}
        for key in self.known.file_keys():
            k = self.known.known(key)
            if k is None or k.size <= k.offset:
                continue
            devino = devino_of_key(key)
            why = "gone while the sidecar was away"
            if devino is not None and devino in seen:
                other = by_devino.get(devino)
                if other is None or other == key:
                    continue  # still there (or not identified yet)
                devino, why = None, "replaced while the sidecar was away"
            sample = Entry(0, b"", k.head) if k.head else None
            self._at_risk.append(
                _AtRisk(key, k.path, k.offset, k.size, scan - 1, why, devino, sample)
            )

    def truncated_while_away(self, key: str, path: str, saved: int, scan: int) -> None:
        """``key`` is shorter than its checkpoint ``saved``: its old content past the
        checkpoint, up to its last recorded size, was never acknowledged."""
        k = self.known.known(key)
        if k is not None and k.size > saved:
            sample = Entry(0, b"", k.head) if k.head else None
            why = "truncated while the sidecar was away"
            self._at_risk.append(_AtRisk(key, path, saved, k.size, scan - 1, why, None, sample))

    def _prune_released(self) -> None:
        for key, (_path, start, size) in list(self._released.items()):
            k = self.known.known(key)
            if (start if k is None else k.offset) >= size:
                del self._released[key]

    # -- at stop -----------------------------------------------------------------------------
    def acked(self, w: WatchedFile) -> int:
        """Where ``w``'s acknowledged lines end (where it started when it has no checkpoint)."""
        k = self.known.known(w.key)
        return w.start if k is None else k.offset

    def close(self) -> None:
        """Report released gone files whose lines are still not all acknowledged."""
        self._prune_released()
        for key, (path, start, size) in self._released.items():
            k = self.known.known(key)
            acked = start if k is None else k.offset
            self.report(path, size - acked, None, "gone, and the sidecar stops", key)
        self._released.clear()

    # -- reporting ---------------------------------------------------------------------------
    def report(self, path: str, nbytes: int, lines: int | None, why: str, key: str = "") -> None:
        """One loss: a WARN with bytes and lines (or "line count unknown"); settled in the
        checkpoints when it belongs to a checkpointed ``key``."""
        shown = safe_path(path)
        what = f"{lines} lines" if lines is not None else "line count unknown"
        self._events.append(
            SourceEvent(
                f"lost {nbytes} bytes ({what}) of {shown}: {why}",
                "lost",
                fields={"path": shown, "bytes": nbytes, "lines": lines, "why": why},
                lost_bytes=nbytes,
                lost_lines=lines,
            )
        )
        t = self.totals
        self.totals = replace(
            t,
            bytes=t.bytes + nbytes,
            lines=t.lines + (lines or 0),
            events=t.events + 1,
            lines_unknown=t.lines_unknown + (lines is None),
        )
        k = self.known.known(key) if key else None
        if k is not None:  # the next start must not report it again
            self._discovered.append(Discovery(key, path, size=k.offset))


def _under(path: str, folders: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in folders)
