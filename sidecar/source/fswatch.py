"""Optional early wake-up from file-system events (watchdog). Polling stays the source of
truth: an event only makes the next poll happen sooner, so a missed event costs latency,
never data."""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

_IGNORED = frozenset({"opened", "closed_no_write"})


class FsWakeup:
    """Sets ``event`` whenever something changes under ``path``."""

    def __init__(self, path: str, recursive: bool, event: threading.Event) -> None:
        self._path = path
        self._recursive = recursive
        self._event = event
        self._observer: Any = None
        self._ident: tuple[int, int] | None = None
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._observer is not None

    def ensure_started(self) -> bool:
        """Start watching if not yet and the folder exists; cheap to call every poll.

        A folder deleted and re-created (a new volume mounted) is a new folder: the old
        watch went with it, so a new one is started."""
        try:
            st = os.stat(self._path)
        except OSError:
            st = None
        ident = None if st is None or not stat.S_ISDIR(st.st_mode) else (st.st_dev, st.st_ino)
        if self._observer is not None:
            if ident == self._ident:
                return True
            self.stop()
        if ident is None:
            return False
        self._ident = ident
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError as exc:  # pragma: no cover - watchdog is a declared dependency
            self.error = f"watchdog unavailable: {exc}"
            return False
        event = self._event

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, ev: Any) -> None:
                # Opening and closing without writing (the sidecar's own reads) change
                # nothing to read; waking on them would only cost a poll.
                if getattr(ev, "event_type", "") not in _IGNORED:
                    event.set()

        try:
            obs = Observer()
            obs.daemon = True
            obs.schedule(_Wake(), self._path, recursive=self._recursive)
            obs.start()
        except OSError as exc:  # e.g. inotify watch limit reached: polling still works
            self.error = f"file-system events unavailable for {self._path}: {exc}"
            return False
        self._observer = obs
        return True

    def stop(self) -> None:
        obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
            obs.join(timeout=5)
