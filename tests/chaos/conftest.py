"""Fixtures of the chaos suite: a seeded :class:`Chaos` run per test, cleaned up, with the
seed attached to any failure report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoshelp import Chaos, chaos_seed


@pytest.fixture
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    seed = chaos_seed()
    request.node.user_properties.append(("chaos_seed", seed))
    run = Chaos(tmp_path, seed, request.node.name.removeprefix("test_"))
    try:
        yield run
    finally:
        run.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for k, v in item.user_properties:
            if k == "chaos_seed":
                rep.sections.append(("chaos seed", f"replay with OBSKIT_CHAOS_SEED={v}"))
