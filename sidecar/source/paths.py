"""Which files to tail: the folder scan with include/exclude globs (the "paths provider").

Patterns follow the rule users know from ``.gitignore``: a pattern without ``/`` matches the
file **name** at any depth (``*.log``); a pattern with ``/`` matches the path **relative to
the source folder**, with ``/`` between folders on every OS (``checkout/*.log``,
``archive/**``). In such a pattern ``*`` and ``?`` stay within one folder and ``**`` spans
folders, as in Vector's, Filebeat's and Fluent Bit's path globs.

The scan never stops at one bad entry: an entry that cannot be examined (a symlink loop, an
unreadable sub-folder, a name too long, EIO) is skipped and reported in
:attr:`ScanResult.problems`; matching names that are not regular files (a FIFO, a socket, a
device) in :attr:`ScanResult.special`.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry the scan could not examine: ``op`` is ``list`` (a folder) or ``stat``."""

    path: str
    op: str
    error: OSError


@dataclass(slots=True)
class ScanResult:
    """Matching regular files by (device, inode); the source folder's own error (None when it
    was listed); entries skipped because of an error; matching names that are not regular
    files (path, what); every path listed (for forgetting the failures of vanished paths)."""

    found: dict[tuple[int, int], Seen] = field(default_factory=dict)
    root_error: OSError | None = None
    problems: list[Problem] = field(default_factory=list)
    special: list[tuple[str, str]] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)


def _norm(name: str) -> str:
    # Windows file names are case-insensitive: APP.LOG matches *.log there.
    return name.lower() if sys.platform == "win32" else name


def _bracket(pat: str, i: int) -> tuple[str, int] | None:
    """The regex of the ``[...]`` class starting at ``pat[i]``, and the index after it."""
    j = i + 1
    if j < len(pat) and pat[j] == "!":
        j += 1
    if j < len(pat) and pat[j] == "]":
        j += 1
    j = pat.find("]", j)
    if j == -1:
        return None
    body = pat[i + 1 : j].replace("\\", "\\\\")
    if body.startswith("!"):
        body = "^" + body[1:]
    elif body.startswith("^"):
        body = "\\" + body
    return f"[{body}]", j + 1


def glob_regex(pattern: str) -> str:
    """A ``/``-separated glob as a regex (without anchors): ``*`` and ``?`` within one folder,
    ``**`` across folders (``**/`` also matches no folder at all), ``[...]`` classes."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (br := _bracket(pattern, i)) is not None:
            out.append(br[0])
            i = br[1]
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class _Globs:
    """Patterns matched at once: those without ``/`` against the name, the others against
    the relative path (one regex each)."""

    def __init__(self, patterns: list[str]) -> None:
        names: list[str] = []
        rels: list[str] = []
        for p in patterns:
            p = _norm(p.replace("\\", "/") if sys.platform == "win32" else p)
            (rels if "/" in p else names).append(glob_regex(p.lstrip("/")))
        self.name = _alternation(names)
        self.rel = _alternation(rels)

    def hit(self, name: str, rel: str) -> bool:
        return bool(
            (self.name is not None and self.name.match(name))
            or (self.rel is not None and self.rel.match(rel))
        )


def _alternation(regexes: list[str]) -> re.Pattern[str] | None:
    if not regexes:
        return None
    return re.compile("(?:" + "|".join(f"(?:{r})" for r in regexes) + r")\Z", re.DOTALL)


class PathMatcher:
    """Include/exclude globs; exclude wins. A pattern without ``/`` matches the file name, one
    with ``/`` the path relative to the source folder (``/``-separated)."""

    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self._include = _Globs(include)
        self._exclude = _Globs(exclude)

    def __call__(self, name: str, rel: str | None = None) -> bool:
        """Does the file ``name`` (at ``rel``, relative to the folder; default: ``name``)
        match?"""
        n = _norm(name)
        r = n if rel is None else _norm(rel)
        return self._include.hit(n, r) and not self._exclude.hit(n, r)


def scan(
    settings: SourceSettings,
    matcher: PathMatcher,
    skip: Callable[[str], bool] = lambda _p: False,
) -> ScanResult:
    """Every matching regular file under ``settings.path``, by (device, inode).

    A file reachable under two names (hard link) is reported once. A missing folder is not
    an error (``root_error`` is ``FileNotFoundError``): the service may create it later.
    ``skip(path)``: leave this entry alone for now (its back-off has not run out)."""
    res = ScanResult()
    root = settings.path
    stack = [(root, "")]  # (folder, its path relative to root with "/", ending in "/")
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if folder == root:
                res.root_error = exc
            elif not isinstance(exc, FileNotFoundError):  # (a sub-folder removed meanwhile)
                res.problems.append(Problem(folder, "list", exc))
            continue
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            _examine(entry, rel, settings, matcher, skip, stack, res)
    return res


def _examine(
    entry: os.DirEntry[str],
    rel: str,
    settings: SourceSettings,
    matcher: PathMatcher,
    skip: Callable[[str], bool],
    stack: list[tuple[str, str]],
    res: ScanResult,
) -> None:
    path = entry.path
    res.listed.add(path)
    if skip(path):
        return
    try:
        if entry.is_dir(follow_symlinks=False):
            if settings.recursive:
                stack.append((path, f"{rel}{entry.name}/"))
            return
        if not matcher(entry.name, rel + entry.name):
            return
        if not settings.follow_symlinks and entry.is_symlink():
            return
        st = stat_path(path)
    except OSError as exc:
        res.problems.append(Problem(path, "stat", exc))
        return
    if st is None or stat.S_ISDIR(st.st_mode):
        return  # vanished meanwhile, or a link to a folder
    if st.st_ino == 0 and sys.platform == "win32":
        # os.stat fell back to the directory entry (no file index): the file is being
        # deleted (delete pending while someone, maybe we, holds it) or opened exclusively.
        # It has no identity to follow now; the next scan looks again.
        return
    if not stat.S_ISREG(st.st_mode):
        what = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket or device"
        res.special.append((path, what))
        return
    key = (st.st_dev, st.st_ino)
    if key not in res.found:
        res.found[key] = Seen(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
