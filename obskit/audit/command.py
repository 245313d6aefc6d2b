"""The click command ``obskit audit``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from obskit.audit.compare import AuditResult, compare_all
from obskit.audit.loki import DAY_NS
from obskit.audit.render import render_json, render_text
from obskit.cli_errors import reported_errors
from obskit.cli_options import backend_options, window_options
from obskit.trace.config import ElasticsearchConfig, LokiConfig, resolve_config
from obskit.trace.model import TraceUsageError, Window, parse_duration_ns

EXIT_OK, EXIT_DIFFERS, EXIT_ERROR = 0, 1, 2


@click.command()
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Log file or folder, or the file sink's archive (recursive, .gz too); repeatable.",
)
@backend_options
@window_options
@click.option(
    "--service", "services", multiple=True, metavar="NAME", help="Only this service; repeatable."
)
@click.option(
    "--instance",
    metavar="NAME",
    help="Only lines this instance shipped (Loki label instance; ES pod or host).",
)
@click.option("--by-instance", is_flag=True, help="Loki: show the backend's counts per instance.")
@click.option(
    "--settle",
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="Leave out minutes that ended less than this ago (still being shipped); 0s for none.",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Report for people, or one JSON document for scripts.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file (the [trace] table obskit trace reads; see docs/trace.md).",
)
@click.option("--shard", metavar="DURATION", help="Minutes per backend query [1d].")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Parallel requests [4].")
@click.option("--debug", is_flag=True, help="Show the queries, request counts and stack traces.")
def audit(
    paths: tuple[Path, ...],
    loki_url: str | None,
    tenant: str | None,
    es_url: str | None,
    index: str | None,
    since: str | None,
    from_: str | None,
    to: str | None,
    services: tuple[str, ...],
    instance: str | None,
    by_instance: bool,
    settle: str,
    output: str,
    config_path: Path | None,
    shard: str | None,
    concurrency: int | None,
    debug: bool,
) -> None:
    """Did every line of the files arrive in Loki or Elasticsearch, once?

    Counts the lines of the files (--path) per service and minute of their timestamp, counts
    the same minutes in the backend (--loki / --es, or the environment and config file of
    obskit trace), and prints the minutes whose counts differ: lines missing, or present
    more than once.

    Exit code: 0 every minute matches, 1 some differ, 2 usage or backend error.
    """
    with reported_errors("obskit audit", debug):
        cfg = resolve_config(config_path, loki_url, tenant, es_url, index)
        window = Window.build(since if since or from_ else cfg.since, from_, to)
        settle_s = 0.0 if settle.strip() in ("0", "0s") else parse_duration_ns(settle) / 1e9
        shard_ns = parse_duration_ns(shard) if shard else DAY_NS
        files = [str(p) for p in paths] or cfg.paths
        if not files:
            raise TraceUsageError(
                "no files: give --path DIR (the log folder or the file sink's archive)"
            )
        backends: list[LokiConfig | ElasticsearchConfig] = [
            b for b in (cfg.loki, cfg.elasticsearch) if b is not None and b.url
        ]
        if not backends:
            raise TraceUsageError(
                "no backend: give --loki URL or --es URL (or set OBSKIT_LOKI_URL / "
                "OBSKIT_ES_URL, or a config file)"
            )
        results = compare_all(
            files,
            backends,
            window=window,
            services=services,
            instance=instance,
            by_instance=by_instance,
            settle=settle_s,
            concurrency=concurrency or cfg.concurrency,
            shard_ns=shard_ns,
        )
    try:
        _report(results, output, debug)
    except BrokenPipeError:
        # `obskit audit ... | head`: the reader is gone; the exit code still tells.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(_exit_code(results))


def _exit_code(results: list[AuditResult]) -> int:
    if any(r.error is not None for r in results):
        return EXIT_ERROR
    return EXIT_OK if all(r.ok for r in results) else EXIT_DIFFERS


def _report(results: list[AuditResult], output: str, debug: bool) -> None:
    if debug:
        for r in results:
            click.echo(f"debug: {r.backend}: {r.counts.requests} requests", err=True)
            for info in r.counts.info:
                click.echo(f"debug: {r.backend}: {info}", err=True)
    if output == "json":
        render_json(results, sys.stdout.buffer)
    else:
        sys.stdout.write("\n".join(render_text(r) for r in results))
    sys.stdout.flush()
    for r in results:
        if r.error is not None:
            click.echo(f"obskit audit: {r.error}", err=True)
