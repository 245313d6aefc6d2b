"""Start ``obskit-sidecar`` for the chaos suite, optionally with an injected disk-full.

    python run_sidecar.py run --config F [--exit-on-idle S]

With ``OBSKIT_CHAOS_ENOSPC_FLAG=<file>`` and ``OBSKIT_CHAOS_ENOSPC_DIR=<dir>``: while the flag
file exists, opening a file for writing under ``dir`` and ``fsync`` of a file under ``dir``
fail with ``ENOSPC``, and ``os.write``/``os.writev`` to one writes half then fails, as on a
full volume
(the portable stand-in for a full tmpfs; needs no privileges). Without them this is exactly
``obskit-sidecar``.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path


def _fd_path(fd: int) -> str:
    for probe in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
        try:
            return os.readlink(probe)
        except OSError:
            continue
    return ""


def install_enospc(flag: Path, folder: Path) -> None:
    """Patch ``os.open``/``os.fsync``/``open`` so writes under ``folder`` fail while ``flag``
    exists."""
    import builtins
    import io

    root = str(folder.resolve())
    real_open, real_fsync, real_bopen = os.open, os.fsync, builtins.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def full(path: str) -> bool:
        return flag.exists() and os.path.abspath(path).startswith(root)

    def enospc(path: str) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if flags & writing and full(os.fspath(path)):
            raise enospc(os.fspath(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_fsync(fd):  # type: ignore[no-untyped-def]
        n = fd if isinstance(fd, int) else fd.fileno()
        path = _fd_path(n)
        if path and full(path) and not os.path.isdir(path):
            raise enospc(path)
        return real_fsync(fd)

    def fake_bopen(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            p = os.fsdecode(os.fspath(file))
            if full(p):
                raise enospc(p)
        return real_bopen(file, mode, *args, **kwargs)

    real_write = os.write

    def fake_write(fd, data):  # type: ignore[no-untyped-def]
        # A full disk takes part of a write, then refuses the rest (the spool appends with
        # os.write on a descriptor opened before the disk filled).
        if flag.exists():
            path = _fd_path(fd)
            if path and full(path):
                view = memoryview(data)
                if len(view) > 1:
                    real_write(fd, view[: len(view) // 2])
                raise enospc(path)
        return real_write(fd, data)

    real_writev = getattr(os, "writev", None)

    def fake_writev(fd, buffers):  # type: ignore[no-untyped-def]
        if flag.exists():
            path = _fd_path(fd)
            if path and full(path):
                fake_write(fd, b"".join(bytes(b) for b in buffers))
        return real_writev(fd, buffers)  # type: ignore[misc]

    os.open = fake_open
    os.fsync = fake_fsync
    os.write = fake_write
    if real_writev is not None:
        os.writev = fake_writev
    builtins.open = fake_bopen
    io.open = fake_bopen  # type: ignore[assignment]


def main() -> None:
    flag, folder = (
        os.environ.get("OBSKIT_CHAOS_ENOSPC_FLAG"),
        os.environ.get("OBSKIT_CHAOS_ENOSPC_DIR"),
    )
    if flag and folder:
        install_enospc(Path(flag), Path(folder))
    from sidecar.cli import main as sidecar_main

    sys.argv[0] = "obskit-sidecar"
    sidecar_main()


if __name__ == "__main__":
    main()
