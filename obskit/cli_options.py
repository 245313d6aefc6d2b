"""Command-line options the query commands (``obskit trace``, ``obskit audit``) share: which
backends, and which time window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def backend_options(f: F) -> F:
    """``--loki``, ``--tenant``, ``--es``, ``--index`` (parameters ``loki_url``, ``tenant``,
    ``es_url``, ``index``)."""
    for option in reversed(
        [
            click.option(
                "--loki", "loki_url", metavar="URL", help="Loki base URL (env OBSKIT_LOKI_URL)."
            ),
            click.option(
                "--tenant",
                metavar="ID",
                help="Loki tenant: X-Scope-OrgID (env OBSKIT_LOKI_TENANT).",
            ),
            click.option(
                "--es",
                "es_url",
                metavar="URL",
                help="Elasticsearch/OpenSearch URL (env OBSKIT_ES_URL).",
            ),
            click.option(
                "--index", metavar="PATTERN", help="Index pattern or data stream (default logs-*)."
            ),
        ]
    ):
        f = option(f)
    return f


def window_options(f: F) -> F:
    """``--since``, ``--from``, ``--to`` (parameters ``since``, ``from_``, ``to``)."""
    for option in reversed(
        [
            click.option(
                "--since", metavar="DURATION", help="Window ending now, e.g. 30m, 24h, 7d [24h]."
            ),
            click.option("--from", "from_", metavar="TIME", help="Window start, RFC 3339."),
            click.option("--to", metavar="TIME", help="Window end, RFC 3339 [now]."),
        ]
    ):
        f = option(f)
    return f
