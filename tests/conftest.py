"""Shared fixtures. Servers started by tests bind to 127.0.0.1 only."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under pytest-xdist (``--dist loadgroup``) the chaos tests run one after another on one
    # worker: each drives real processes at fixed rates for fixed seconds and checks that
    # rotations and faults really happened, which two of them at once on 2 cores could starve.
    for item in items:
        if item.get_closest_marker("chaos"):
            item.add_marker(pytest.mark.xdist_group("chaos"))
