"""Stub: being implemented (see docs/sidecar-source.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.checkpoint import CheckpointStore
from sidecar.source.chunk import Chunk
from sidecar.source.settings import SourceSettings


@dataclass(slots=True, frozen=True)
class FileStatus:
    """One tracked file, for lag metrics: ``size - read_offset`` bytes not read yet."""

    path: str
    file_key: str
    size: int
    read_offset: int
    open: bool


class Tailer:
    """Finds log files, follows them through rotations, reads complete lines in blocks."""

    def __init__(
        self,
        settings: SourceSettings,
        checkpoints: CheckpointStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.checkpoints = checkpoints
        self._clock = clock

    def poll(self, max_bytes: int = 4 << 20) -> list[Chunk]:
        """Discover files and read available complete lines, about ``max_bytes`` at most."""
        return []

    def wait(self, timeout: float) -> None:
        """Sleep until the poll interval elapses, a file-system event arrives or stop()."""
        time.sleep(min(timeout, self.settings.poll_interval))

    def stop(self) -> None:
        """Wake wait() and make later waits return at once."""

    def close(self) -> None:
        """Release every file handle and the file-system watcher."""

    def files(self) -> list[FileStatus]:
        """Tracked files with their sizes and read offsets."""
        return []

    def forget(self, file_key: str) -> None:
        """Stop tracking a file (its handle is closed)."""
