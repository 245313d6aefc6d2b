"""Fixtures of the sidecar engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from enginehelp import Sidecar


@pytest.fixture
def sidecars() -> Iterator[list[Sidecar]]:
    """Sidecar processes started by a test; killed at the end if still running."""
    started: list[Sidecar] = []
    yield started
    for s in started:
        s.close()
