"""``obskit-sidecar``: run the shipper, check a config, or see it work on sample services."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
import yaml

from obskit.secrets import mask_secrets
from sidecar.config import ConfigError, LoadedConfig, load_config, parse_listen


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="obskit", prog_name="obskit-sidecar")
def main() -> None:
    """Tail a log folder, enforce log schema v1, ship to Loki, Elasticsearch or a file archive.

    Start with `obskit-sidecar demo` to see it work on sample services.
    """


def _load_or_exit(config: str | None) -> LoadedConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        click.echo(f"obskit-sidecar: invalid configuration in {exc.source}:", err=True)
        for e in exc.errors:
            click.echo(f"  {e}", err=True)
        sys.exit(2)


@main.command("check-config")
@click.argument("config", type=click.Path(dir_okay=False))
def check_config(config: str) -> None:
    """Validate CONFIG (with environment overrides applied) and print the effective settings,
    secrets masked. Exit 0 when valid, 2 when not."""
    cfg = _load_or_exit(config)
    for w in cfg.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"OK: {config} is valid. Effective configuration (secrets masked):")
    click.echo(yaml.safe_dump(cfg.redacted(), sort_keys=False, default_flow_style=False).rstrip())


@main.command("run")
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False),
    envvar="OBSKIT_SIDECAR_CONFIG",
    help="YAML config file (default: built-in defaults plus OBSKIT_SIDECAR__* variables).",
)
@click.option(
    "--exit-on-idle",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Exit once every file is read, every batch acknowledged and nothing new arrived "
    "for SECONDS (for batch jobs, tests and benchmarks).",
)
def run(config: str | None, exit_on_idle: float | None) -> None:
    """Run the sidecar until SIGTERM/SIGINT (or idle, with --exit-on-idle)."""
    # A stop asked for while the configuration loads is honoured as soon as the engine
    # exists (an orchestrator may stop a container that has only just started).
    early: list[int] = []
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: early.append(signum))
    cfg = _load_or_exit(config)
    sys.exit(run_sidecar(cfg, exit_on_idle, stop_requested=bool(early)))


def run_sidecar(
    cfg: LoadedConfig, exit_on_idle: float | None = None, *, stop_requested: bool = False
) -> int:
    """Run a loaded configuration with own logs, signals and the ops endpoints."""
    from sidecar import selflog
    from sidecar.engine import Engine
    from sidecar.http_server import OpsServer
    from sidecar.statelock import FolderLocked

    selflog.setup()
    log = selflog.log
    for w in cfg.warnings:
        log("WARN", w, component="config")
    engine = Engine(cfg, log=log)
    _install_signals(engine)
    if stop_requested:
        engine.request_stop()
    server: OpsServer | None = None
    try:
        engine.start()
        http = cfg.config.http
        if http.enabled:
            host, port = parse_listen(http.listen)
            server = OpsServer(
                host,
                port,
                engine.metrics.registry,
                engine.readiness,
                engine.liveness,
                engine.notes,
            )
            server.start()
        a = server.address if server else None
        log(
            "INFO",
            "obskit-sidecar started",
            config=cfg.origin,
            source=cfg.source.path,
            sinks=[f"{s.name}:{s.type}" for s in cfg.sinks],
            quarantine=str(cfg.quarantine_dir),
            listen=f"{a[0]}:{a[1]}" if a else None,
        )
    except FolderLocked as exc:
        # Another instance owns the folders: nothing was started or written here, so no
        # shutdown (it would save checkpoints into the holder's folder) and no totals.
        log(
            "ERROR",
            f"cannot start: {exc}",
            error="FolderLocked",
            folder=str(exc.folder),
            holder_pid=exc.holder.get("pid"),
        )
        selflog.shutdown()
        return 2
    except Exception as exc:  # a start-up failure must be one clear line, then exit 1
        log("ERROR", f"cannot start: {mask_secrets(str(exc))}", error=type(exc).__name__)
        engine.shutdown()
        code = 1
    else:
        try:
            code = engine.run(exit_on_idle)
        except Exception as exc:
            # Checkpoints were saved by the shutdown and never pass unacknowledged lines: a
            # restart resumes safely. Exit 1 so the orchestrator restarts us.
            log(
                "ERROR",
                f"stopped by an unexpected error: {mask_secrets(str(exc))}",
                error=type(exc).__name__,
            )
            code = 1
    finally:
        if server is not None:
            server.close()
    t = engine.metrics.totals
    log(
        "INFO",
        "obskit-sidecar stopped",
        lines_read=t.lines_read,
        forwarded=dict(t.forwarded),
        quarantined=sum(t.quarantined.values()),
        repaired=sum(t.repaired.values()),
    )
    selflog.shutdown()
    return code


def _install_signals(engine: Any) -> None:
    # SIGUSR1 prints every thread's stack to stderr (POSIX): what an operator (or a test
    # harness) needs when the sidecar seems stuck.
    if hasattr(signal, "SIGUSR1"):
        import faulthandler

        faulthandler.register(signal.SIGUSR1, all_threads=True)
    count = {"n": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        count["n"] += 1
        if count["n"] > 1:
            # Second signal: stop waiting for slow sinks; unacknowledged lines are re-read.
            for s in engine.sinks:
                s.stopping.set()
        engine.request_stop()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)


#: SIGTERM, SIGINT, and on Windows SIGBREAK (CTRL_BREAK_EVENT).
_STOP_SIGNALS: list[signal.Signals] = [
    sig for sig in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGBREAK")) if sig
]


@main.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for logs/, archive/ and quarantine/ (default: a new temp folder).",
)
@click.option("--lines", default=400, show_default=True, help="Lines per sample service.")
def demo(directory: str | None, lines: int) -> None:
    """Run sample services and the sidecar on its embedded default; show what happened."""
    from sidecar.demo import run_demo

    sys.exit(run_demo(Path(directory) if directory else None, lines))


@main.group("spool")
def spool() -> None:
    """See and empty the sinks' disk spools (lines read but not delivered yet)."""


@spool.command("status")
@click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), envvar="OBSKIT_SIDECAR_CONFIG"
)
@click.option("--sink", default=None, help="Only this sink.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def spool_status(config: str | None, sink: str | None, as_json: bool) -> None:
    """Each spooled sink's backlog: lines and batches not delivered, bytes on disk, the
    oldest line's age and the last error. Safe while the sidecar runs."""
    from sidecar.spool_cli import status_command

    sys.exit(status_command(_load_or_exit(config), sink, as_json))


@spool.command("drain")
@click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False), envvar="OBSKIT_SIDECAR_CONFIG"
)
@click.option("--sink", default=None, help="Only this sink.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="The spool folder to drain (with --sink; default: the configured one).",
)
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds.")
def spool_drain(
    config: str | None, sink: str | None, directory: str | None, timeout: float
) -> None:
    """Deliver what the spools hold, without reading any log file (a spool left behind by a
    retired sidecar, say). Exit 0 when every spool is empty, 1 when lines are left."""
    from sidecar.spool_cli import drain_command

    sys.exit(drain_command(_load_or_exit(config), sink, directory, timeout))


def _add_es_setup() -> None:
    # The Elasticsearch sink's template installer, when that part is installed.
    import importlib

    try:
        mod = importlib.import_module("sidecar.es_setup")
    except ImportError:
        return
    cmd = getattr(mod, "es_setup", None)
    if isinstance(cmd, click.Command):
        main.add_command(cmd, "es-setup")


_add_es_setup()
