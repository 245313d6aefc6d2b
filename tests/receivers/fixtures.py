"""Pytest fixtures for the in-process receivers.

Other test folders import them in their own ``conftest.py``::

    from tests.receivers.fixtures import loki, loki_factory, otlp, otlp_factory  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.receivers.loki import Limits, LokiReceiver
from tests.receivers.otlp import Limits as OTLPLimits
from tests.receivers.otlp import OTLPReceiver


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


@pytest.fixture
def otlp_factory() -> Iterator[Callable[..., OTLPReceiver]]:
    """``otlp_factory(OTLPLimits(reject=...))`` -> a started OTLP receiver, stopped at
    teardown."""
    started: list[OTLPReceiver] = []

    def make(limits: OTLPLimits | None = None, *, store: str = "full", **kw: Any) -> OTLPReceiver:
        rx = OTLPReceiver(limits, store=store).start(**kw)
        started.append(rx)
        return rx

    yield make
    for rx in started:
        rx.stop()


@pytest.fixture
def otlp(otlp_factory: Callable[..., OTLPReceiver]) -> OTLPReceiver:
    """An OTLP/HTTP receiver on 127.0.0.1 (``otlp.url``; the sink appends ``/v1/logs``)."""
    return otlp_factory()
