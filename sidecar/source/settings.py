"""What the source reads and how: folder, globs, timings and limits (floats in seconds here;
the engine's config loader parses "1s"/"500ms")."""

from __future__ import annotations

import sys
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal

import msgspec

from sidecar.config_convert import check


def default_log_dir() -> str:
    """``C:\\app\\logs`` on Windows, ``/app/logs`` elsewhere (the SDK writes there too)."""
    if sys.platform == "win32":
        return str(PureWindowsPath("C:/app/logs"))
    return str(PurePosixPath("/app/logs"))


# Active files plus what the usual rotation schemes leave behind, so a rotated-away file is
# still found by identity and drained: rename+create (logrotate, log4j, Python's
# RotatingFileHandler: app.log.1, app.log.2...), copy+truncate (the copy app.log.1) and date
# suffixes (app.log.2024-10-01, TimedRotatingFileHandler). The SDK's own segments end in .log.
DEFAULT_INCLUDE: tuple[str, ...] = ("*.log", "*.log.[0-9]*")
# Compressed rotations are finished archives: never tail them.
DEFAULT_EXCLUDE: tuple[str, ...] = ("*.gz", "*.zip", "*.bz2", "*.xz", "*.zst", "*.tmp")


class SourceSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings of the file source (see docs/sidecar-source.md for the full story).

    path: folder to watch; while it is missing or unreadable a warning says so and the source
    reports it as not healthy, and it is picked up when it appears. include/exclude: glob
    patterns; one without ``/`` matches the file name (at any depth), one with ``/`` the path
    relative to ``path`` (``*`` within one folder, ``**`` across folders); exclude wins.
    recursive: also look in sub-folders. poll_interval: seconds between discovery scans.
    fs_events: let file-system events (watchdog) wake the poll early.
    fingerprint_bytes: identity covers the first line, at most this many bytes.
    max_line_bytes: longer lines are reported as ``TooLong`` (quarantined), never split.
    read_chunk_bytes: size of one read. partial_line_timeout: seconds after which a last line
    without newline that stopped growing is emitted (``Chunk.flushed_partial``); None: never.
    close_idle_after: release the handle of a file that did not grow for this long.
    rotate_wait: a rotated-away or deleted file is read to its end, and its handle released
    once it has not grown for this long (its writer may still add its last lines); it is never
    held longer to keep data. start_at: where to start in files present at
    start-up that have no checkpoint ("beginning" or "end"); files appearing later are always
    read from the beginning. follow_symlinks: read matching names that are symbolic links to
    files (as Kubernetes' /var/log/containers are); false ignores them, so whoever can write
    the log folder cannot point the sidecar at another file it may read.
    """

    path: str = msgspec.field(default_factory=default_log_dir)
    include: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_INCLUDE))
    exclude: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    recursive: bool = False
    poll_interval: float = 1.0
    fs_events: bool = True
    fingerprint_bytes: int = 1024
    max_line_bytes: int = 262144
    read_chunk_bytes: int = 1 << 20
    partial_line_timeout: float | None = 5.0
    close_idle_after: float = 30.0
    rotate_wait: float = 5.0
    start_at: Literal["beginning", "end"] = "beginning"
    follow_symlinks: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.poll_interval <= 0:
            problems.append("poll_interval: must be > 0")
        if self.fingerprint_bytes < 16:
            problems.append("fingerprint_bytes: must be >= 16")
        if self.max_line_bytes < 64:
            problems.append("max_line_bytes: must be >= 64")
        if self.read_chunk_bytes <= self.max_line_bytes:
            problems.append("read_chunk_bytes: must be larger than max_line_bytes")
        if self.partial_line_timeout is not None and self.partial_line_timeout < 0:
            problems.append("partial_line_timeout: must be >= 0 or null")
        if self.close_idle_after <= 0:
            problems.append("close_idle_after: must be > 0")
        if self.rotate_wait < 0:
            problems.append("rotate_wait: must be >= 0")
        if not self.include:
            problems.append("include: must list at least one pattern")
        check(problems)
