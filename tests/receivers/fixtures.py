"""Pytest fixtures for the in-process receivers.

Other test folders import them in their own ``conftest.py``::

    from tests.receivers.fixtures import loki, loki_factory  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.receivers.loki import Limits, LokiReceiver


@pytest.fixture
def loki_factory() -> Iterator[Callable[..., LokiReceiver]]:
    """``loki_factory(Limits(auth_enabled=True))`` -> a started receiver, stopped at teardown."""
    started: list[LokiReceiver] = []

    def make(limits: Limits | None = None, *, store: str = "full") -> LokiReceiver:
        rx = LokiReceiver(limits, store=store).start()
        started.append(rx)
        return rx

    yield make
    for rx in started:
        rx.stop()


@pytest.fixture
def loki(loki_factory: Callable[..., LokiReceiver]) -> LokiReceiver:
    """A receiver with Loki's default limits on 127.0.0.1 (``loki.url``)."""
    return loki_factory()
