from tests.receivers.fixtures import loki, loki_factory  # noqa: F401
