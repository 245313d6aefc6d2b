"""Destinations: the local file archive (default), Grafana Loki, Elasticsearch/OpenSearch."""

from sidecar.sinks.base import Batch, SendResult, Sink, SinkMetrics, SinkStopped

__all__ = ["Batch", "SendResult", "Sink", "SinkMetrics", "SinkStopped"]
