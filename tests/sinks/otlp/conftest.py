from tests.receivers.fixtures import loki, loki_factory, otlp, otlp_factory  # noqa: F401
