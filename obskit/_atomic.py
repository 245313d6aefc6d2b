"""Replace a file's whole content atomically and durably: a crash at any moment leaves the old
content or the new one, never a mix. Used for the sidecar's checkpoints and the file sink's
journal.

The steps: write a temporary file in the same folder (so the rename stays on one volume),
fsync it, ``os.replace`` it over the target, fsync the folder (POSIX: makes the rename itself
durable). On Windows a virus scanner or backup agent briefly opening the target makes the
replace fail with a sharing violation; it clears within moments, so it is retried.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

#: Tries of ``os.replace`` on Windows before the sharing violation is reported (about 2.5 s).
REPLACE_ATTEMPTS: Final = 10


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX). A no-op on Windows, where a
    directory cannot be opened for fsync and NTFS journals the metadata itself."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(
    src: Path,
    dst: Path,
    *,
    windows: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``os.replace(src, dst)``; on Windows (``windows``, default: this platform) a
    ``PermissionError`` (sharing violation) is retried with growing pauses before it is
    raised."""
    if windows if windows is not None else sys.platform == "win32":
        delay = 0.01
        for _ in range(REPLACE_ATTEMPTS - 1):
            try:
                os.replace(src, dst)
                return
            except PermissionError:
                sleep(delay)
                delay = min(delay * 2, 0.5)
    os.replace(src, dst)


def temp_path(path: Path) -> Path:
    """Where :func:`write_atomic` writes before the replace: hidden, per process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def stale_temps(path: Path) -> Iterator[Path]:
    """Temporary files of ``path`` left by a crash (of any process)."""
    return path.parent.glob(f".{path.name}.tmp-*")


def write_atomic(path: Path, data: bytes, *, tmp: Path | None = None) -> None:
    """Replace ``path``'s content with ``data`` atomically and durably (see the module).

    ``tmp`` overrides the temporary file (default :func:`temp_path`). Raises ``OSError``; the
    target is then unchanged and the temporary file removed.
    """
    tmp = tmp if tmp is not None else temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace(tmp, path)
        fsync_dir(path.parent)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
