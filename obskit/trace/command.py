"""The click command ``obskit trace``."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from obskit.cli_errors import fail, reported_errors
from obskit.cli_options import backend_options, window_options
from obskit.trace.config import TraceConfig, resolve_config
from obskit.trace.lookup import LookupResult, build_backends, check_shards, run_lookup
from obskit.trace.model import (
    BackendError,
    Entry,
    TraceUsageError,
    Window,
    parse_trace_id,
)
from obskit.trace.render import Timeline, escape, render_json, render_ndjson, render_text

EXIT_FOUND, EXIT_NOT_FOUND, EXIT_ERROR = 0, 1, 2


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    fail("obskit trace", message, code)


@click.command()
@click.argument("trace")
@backend_options
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Log file or folder (recursive, .gz too); repeatable.",
)
@window_options
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json", "ndjson"]),
    default="text",
    show_default=True,
    help="Timeline for people, or JSON / NDJSON for scripts.",
)
@click.option("--fields", metavar="A,B", help="Extra fields to show (dotted paths allowed).")
@click.option("--follow", "-f", is_flag=True, help="Loki: keep polling for new lines until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    help="--follow: seconds between polls [2].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Config file (TOML [trace] table or YAML); default: see docs/trace.md.",
)
@click.option("--shard", metavar="DURATION", help="Split the window into shards of this size.")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Parallel requests [4].")
@click.option("--color/--no-color", default=None, help="Force colours on or off.")
@click.option("--debug", is_flag=True, help="Show request counts and stack traces.")
def trace(
    trace: str,
    loki_url: str | None,
    tenant: str | None,
    es_url: str | None,
    index: str | None,
    paths: tuple[Path, ...],
    since: str | None,
    from_: str | None,
    to: str | None,
    output: str,
    fields: str | None,
    follow: bool,
    interval: float | None,
    config_path: Path | None,
    shard: str | None,
    concurrency: int | None,
    color: bool | None,
    debug: bool,
) -> None:
    """Show every log line of one trace, across services, in time order.

    TRACE is a trace id (32 hex digits) or a whole traceparent header value. Backends come
    from --loki / --es / --path, the environment (OBSKIT_LOKI_URL, OBSKIT_ES_URL) and the
    config file; several at once are merged into one timeline.

    Exit code: 0 lines found, 1 nothing found in the window, 2 usage or backend error.
    """
    try:
        trace_id = parse_trace_id(trace)
        cfg = resolve_config(
            config_path, loki_url, tenant, es_url, index, paths, shard, concurrency
        )
        window = Window.build(since if since or from_ else cfg.since, from_, to)
        check_shards(cfg, window)
        field_list = [f.strip() for f in fields.split(",") if f.strip()] if fields else cfg.fields
        if not (
            cfg.paths
            or (cfg.loki and cfg.loki.url)
            or (cfg.elasticsearch and cfg.elasticsearch.url)
        ):
            raise TraceUsageError(
                "no backend: give --loki URL, --es URL or --path DIR (or set OBSKIT_LOKI_URL / "
                "OBSKIT_ES_URL, or a config file)"
            )
        link = cfg.link_template.format(trace_id=trace_id) if cfg.link_template else None
    except TraceUsageError as exc:
        raise click.UsageError(str(exc)) from None
    except (KeyError, IndexError, ValueError) as exc:
        raise click.UsageError(f"link_template: {exc}") from None

    console = Console(
        force_terminal=color,
        # None leaves rich to honour NO_COLOR; --color / --no-color override it.
        no_color=None if color is None else not color,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
    )
    if interval is not None and cfg.loki is not None:
        cfg.loki.poll_interval = interval
    with reported_errors("obskit trace", debug):
        if follow:
            sys.exit(_follow(cfg, trace_id, window, console, field_list, link, debug))
        result = run_lookup(cfg, trace_id, window)
    try:
        code = _report(result, output, console, field_list, link, debug)
    except BrokenPipeError:
        # `obskit trace ... | head`: the reader is gone; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FOUND if result.entries else EXIT_NOT_FOUND
    sys.exit(code)


def _searched(result: LookupResult) -> str:
    names = ", ".join(b.name for b in result.backends)
    return f"{names}; window {result.window.describe()}"


def _broken(n: int) -> str:
    return f"{n} line{'s' * (n != 1)} mention{'s' * (n == 1)} the trace id but cannot be shown"


def _report(
    result: LookupResult,
    output: str,
    console: Console,
    field_list: list[str],
    link: str | None,
    debug: bool,
) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
    for b in result.backends:
        for note in b.notes:
            shown = note if note.startswith(b.name) else f"{b.name}: {note}"
            err.print(f"note: {escape(shown)}")
        if debug:
            err.print(f"debug: {b.name}: {len(b.entries)} lines, {b.requests} requests")
            for info in b.info:
                err.print(f"debug: {b.name}: {info}")
    if output == "json":
        render_json(
            result.entries,
            sys.stdout.buffer,
            result.trace_id,
            field_list,
            link,
            (result.window.start_ns, result.window.end_ns),
            [b.as_json() for b in result.backends],
        )
    elif output == "ndjson":
        render_ndjson(result.entries, sys.stdout.buffer, field_list)
    elif result.entries:
        render_text(result.entries, console, result.trace_id, field_list, link, _searched(result))
        if result.broken:
            console.print(f"{_broken(result.broken)} (see the notes on stderr)", style="yellow")
    sys.stdout.flush()
    for e in result.errors:
        err.print(f"obskit trace: {escape(e)}")
    if result.errors:
        if result.entries:
            err.print("obskit trace: results are incomplete (a backend failed)")
        return EXIT_ERROR
    if not result.entries:
        broken = f" ({_broken(result.broken)})" if result.broken else ""
        err.print(
            f"obskit trace: no lines of trace {result.trace_id} found in "
            f"{escape(_searched(result))}{broken}"
        )
        return EXIT_NOT_FOUND
    return EXIT_FOUND


def _follow(
    cfg: TraceConfig,
    trace_id: str,
    window: Window,
    console: Console,
    field_list: list[str],
    link: str | None,
    debug: bool,
) -> int:
    """Print the trace's lines as they arrive in Loki until Ctrl-C (or SIGTERM)."""
    loki, es = build_backends(cfg, trace_id)
    if es is not None:
        es.close()
    if loki is None:
        raise TraceUsageError("--follow needs a Loki backend (--loki URL or OBSKIT_LOKI_URL)")
    stop = threading.Event()
    count = [0]
    tl = Timeline(console, field_list)
    if link:
        console.print(link, style="underline blue")
    console.print(f"following trace {trace_id} in {loki.name} (Ctrl-C to stop)", style="dim")
    tl.header()

    def show(e: Entry) -> None:
        count[0] += 1
        tl.row(e)

    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            loki.follow(window.start_ns, show, stop)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    t = threading.Thread(target=worker, name="trace-follow", daemon=True)
    t.start()
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        stop.set()
    finally:
        t.join(timeout=loki.cfg.timeout + 5)
        loki.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if errors:
        if not isinstance(errors[0], BackendError):
            raise errors[0]
        _fail(str(errors[0]))
    console.print(f"{count[0]} line{'s' * (count[0] != 1)} shown", style="dim")
    return EXIT_FOUND if count[0] else EXIT_NOT_FOUND
