"""Where every file has been read to, durably: the sidecar's checkpoint store.

One small JSON file holds, per file identity (``Chunk.file_key``), the byte offset up to which
every line has been acknowledged by every sink. It is replaced atomically (temp file in the same
folder, fsync, ``os.replace``, fsync of the folder) so a crash at any moment leaves either the
old or the new content; a SHA-256 over the entries detects a file that is corrupt anyway (disk
trouble, a hand edit), which is moved aside and reported instead of crashing the sidecar.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import msgspec

from obskit._atomic import stale_temps, write_atomic
from obskit._names import path_fields, path_from_fields
from sidecar.source.identity import Discovery, Known

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """The checkpoint file could not be written (the previous one is left intact)."""


class _Entry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    offset: int
    # Where the file was last seen, as text; a name that is not valid UTF-8 is shown escaped
    # here and kept exactly (os.fsencode bytes) in path_b64.
    path: str
    seen: float  # wall-clock time the file was last seen or advanced; drives retention
    # Digest of the file's first head_len bytes: recognises the same content under another
    # inode after a restart (a copy, a moved volume) without trusting the first line alone.
    head_len: int = 0
    head: str = ""
    # Key of the file this one is a copy of (copy+truncate): its lines keep that file's ids
    # after a restart. Empty for an original (written only for copies).
    origin: str = ""
    path_b64: str = ""
    # The file's size when last seen: bytes past ``offset`` of a file that is gone at the next
    # start were never acknowledged, and are reported lost.
    size: int = 0

    def set_path(self, path: str) -> None:
        f = path_fields(path)
        self.path, self.path_b64 = f["path"], f.get("path_b64", "")


class _File(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    version: int
    saved: float
    files: dict[str, _Entry]
    sha256: str
    # Per spooled sink, the number of the next record its spool would get at this save: the
    # records from there on were appended after it (see ``Engine._recover_spools``).
    spools: dict[str, int] = {}


_encoder = msgspec.json.Encoder(order="sorted")


def _digest(files: dict[str, _Entry], spools: dict[str, int] | None = None) -> str:
    h = hashlib.sha256(_encoder.encode(files))
    if spools:
        h.update(_encoder.encode(spools))
    return h.hexdigest()


class CheckpointStore:
    """Per-file-identity read offsets, saved durably.

    ``advance`` only moves forward and only touches memory; ``save`` persists. The engine calls
    ``advance`` once every sink acknowledged the lines up to ``offset``, ``record`` with what
    the tailer discovered about a file, and ``save`` on an interval and at shutdown: only the
    engine moves checkpoints. ``retention`` (seconds) bounds how long an identity that is no
    longer on disk is remembered (see ``forget_gone``).

    File names are kept exactly: one that is not valid UTF-8 is stored as its escaped text in
    ``path`` plus its bytes (``os.fsencode``) in base64 in ``path_b64``, so the file stays
    valid JSON and loads back to the same name.
    """

    def __init__(
        self,
        path: Path,
        retention: float = 7 * 86400,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.retention = retention
        self._now = wall_clock
        self._files: dict[str, _Entry] = {}
        # Recorded before their first advance (copies, files resumed from lineage).
        self._heads: dict[str, tuple[int, str]] = {}
        self._origins: dict[str, str] = {}
        self._dirty = False
        #: Spool positions saved with the checkpoints (sink name -> next record number).
        self.spools: dict[str, int] = {}
        #: Wall-clock time of the last successful save (or load), None before: for an age metric.
        self.last_saved: float | None = None

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read the file; return warnings. A missing file is a fresh start; a corrupt or
        truncated one is moved aside to ``<name>.corrupt-<ts>`` and the store starts empty."""
        warnings: list[str] = []
        self._files = {}
        self._dirty = False
        self._remove_stale_temps(warnings)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return warnings
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint file {self.path}: {exc}") from exc
        problem: str | None = None
        try:
            doc = msgspec.json.decode(raw, type=_File)
        except msgspec.DecodeError as exc:
            problem = f"not a valid checkpoint file ({exc})"
        else:
            if doc.version != FORMAT_VERSION:
                problem = f"unsupported checkpoint format version {doc.version}"
            elif doc.sha256 != _digest(doc.files, doc.spools):
                problem = "checksum mismatch (file corrupt or edited)"
            elif any(e.offset < 0 for e in doc.files.values()):
                problem = "negative offset"
        if problem is None:
            self._files = dict(doc.files)
            self.spools = dict(doc.spools)
            self.last_saved = doc.saved
            return warnings
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._now())}")
        try:
            os.replace(self.path, aside)
            where = f"moved aside to {aside}"
        except OSError as exc:
            where = f"could not be moved aside ({exc})"
        warnings.append(
            f"checkpoint file {self.path}: {problem}; {where}; starting without checkpoints"
            " (files are read again from their start: duplicates are possible, no loss)"
        )
        return warnings

    def _remove_stale_temps(self, warnings: list[str]) -> None:
        if not self.path.parent.is_dir():
            return
        for tmp in stale_temps(self.path):
            try:
                tmp.unlink()
            except OSError as exc:
                warnings.append(f"cannot remove stale temporary checkpoint file {tmp}: {exc}")

    def get(self, file_key: str) -> int | None:
        """The acknowledged offset of ``file_key``, or None when unknown."""
        e = self._files.get(file_key)
        return None if e is None else e.offset

    def file_keys(self) -> list[str]:
        """Every file identity remembered."""
        return list(self._files)

    def known(self, file_key: str) -> Known | None:
        """Everything remembered of ``file_key`` (None when it has no offset yet)."""
        e = self._files.get(file_key)
        if e is None:
            return None
        head = (e.head_len, e.head) if e.head_len else None
        return Known(e.offset, e.size, head, e.origin, path_from_fields(e.path, e.path_b64))

    def path_of(self, file_key: str) -> str | None:
        """The exact path ``file_key`` was last seen at."""
        e = self._files.get(file_key)
        return None if e is None else path_from_fields(e.path, e.path_b64)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def dirty(self) -> bool:
        """Changed since the last save."""
        return self._dirty

    # -- writing ---------------------------------------------------------------------------
    def advance(self, file_key: str, offset: int, path: str) -> None:
        """Record that every line of ``file_key`` before ``offset`` is acknowledged.

        Monotonic: an offset lower than the one recorded is ignored (a truncated file gets a
        new identity, so its offsets restart under another key).
        """
        e = self._files.get(file_key)
        now = self._now()
        if e is None:
            head_len, head = self._heads.pop(file_key, (0, ""))
            origin = self._origins.pop(file_key, "")
            e = self._files[file_key] = _Entry(offset, path, now, head_len, head, origin)
            e.set_path(path)
        elif offset > e.offset or path != path_from_fields(e.path, e.path_b64):
            e.offset = max(e.offset, offset)
            e.set_path(path)
            e.seen = now
        else:
            return
        self._dirty = True

    def record(self, d: Discovery) -> None:
        """Record what the tailer discovered about a file (see ``Discovery``): the digest of
        its first bytes, its origin when it is a copy, its size, and an offset to record now
        (a new original's start, or the end of a gone file whose rest was reported lost)."""
        if d.head is not None:
            self._describe(d.key, d.head)
        if d.origin:
            self._set_origin(d.key, d.origin)
        if d.advance_to is not None:
            self.advance(d.key, d.advance_to, d.path)
        if d.size is not None:
            e = self._files.get(d.key)
            if e is not None and e.size != d.size:
                e.size = d.size
                self._dirty = True

    def _describe(self, file_key: str, d: tuple[int, str]) -> None:
        # Kept with the offset once the file has one.
        e = self._files.get(file_key)
        if e is None:
            if len(self._heads) > 100_000:  # files never acknowledged: keep this bounded
                self._heads.clear()
            self._heads[file_key] = d
        elif d[0] > e.head_len:
            e.head_len, e.head = d
            self._dirty = True

    def _set_origin(self, file_key: str, origin: str) -> None:
        # ``file_key`` is a copy of ``origin`` (whose key its line ids use); kept with the
        # offset once the file has one, so it survives a restart.
        if origin == file_key:
            return
        e = self._files.get(file_key)
        if e is None:
            if len(self._origins) > 100_000:
                self._origins.clear()
            self._origins[file_key] = origin
        elif e.origin != origin:
            e.origin = origin
            self._dirty = True

    def origin_of(self, file_key: str) -> str:
        """The key whose line ids ``file_key`` uses: its origin when it is a recorded copy,
        else itself."""
        e = self._files.get(file_key)
        if e is not None and e.origin:
            return e.origin
        return self._origins.get(file_key, file_key)

    def head_of(self, file_key: str) -> tuple[int, str] | None:
        """``(length, digest)`` of the file's first bytes as recorded, or None."""
        e = self._files.get(file_key)
        if e is None or not e.head_len:
            return None
        return e.head_len, e.head

    def forget_gone(
        self, active_keys: Iterable[str], sizes: Mapping[str, int] | None = None
    ) -> list[str]:
        """Refresh the identities still on disk (and their ``sizes`` when given: the sizes
        seen by the source); drop those unseen for longer than retention.

        Returns the keys dropped."""
        now = self._now()
        active = set(active_keys)
        sizes = sizes or {}
        dropped = []
        for key, e in list(self._files.items()):
            if key in active:
                if now - e.seen > 60:  # refreshing every call would rewrite the file for nothing
                    e.seen = now
                    self._dirty = True
                size = sizes.get(key)
                if size is not None and size != e.size:
                    e.size = size
                    self._dirty = True
            elif now - e.seen > self.retention:
                del self._files[key]
                dropped.append(key)
        if dropped:
            self._dirty = True
        return dropped

    def save(self, spools: dict[str, int] | None = None) -> None:
        """Persist atomically and durably, with ``spools`` (sink -> next spool record
        number) when given; on failure raise ``CheckpointError``, old file intact."""
        now = self._now()
        if spools is not None and spools != self.spools:
            self.spools = dict(spools)
            self._dirty = True
        if not self._dirty and self.path.exists():
            self.last_saved = now
            return
        files = dict(self._files)
        spools = dict(self.spools)
        body = _encoder.encode(_File(FORMAT_VERSION, now, files, _digest(files, spools), spools))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, body)
        except OSError as exc:
            raise CheckpointError(
                f"cannot save checkpoints to {self.path}: {exc.strerror or exc}"
                " (previous checkpoint file left intact)"
            ) from exc
        self._dirty = False
        self.last_saved = now
