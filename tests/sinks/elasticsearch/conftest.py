"""Fixtures for the Elasticsearch sink tests: the in-process receiver and batch helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from es_batches import FAST_RETRY

from sidecar.sinks.elasticsearch import Config, ElasticsearchSink, build
from tests.receivers.elasticsearch import EsReceiver, es_receiver, os_receiver  # noqa: F401
from tests.receivers.third_party import noida, osmem, osmem_url  # noqa: F401


@pytest.fixture
def sink_factory() -> Iterator[Callable[..., ElasticsearchSink]]:
    made: list[ElasticsearchSink] = []

    def make(url: str, **kw: object) -> ElasticsearchSink:
        kw.setdefault("retry", FAST_RETRY)
        kw.setdefault("timeout", 5.0)
        sink = build("es", Config(url=url, **kw))  # type: ignore[arg-type]
        sink.start()
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.stopping.set()
        s.close()
