"""Finding, identifying and reading log files: the sidecar's source side."""

from sidecar.source.chunk import Chunk, TooLong
from sidecar.source.settings import SourceSettings

__all__ = ["Chunk", "SourceSettings", "TooLong"]
