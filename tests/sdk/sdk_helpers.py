"""Helpers shared by the SDK tests (a module, since tests/ is not a package)."""

from __future__ import annotations

from pathlib import Path

import obskit
from obskit.schema import validate_line


def read_records(folder: Path) -> list[bytes]:
    """Every line of every ``*.log`` segment in ``folder`` (flushes first), oldest file first."""
    assert obskit.flush(5.0)
    lines: list[bytes] = []
    for path in sorted(folder.glob("*.log")):
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path} ends with a partial line"
        lines.extend(data.splitlines())
    return lines


def assert_valid(lines: list[bytes]) -> None:
    """Every line passes obskit's validator."""
    assert lines
    for line in lines:
        assert validate_line(line) == [], (line, [v.format() for v in validate_line(line)])
