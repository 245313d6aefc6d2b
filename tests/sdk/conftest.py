"""SDK test fixtures: a configured obskit writing into a temporary folder, reset afterwards."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import obskit
from obskit.sdk import configure as configure_mod
from obskit.sdk.context import clear
from obskit.sdk.hub import HUB


def pytest_configure(config: pytest.Config) -> None:
    # `pytest_plugins = ["pytester"]` is only allowed in the top-level conftest (pytest errors
    # "Defining 'pytest_plugins' in a non-top-level conftest" when run from the repo root), so
    # the pytester fixture's plugin is loaded here instead.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def sdk(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``sdk(**options)`` configures obskit into ``log_dir`` (service ``test-svc``)."""
    for var in list(__import__("os").environ):
        if var.startswith("OBSKIT_"):
            monkeypatch.delenv(var)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def _configure(**options: Any) -> Any:
        options.setdefault("service", "test-svc")
        options.setdefault("log_dir", log_dir)
        return obskit.configure(**options)

    yield _configure
    obskit.shutdown()
    HUB.writer = None
    HUB.renderer = None
    configure_mod._current = None
    structlog.reset_defaults()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    configure_mod._install_excepthooks(False)
    clear()
