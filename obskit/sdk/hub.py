"""The process-wide switchboard: the active renderer and writer, swapped on reconfiguration.

Loggers cached by structlog keep a reference to :data:`HUB`, never to a renderer or writer, so
calling :func:`obskit.configure` again takes effect for every existing logger.
"""

from __future__ import annotations

from obskit.sdk.queue import AsyncWriter
from obskit.sdk.render import Renderer
from obskit.sdk.taps import TAPS


class Hub:
    """Holds the current :class:`Renderer` and :class:`AsyncWriter`."""

    __slots__ = ("renderer", "writer")

    def __init__(self) -> None:
        self.renderer: Renderer | None = None
        self.writer: AsyncWriter | None = None

    def emit(self, line: bytes) -> None:
        """Hand a rendered line to the taps, then to the writer queue (never blocks on I/O)."""
        if TAPS:
            for tap in tuple(TAPS):
                tap(line)
        writer = self.writer
        if writer is not None:
            writer.put(line)


HUB = Hub()
