"""Enrichment: the static fields that say where lines come from, resolved once, and the one
rule for adding them to a record.

The fields (``environment``, ``host``, ``pod``, ``container``, ``image_version``,
``build_tags`` and ``enrich.fields``) are resolved at start from the config and the usual
container environment variables (:func:`resolve_static`) and travel with every batch
(``Batch.static``). The rule every sink follows: **a field is added to a record only when the
record has no top-level key of that name; the record's own value wins, and no key is ever
written twice** (Elasticsearch refuses duplicate keys; other readers keep one at random).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, Protocol


class EnrichSettings(Protocol):
    """The ``enrich:`` section (``sidecar.config.EnrichConfig``)."""

    environment: str | None
    host: str | None
    pod: str | None
    container: str | None
    image_version: str | None
    build_tags: list[str]
    fields: dict[str, str]


def resolve_static(enrich: EnrichSettings, env: Mapping[str, str]) -> dict[str, str]:
    """The static fields: config first, then the usual container environment variables
    (``NODE_NAME``, ``POD_NAME``, ``HOSTNAME`` inside Kubernetes, ``CONTAINER_NAME``); empty
    values are left out."""
    out: dict[str, str] = {}
    if enrich.environment:
        out["environment"] = enrich.environment
    host = enrich.host or env.get("NODE_NAME") or socket.gethostname()
    if host:
        out["host"] = host
    # In Kubernetes a pod's HOSTNAME is its name (unless the Downward API sets POD_NAME).
    pod = enrich.pod or env.get("POD_NAME")
    if not pod and env.get("KUBERNETES_SERVICE_HOST"):
        pod = env.get("HOSTNAME")
    if pod:
        out["pod"] = pod
    container = enrich.container or env.get("CONTAINER_NAME")
    if container:
        out["container"] = container
    if enrich.image_version:
        out["image_version"] = enrich.image_version
    if enrich.build_tags:
        out["build_tags"] = ",".join(enrich.build_tags)
    for k, v in enrich.fields.items():
        if v:
            out.setdefault(k, v)
    return out


def instance_name(static: Mapping[str, Any]) -> str:
    """Which sidecar shipped a line, for backends that label streams (Loki's ``instance``):
    the pod, else the host, from the same resolved fields."""
    return str(static.get("pod") or static.get("host") or socket.gethostname())
