"""Which files to tail: the folder scan with include/exclude globs (the "paths provider")."""

from __future__ import annotations

import fnmatch
import os
import stat
import sys
from dataclasses import dataclass

from sidecar.source.osfile import stat_path
from sidecar.source.settings import SourceSettings


@dataclass(frozen=True, slots=True)
class Seen:
    """A matching file found by a scan."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int


def _norm(name: str) -> str:
    # Windows file names are case-insensitive: APP.LOG matches *.log there.
    return name.lower() if sys.platform == "win32" else name


class PathMatcher:
    """Include/exclude globs matched against the file name; exclude wins."""

    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self._include = [_norm(p) for p in include]
        self._exclude = [_norm(p) for p in exclude]

    def __call__(self, name: str) -> bool:
        n = _norm(name)
        if not any(fnmatch.fnmatchcase(n, p) for p in self._include):
            return False
        return not any(fnmatch.fnmatchcase(n, p) for p in self._exclude)


def scan(settings: SourceSettings, matcher: PathMatcher) -> dict[tuple[int, int], Seen]:
    """Every matching regular file under ``settings.path``, by (device, inode).

    A file reachable under two names (hard link) is reported once. A missing folder is not
    an error: the service may create it later.
    """
    found: dict[tuple[int, int], Seen] = {}
    stack = [settings.path]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if settings.recursive:
                        stack.append(entry.path)
                    continue
            except OSError:
                continue
            if not matcher(entry.name):
                continue
            try:
                if not settings.follow_symlinks and entry.is_symlink():
                    continue
            except OSError:
                continue
            st = stat_path(entry.path)
            if st is None or not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
            if key not in found:
                found[key] = Seen(entry.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return found
