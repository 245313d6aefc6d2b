"""Which files ``obskit validate`` reads: files, folders (recursive, globbed), ``-`` for stdin."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from obskit._names import safe_path

DEFAULT_GLOBS = ("*.log", "*.jsonl", "*.ndjson", "*.json", "*.log.gz", "*.jsonl.gz", "*.ndjson.gz")

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class InputError(Exception):
    """A named input does not exist or cannot be listed."""


@dataclass(frozen=True)
class Input:
    """One input to check: a file (or ``-``), or a folder that could not be listed
    (``error`` says why; it is reported like a file that could not be read)."""

    path: str
    error: str | None = None


@dataclass
class Inputs:
    """The inputs in a stable order, and notes about what was left out (for standard error)."""

    items: list[Input] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        """The paths that will be read."""
        return [i.path for i in self.items if i.error is None]


def expand_inputs(
    args: Sequence[str], globs: Sequence[str] = (), exclude: Path | None = None
) -> Inputs:
    """Files as given, folders walked sorted. In folders, special files (FIFOs, sockets,
    devices: reading them could block forever) are left out with a note, and so is
    ``exclude`` (the report being written) anywhere."""
    patterns = tuple(globs) or DEFAULT_GLOBS
    out = Inputs()
    for arg in args:
        if arg == "-":
            out.items.append(Input("-"))
            continue
        p = Path(arg)
        if p.is_dir():
            _walk(p, patterns, exclude, out)
        elif p.exists():
            _add(str(p), exclude, out)
        else:
            raise InputError(f"{safe_path(arg)}: no such file or directory")
    return out


def _walk(top: Path, patterns: tuple[str, ...], exclude: Path | None, out: Inputs) -> None:
    def unlistable(exc: OSError) -> None:
        # os.walk would skip the folder silently; a CI run must not pass without it.
        path = str(exc.filename) if exc.filename is not None else str(top)
        why = exc.strerror or str(exc)
        out.items.append(Input(path, f"{safe_path(path)}: cannot list folder: {why}"))

    for root, dirs, files in os.walk(top, onerror=unlistable):
        dirs.sort()
        for name in sorted(files):
            if not any(fnmatch.fnmatch(name, g) for g in patterns):
                continue
            path = str(Path(root) / name)
            try:
                mode = os.stat(path).st_mode
            except OSError:
                mode = stat.S_IFREG  # a broken or looping link: its read reports the error
            kind = next((what for test, what in _SPECIAL if test(mode)), None)
            if kind is not None:
                out.notes.append(f"skipped {safe_path(path)}: {kind}, not a regular file")
                continue
            _add(path, exclude, out)


def _add(path: str, exclude: Path | None, out: Inputs) -> None:
    if exclude is not None and _same_file(path, exclude):
        out.notes.append(f"skipped {safe_path(path)}: the report file being written")
        return
    out.items.append(Input(path))


def _same_file(path: str, other: Path) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:  # one of them does not exist (yet)
        return os.path.normcase(os.path.abspath(path)) == os.path.normcase(os.path.abspath(other))
