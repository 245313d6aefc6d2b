"""Finding, identifying and reading log files: the sidecar's source side."""

from sidecar.source.chunk import Chunk

__all__ = ["Chunk"]
