"""Local files backend: every line of a trace in folders (recursive) and files, including
``.gz`` archives, UTF-8 with or without BOM, CRLF, and UTF-16 (by BOM).

Speed comes from never decoding lines that cannot match: files are read in large blocks and
searched for the id's bytes with ``bytes.find`` (C speed, no copies); only the lines around a
hit are parsed as JSON. Memory stays bounded by the block size plus one line.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from obskit.schema.encoding import Encoding, sniff, utf16_to_utf8
from obskit.trace.model import Entry, TraceUsageError, Window, entry_from_line

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
    warnings: list[str] = field(default_factory=list)


def list_files(paths: Sequence[str | Path]) -> Iterator[Path]:
    """Files named directly, then every file under each folder (sorted, hidden ones skipped)."""
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
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
            raise TraceUsageError(f"--path {arg}: no such file or directory")


def search_files(
    paths: Sequence[str | Path],
    trace_id: str,
    window: Window | None,
    block_size: int = BLOCK_SIZE,
) -> FileSearch:
    """Search ``paths`` for the lines of ``trace_id`` (lower-case 32 hex) within ``window``."""
    out = FileSearch()
    needle = trace_id.encode("ascii")
    for path in list_files(paths):
        out.files += 1
        try:
            _search_one(path, needle, trace_id, window, block_size, out)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            out.warnings.append(f"{path}: cannot read: {reason}")
    return out


def _search_one(
    path: Path,
    needle: bytes,
    trace_id: str,
    window: Window | None,
    block_size: int,
    out: FileSearch,
) -> None:
    def keep(raw: bytes, line_no: int) -> None:
        e = entry_from_line(raw, f"{path}:{line_no}", trace_id)
        if e is None:
            if b"{" not in raw[:64]:
                out.warnings.append(f"{path}:{line_no}: mentions the trace id but is not JSON")
            return
        if window is not None and not window.start_ns <= e.ts_ns < window.end_ns:
            out.outside_window += 1
            return
        out.entries.append(e)

    with open_shared(path) as f:
        for_blocks = _utf8_blocks(f, block_size)
        out.bytes_read += scan_blocks(for_blocks, needle, keep, path)


def _utf8_blocks(f: BinaryIO, block_size: int) -> Iterator[bytes]:
    """The file's content as UTF-8 blocks: gzip undone, UTF-16 transcoded, BOM dropped."""
    head = f.read(4)
    enc = sniff(head)
    if enc is Encoding.GZIP:
        f.seek(0)
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            yield from _utf8_blocks(gz, block_size)  # type: ignore[arg-type]
        return
    if enc is Encoding.UTF32:
        raise OSError(0, "UTF-32 is not supported; convert the file to UTF-8")
    if enc.is_utf16:
        f.seek(0)
        yield from utf16_to_utf8(f, enc, block_size)
        return
    first = head[enc.bom_length :]
    rest = f.read(block_size)
    if first or rest:
        yield first + rest
    while block := f.read(block_size):
        yield block


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


def _long_line(
    data: bytes, needle: bytes, on_line: Callable[[bytes, int], None], name: object, n: int
) -> None:
    if needle in data:
        # Hand the callback a non-JSON marker so it is reported, never silently lost.
        on_line(b"<line longer than %d bytes>" % MAX_LINE + needle, n)


def open_shared(path: Path) -> BinaryIO:
    """Open for reading so that the service writing the log can still rotate or delete it.

    On Windows, Python's ``open`` omits ``FILE_SHARE_DELETE``, so a long scan would block the
    application's log rotation; there the file is opened with ``CreateFileW`` and all three
    share modes.
    """
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        return _open_shared_windows(path)
    return open(path, "rb")


def _open_shared_windows(path: Path) -> BinaryIO:  # pragma: no cover - Windows only
    import ctypes
    import msvcrt
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined, unused-ignore]
    create = kernel32.CreateFileW
    create.restype = wintypes.HANDLE
    generic_read, share_all, open_existing, normal = 0x80000000, 0x7, 3, 0x80
    handle = create(str(path), generic_read, share_all, None, open_existing, normal, None)
    if handle == wintypes.HANDLE(-1).value:
        err = ctypes.get_last_error()  # type: ignore[attr-defined, unused-ignore]
        raise OSError(err, ctypes.FormatError(err), str(path))  # type: ignore[attr-defined, unused-ignore]
    fd = msvcrt.open_osfhandle(handle, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # type: ignore[attr-defined, unused-ignore]
    return os.fdopen(fd, "rb")
