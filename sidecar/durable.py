"""Durability helpers shared by the checkpoint store and the file sink."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
