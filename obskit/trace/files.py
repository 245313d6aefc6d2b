"""Local files backend: every line of a trace in folders (recursive) and files, including
``.gz`` archives, UTF-8 with or without BOM, CRLF, and UTF-16 (by BOM), read through the one
block reader (:func:`obskit.schema.encoding.utf8_blocks`).

Speed comes from never decoding lines that cannot match: files are read in large blocks and
searched for the id's bytes with ``bytes.find`` (C speed, no copies); only the lines around a
hit are parsed as JSON. Memory stays bounded by the block size plus one line.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from obskit import _winfile
from obskit._names import safe_path
from obskit._winfile import WinAPI
from obskit.schema.encoding import RefusedEncoding, utf8_blocks
from obskit.trace.model import BrokenLine, Entry, TraceUsageError, Window, read_line

BLOCK_SIZE: Final = 8 << 20
#: A line longer than this is not assembled in memory; a hit inside it is reported, not parsed.
MAX_LINE: Final = 8 << 20
#: Not log files, even inside a log folder (the sidecar's state, editors' swap files).
SKIP_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3", ".lock", ".pid", ".swp", ".tmp")


@dataclass
class FileSearch:
    """What a files search found and what it skipped, with reasons."""

    entries: list[Entry] = field(default_factory=list)
    files: int = 0
    bytes_read: int = 0
    #: Lines of the trace outside the window (reported so ``--since`` can be widened).
    outside_window: int = 0
    #: Files and folders that could not be read: ``<path>: cannot read: <reason>``.
    warnings: list[str] = field(default_factory=list)
    #: Lines that mention the trace id but cannot be shown, as notes naming ``<path>:<line>``
    #: and the reason.
    broken: list[str] = field(default_factory=list)


def list_files(paths: Sequence[str | Path], warnings: list[str] | None = None) -> Iterator[Path]:
    """Files named directly, then every file under each folder (sorted, hidden ones skipped).
    Folders that cannot be listed are added to ``warnings``."""

    def unlisted(exc: OSError) -> None:
        if warnings is not None:
            where = safe_path(os.fsdecode(exc.filename)) if exc.filename is not None else "?"
            warnings.append(f"{where}: cannot read folder: {exc.strerror or exc}")

    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for root, dirs, files in os.walk(p, onerror=unlisted):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith(".") or name.lower().endswith(SKIP_SUFFIXES):
                        continue
                    path = Path(root) / name
                    if path.is_file():  # not a FIFO or socket: opening one would block
                        yield path
        elif p.is_file():
            yield p
        else:
            raise TraceUsageError(f"--path {safe_path(str(arg))}: no such file or directory")


def search_files(
    paths: Sequence[str | Path],
    trace_id: str,
    window: Window | None,
    block_size: int = BLOCK_SIZE,
    *,
    win_api: WinAPI | None = None,
) -> FileSearch:
    """Search ``paths`` for the lines of ``trace_id`` (lower-case 32 hex) within ``window``.

    Names in sources and messages are shown with :func:`obskit._names.safe_path`.
    ``win_api`` is the Windows OS seam (tests pass fakes)."""
    out = FileSearch()
    needle = trace_id.encode("ascii")
    for path in list_files(paths, out.warnings):
        out.files += 1
        try:
            _search_one(path, needle, trace_id, window, block_size, out, win_api)
        except RefusedEncoding as exc:
            out.warnings.append(
                f"{safe_path(str(path))}: cannot read: {exc}; convert the file to UTF-8"
            )
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            out.warnings.append(f"{safe_path(str(path))}: cannot read: {reason}")
    return out


def _search_one(
    path: Path,
    needle: bytes,
    trace_id: str,
    window: Window | None,
    block_size: int,
    out: FileSearch,
    win_api: WinAPI | None,
) -> None:
    name = safe_path(str(path))

    def keep(raw: bytes, line_no: int) -> None:
        where = f"{name}:{line_no}"
        if raw.startswith(_LONG_LINE):
            got: Entry | BrokenLine | None = BrokenLine(f"longer than {MAX_LINE} bytes")
        else:
            got = read_line(raw, where, trace_id)
        if isinstance(got, BrokenLine):
            out.broken.append(f"{where}: mentions the trace id but is not shown: {got.reason}")
            return
        if got is None:
            return
        if window is not None and not window.start_ns <= got.ts_ns < window.end_ns:
            out.outside_window += 1
            return
        out.entries.append(got)

    with open_shared(path, win_api) as f:
        out.bytes_read += scan_blocks(utf8_blocks(f, block_size), needle, keep, name)


def scan_blocks(
    blocks: Iterator[bytes],
    needle: bytes,
    on_line: Callable[[bytes, int], None],
    name: object = "",
) -> int:
    """Call ``on_line(line, line_number)`` for every line containing ``needle``.

    Lines may span blocks; hits are searched in place (``find`` with bounds, no slicing of the
    block) and only a line's bytes are copied. Returns the number of bytes scanned.
    """
    total = 0
    line_no = 1  # number of the line that starts at the current block's first byte
    carry = b""  # the unfinished line from the previous blocks
    too_long = False  # skipping the rest of a line longer than MAX_LINE
    for block in blocks:
        total += len(block)
        first_nl = block.find(b"\n")
        if first_nl < 0:
            if too_long:
                continue
            carry += block
            if len(carry) > MAX_LINE:
                _long_line(carry, needle, on_line, name, line_no)
                carry, too_long = b"", True
            continue
        # The line that straddles the boundary.
        if too_long:
            too_long = False
        elif carry:
            line = carry + block[:first_nl]
            if needle in line:
                on_line(line, line_no)
        elif block.find(needle, 0, first_nl) >= 0:
            on_line(block[:first_nl], line_no)
        carry = b""
        base = line_no + 1
        counted_to = first_nl + 1
        last_nl = block.rfind(b"\n")
        pos = block.find(needle, first_nl + 1, last_nl)
        while pos >= 0:
            ls = block.rfind(b"\n", 0, pos) + 1
            le = block.find(b"\n", pos)
            base += block.count(b"\n", counted_to, ls)
            counted_to = ls
            on_line(block[ls:le], base)
            pos = block.find(needle, le + 1, last_nl)
        line_no = base + block.count(b"\n", counted_to)
        carry = block[last_nl + 1 :]
        if len(carry) > MAX_LINE:
            _long_line(carry, needle, on_line, name, line_no)
            carry, too_long = b"", True
    if carry and needle in carry:
        on_line(carry, line_no)
    return total


#: What ``on_line`` receives for a line too long to assemble (followed by the needle).
_LONG_LINE: Final = b"<line longer than %d bytes>" % MAX_LINE


def _long_line(
    data: bytes, needle: bytes, on_line: Callable[[bytes, int], None], name: object, n: int
) -> None:
    if needle in data:
        # Hand the callback a marker so the line is reported, never silently lost.
        on_line(_LONG_LINE + needle, n)


def open_shared(path: Path, win_api: WinAPI | None = None) -> BinaryIO:
    """Open for reading so that the service writing the log can still rotate or delete it.

    On Windows, Python's ``open`` omits ``FILE_SHARE_DELETE``, so a long scan would block the
    application's log rotation; there the file is opened through :mod:`obskit._winfile`
    (``win_api``: the OS seam, for tests).
    """
    if win_api is not None or sys.platform == "win32":
        return _winfile.open_shared(str(path), win_api, buffering=-1)
    return open(path, "rb")
