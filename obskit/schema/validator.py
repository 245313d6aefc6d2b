"""Validate lines against schema v1: one precise path that explains every violation
(:mod:`obskit.schema.precise`), and a batch fast path that accepts whole chunks at C speed and
hands anything doubtful to the precise path (:mod:`obskit.schema.batch`). The fast path never
accepts a line the precise path rejects (property-tested).
"""

from obskit.schema.batch import ChunkResult, split_lines, validate_chunk, validate_lines
from obskit.schema.precise import DEFAULT_POLICY, check_line, top_level_keys, validate_line

__all__ = [
    "DEFAULT_POLICY",
    "ChunkResult",
    "check_line",
    "split_lines",
    "top_level_keys",
    "validate_chunk",
    "validate_line",
    "validate_lines",
]
