"""Schema v1 of obskit log lines: the rules, the validator and the shipped JSON Schema.

This is the one implementation of the rules in the project: the ``obskit validate`` command,
the SDK's tests, the pytest plugin and the sidecar all call into here.
"""

from obskit.schema.jsonschema_doc import json_schema
from obskit.schema.policy import Policy, PolicyError, load_policy
from obskit.schema.record import Record, timestamp_ns
from obskit.schema.rules import (
    DEFAULT_MAX_LINE_BYTES,
    LEVELS,
    REQUIRED_FIELDS,
    RULES,
    SCHEMA_FIELDS,
    SCHEMA_VERSION,
    nearest_level,
)
from obskit.schema.stream import StreamSummary, validate_stream
from obskit.schema.validator import (
    ChunkResult,
    check_line,
    split_lines,
    validate_chunk,
    validate_line,
    validate_lines,
)
from obskit.schema.violation import Violation

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "LEVELS",
    "REQUIRED_FIELDS",
    "RULES",
    "SCHEMA_FIELDS",
    "SCHEMA_VERSION",
    "ChunkResult",
    "Policy",
    "PolicyError",
    "Record",
    "StreamSummary",
    "Violation",
    "check_line",
    "json_schema",
    "load_policy",
    "nearest_level",
    "split_lines",
    "timestamp_ns",
    "validate_chunk",
    "validate_line",
    "validate_lines",
    "validate_stream",
]
