"""Loki's OTLP ingestion (``POST /otlp/v1/logs``) for the in-process Loki: the mapping of
grafana/loki ``pkg/loghttp/push/otlp.go`` and ``otlplabels/labels.go`` with Loki's default
``otlp_config``, checked against a real Loki 3 (see ``docs/otlp.md``):

* stream labels: the resource attributes of :data:`INDEX_LABELS`, names normalised
  (``service.name`` -> ``service_name``; ``unknown_service`` when absent);
* the line: the body as a string (``AnyValue.AsString``: maps and arrays as JSON);
* structured metadata: the other resource attributes, ``scope_name``/``scope_version``, the
  record's attributes (maps flattened with ``_``, arrays as JSON), ``observed_timestamp``,
  ``severity_number``, ``severity_text``, ``trace_id``/``span_id`` in hex;
* an attribute name that normalises to nothing (empty, only underscores) fails the whole
  request (400), as Loki's label namer does.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from .loki_wire import Entry, Stream, labels_string

#: Loki's ``default_resource_attributes_as_index_labels``.
INDEX_LABELS = frozenset(
    {
        "service.name",
        "service.namespace",
        "service.instance.id",
        "deployment.environment",
        "deployment.environment.name",
        "cloud.region",
        "cloud.availability_zone",
        "k8s.cluster.name",
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.container.name",
        "container.name",
        "k8s.replicaset.name",
        "k8s.deployment.name",
        "k8s.statefulset.name",
        "k8s.daemonset.name",
        "k8s.cronjob.name",
        "k8s.job.name",
    }
)

_INVALID = re.compile(r"[^A-Za-z0-9_]")
_UNDERSCORES = re.compile(r"_+")


def label_name(key: str) -> str:
    """otlptranslator's ``LabelNamer.Build``: invalid characters to ``_``, runs of ``_``
    collapsed, ``key_`` before a leading digit; ValueError for what cannot be a name."""
    if not key:
        raise ValueError("label name is empty")
    name = _UNDERSCORES.sub("_", _INVALID.sub("_", key))
    if name[0].isdigit():
        name = "key_" + name
    if not name.strip("_"):
        raise ValueError(f"normalization for label name {key!r} resulted in invalid name {name!r}")
    return name


def as_string(av: Any) -> str:
    """pdata ``Value.AsString`` of an ``AnyValue``."""
    kind = av.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return str(av.string_value)
    if kind == "bool_value":
        return "true" if av.bool_value else "false"
    if kind == "int_value":
        return str(av.int_value)
    if kind == "double_value":
        d = av.double_value
        if not math.isfinite(d):
            return f"json: unsupported value: {d}"
        text = repr(d)  # Go's shortest form, close enough: 1.5, 100, 1e+21
        return text[:-2] if text.endswith(".0") else text
    if kind == "bytes_value":
        return base64.b64encode(av.bytes_value).decode()
    return json.dumps(_as_raw(av), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _as_raw(av: Any) -> Any:
    kind = av.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_as_raw(v) for v in av.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _as_raw(kv.value) for kv in av.kvlist_value.values}
    return getattr(av, kind)


def attribute_labels(key: str, av: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``AttributeToLabels``: maps expand recursively with ``<parent>_`` prefixes."""
    name = label_name(f"{prefix}_{key}" if prefix else key)
    if av.WhichOneof("value") == "kvlist_value":
        out: list[tuple[str, str]] = []
        for kv in av.kvlist_value.values:
            out += attribute_labels(kv.key, kv.value, name)
        return out
    return [(name, as_string(av))]


def to_streams(req: Any) -> list[Stream]:
    """Loki push streams for an ``ExportLogsServiceRequest`` (ValueError: 400)."""
    streams: dict[str, Stream] = {}
    for rl in req.resource_logs:
        labels: dict[str, str] = {}
        res_sm: list[tuple[str, str]] = []
        for kv in rl.resource.attributes:
            pairs = attribute_labels(kv.key, kv.value)
            if kv.key in INDEX_LABELS:
                labels.update(pairs)
            else:
                res_sm += pairs
        if not labels.get("service_name"):
            labels["service_name"] = "unknown_service"
        text = labels_string(labels)
        stream = streams.setdefault(text, Stream(text, []))
        for sl in rl.scope_logs:
            scope_sm = []
            for kv in sl.scope.attributes:
                scope_sm += attribute_labels(kv.key, kv.value)
            if sl.scope.name:
                scope_sm.append(("scope_name", sl.scope.name))
            if sl.scope.version:
                scope_sm.append(("scope_version", sl.scope.version))
            for lr in sl.log_records:
                sm: list[tuple[str, str]] = []
                for kv in lr.attributes:
                    sm += attribute_labels(kv.key, kv.value)
                if lr.time_unix_nano and lr.observed_time_unix_nano:
                    sm.append(("observed_timestamp", str(lr.observed_time_unix_nano)))
                if lr.severity_number:
                    sm.append(("severity_number", str(lr.severity_number)))
                if lr.severity_text:
                    sm.append(("severity_text", lr.severity_text))
                if lr.trace_id:
                    sm.append(("trace_id", lr.trace_id.hex()))
                if lr.span_id:
                    sm.append(("span_id", lr.span_id.hex()))
                ts = lr.time_unix_nano or lr.observed_time_unix_nano
                line = as_string(lr.body) if lr.HasField("body") else ""
                stream.entries.append(Entry(ts, line, sm + res_sm + scope_sm))
    return list(streams.values())
