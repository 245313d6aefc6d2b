"""In-process stand-ins for the backends (Loki, Elasticsearch) used by the tests."""
