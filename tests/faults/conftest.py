"""Fixtures of the fault tests: the in-process receivers."""

from tests.receivers.fixtures import loki, loki_factory  # noqa: F401
