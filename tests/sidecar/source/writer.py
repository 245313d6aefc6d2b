"""A log writer process for the rotation tests: writes numbered lines fast and rotates the
way real tools do. Usage: python writer.py SCHEME FOLDER LINES PER_FILE

Lines are ``<n:08d> <padding>\n``; ``n`` runs 0..LINES-1 once, whatever the scheme:
- segments:     obskit's SegmentWriter (new file per rotation, old ones deleted by retention)
- rename:       Python's RotatingFileHandler (app.log -> app.log.1 -> ... ; create app.log)
- copytruncate: logrotate's copytruncate (shift copies, copy app.log to app.log.1, truncate)
- delete:       unlink app.log while still writing to it, then start a new app.log
Prints "done" when finished.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import shutil
import sys
import time
from pathlib import Path

BATCH = 50
KEEP = 8


def line(n: int) -> bytes:
    return b"%08d %s\n" % (n, b"x" * (20 + n % 40))


def batches(total: int):  # type: ignore[no-untyped-def]
    for start in range(0, total, BATCH):
        yield range(start, min(total, start + BATCH))
        time.sleep(0.002)  # heavy but not a busy loop: ~20k lines/s


def segments(folder: Path, total: int, per_file: int) -> None:
    from obskit.sdk.segments import SegmentWriter

    w = SegmentWriter(folder, "svc", max_bytes=per_file * 50, keep_segments=KEEP, keep_bytes=0)
    for ns in batches(total):
        w.write(b"".join(line(n) for n in ns))
    w.close()


def rename(folder: Path, total: int, per_file: int) -> None:
    h = logging.handlers.RotatingFileHandler(
        folder / "app.log", maxBytes=per_file * 50, backupCount=KEEP, encoding="utf-8"
    )
    h.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("w")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    log.propagate = False
    for ns in batches(total):
        for n in ns:
            log.info(line(n)[:-1].decode())
    h.close()


def copytruncate(folder: Path, total: int, per_file: int) -> None:
    path = folder / "app.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    written = 0
    for ns in batches(total):
        os.write(fd, b"".join(line(n) for n in ns))
        written += len(ns)
        if written >= per_file:
            written = 0
            for i in range(KEEP - 1, 0, -1):
                src = folder / f"app.log.{i}"
                if src.exists():
                    os.replace(src, folder / f"app.log.{i + 1}")
            shutil.copyfile(path, folder / "app.log.1")
            os.truncate(path, 0)
    os.close(fd)


def delete(folder: Path, total: int, per_file: int) -> None:
    path = folder / "app.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    written = 0
    after_unlink = -1
    for ns in batches(total):
        os.write(fd, b"".join(line(n) for n in ns))
        written += len(ns)
        if after_unlink >= 0:
            after_unlink -= 1
            if after_unlink < 0:  # the deleted file got a few more batches; now a new one
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                written = 0
        elif written >= per_file:
            os.unlink(path)
            after_unlink = 2
    os.close(fd)


def main() -> None:
    scheme, folder, total, per_file = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:5])
    {"segments": segments, "rename": rename, "copytruncate": copytruncate, "delete": delete}[
        scheme
    ](folder, total, per_file)
    print("done", flush=True)


if __name__ == "__main__":
    main()
