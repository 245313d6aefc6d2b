"""``obskit-sidecar spool status`` and ``spool drain``: see and empty the spools of a
configuration, also those a retired sidecar left behind."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from sidecar.config import LoadedConfig, SinkSpec


def _spooled(cfg: LoadedConfig, sink: str | None) -> list[SinkSpec]:
    specs = [s for s in cfg.sinks if s.spool is not None and (sink is None or s.name == sink)]
    if sink is not None and not specs:
        known = ", ".join(s.name for s in cfg.sinks if s.spool is not None) or "none"
        raise click.UsageError(f"no spooled sink named {sink!r} (spooled sinks: {known})")
    return specs


def _status_of(spec: SinkSpec, directory: Path) -> dict[str, Any]:
    from sidecar.spool import inspect

    out: dict[str, Any] = {"sink": spec.name, "type": spec.type, "dir": str(directory)}
    if not directory.is_dir():
        out.update(records=0, lines=0, bytes=0, oldest_age_seconds=None, note="no spool yet")
        return out
    st = inspect(directory)
    out.update(
        records=st.records,
        lines=st.lines,
        bytes=st.nbytes,
        oldest_age_seconds=None if st.oldest is None else round(time.time() - st.oldest, 1),
    )
    status = directory / "status.json"
    if status.is_file():
        try:
            last = json.loads(status.read_text(encoding="utf-8"))
            out["last_error"] = last.get("last_error")
            out["last_error_at"] = last.get("last_error_at")
        except (OSError, ValueError):
            out["last_error"] = None
    return out


def status_command(cfg: LoadedConfig, sink: str | None, as_json: bool) -> int:
    rows = [_status_of(s, Path(s.spool.dir or "")) for s in _spooled(cfg, sink) if s.spool]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo("no sink of this configuration has a spool")
        return 0
    for r in rows:
        age = r["oldest_age_seconds"]
        click.echo(
            f"{r['sink']} ({r['type']}): {r['lines']} lines in {r['records']} batches"
            f" not delivered, {r['bytes']} bytes on disk"
            + (f", oldest {age:.0f}s old" if age is not None else "")
        )
        click.echo(f"  folder: {r['dir']}")
        if r.get("last_error"):
            click.echo(f"  last error: {r['last_error']} (at {r.get('last_error_at')})")
    return 0


def drain_command(
    cfg: LoadedConfig, sink: str | None, directory: str | None, timeout: float
) -> int:
    """Deliver what the spools hold without reading any log file; 0 when empty, 2 when a
    sidecar (or another drain) holds the folders."""
    from sidecar.statelock import FolderLocked, lock_folders

    specs = _spooled(cfg, sink)
    if directory is not None and len(specs) != 1:
        raise click.UsageError("--dir needs --sink (one spool at a time)")
    # The folders it writes, locked as a sidecar locks them: a drain beside a running sidecar
    # (or another drain) of the same folders would deliver and dead-letter twice.
    folders = [("quarantine.dir", cfg.quarantine_dir)]
    folders += [
        (f"sink {s.name!r} spool.dir", Path(directory or (s.spool.dir if s.spool else "") or ""))
        for s in specs
    ]
    try:
        locks = lock_folders(folders)
    except FolderLocked as exc:
        click.echo(f"obskit-sidecar: {exc}", err=True)
        return 2
    try:
        return _drain(cfg, specs, directory, timeout)
    finally:
        locks.release()


def _drain(cfg: LoadedConfig, specs: list[SinkSpec], directory: str | None, timeout: float) -> int:
    from sidecar.metrics import Metrics
    from sidecar.selflog import log
    from sidecar.sinks.registry import sink_module
    from sidecar.sinks.worker import SinkWorker, SpoolFeed
    from sidecar.spool import Spool
    from sidecar.transform.quarantine import DeadLetter
    from sidecar.transform.stage import SchemaStage

    c = cfg.config
    dead = DeadLetter(cfg.quarantine_dir, c.quarantine.max_bytes, c.quarantine.max_files)
    metrics = Metrics()
    stage = SchemaStage(c.schema, dead, metrics)
    code = 0
    for spec in specs:
        assert spec.spool is not None
        folder = Path(directory or spec.spool.dir or "")
        spool = Spool(folder, max_bytes=int(spec.spool.max_bytes), fsync=spec.spool.fsync)
        for w in spool.open():
            log("WARN", w, component="spool", sink=spec.name)
        before = spool.stats()
        s = sink_module(spec.type).build(spec.name, spec.config)
        s.metrics = metrics.for_sink(spec.name)
        s.delivery.set_log(log)
        s.start()
        feed = SpoolFeed(spool, cfg.static, stage.records_for, 0)
        worker = SinkWorker(s, feed, dead, metrics.forwarded, metrics.batch_done, log)
        worker.finish()
        worker.start()
        worker.thread.join(timeout)
        s.stopping.set()
        worker.thread.join(30)
        after = spool.stats()
        spool.close()
        s.close()
        dead_n = sum(
            n for k, n in metrics.totals.dead_lettered.items() if k.startswith(f"{spec.name}: ")
        )
        click.echo(
            f"{spec.name}: {metrics.totals.forwarded[spec.name]} lines delivered, {dead_n}"
            f" dead-lettered; {after.lines} left in {folder}"
            + (f" (of {before.lines})" if after.lines else "")
        )
        if after.records or worker.fatal:
            code = 1
    dead.close()
    return code
