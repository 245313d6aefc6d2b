"""A folder that cannot be listed, for root too: its path is longer than PATH_MAX."""

from __future__ import annotations

import os
from pathlib import Path


def unlistable_below(folder: Path, levels: int = 25) -> Path:
    """Create ``folder`` with ``levels`` nested sub-folders of 200-byte names below it (built
    with paths relative to each parent, which the kernel allows). Past the 4096-byte PATH_MAX
    a walk cannot list them: ENAMETOOLONG, which ``chmod 000`` cannot give a root user.
    Returns ``folder``; ``shutil.rmtree`` removes it."""
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(levels):
            os.mkdir("d" * 200, dir_fd=fd)
            nfd = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return folder
