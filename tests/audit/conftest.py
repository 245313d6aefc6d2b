"""Fixtures for the audit tests: the in-process Loki and Elasticsearch receivers."""

from tests.receivers.elasticsearch import es_receiver, os_receiver  # noqa: F401
from tests.receivers.fixtures import loki, loki_factory  # noqa: F401
from tests.receivers.third_party import noida, osmem, osmem_url  # noqa: F401
