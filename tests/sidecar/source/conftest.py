"""Fixtures for the source tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    s = CheckpointStore(tmp_path / "state" / "checkpoints.json")
    assert s.load() == []
    return s


@pytest.fixture
def settings(logdir: Path) -> SourceSettings:
    return SourceSettings(path=str(logdir), fs_events=False, poll_interval=0.05)
