"""``obskit-sidecar demo``: sample services write logs (some broken), the sidecar ships them
into its embedded default (a file archive) and a summary shows what happened, and why."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from sidecar.config import build_config
from sidecar.engine import Engine

SERVICES = ("checkout", "payments", "cart")
REPAIRS = {
    "OBS003": "level alias fixed (WARNING -> WARN)",
    "OBS006": "trace_id lower-cased",
    "OBS007": "span_id lower-cased",
    "OBS009": "missing service added",
}


def demo_config(base: Path) -> dict[str, Any]:
    """The embedded default, pointed at the demo folder."""
    return {
        "source": {"path": str(base / "logs"), "poll_interval": "200ms"},
        "checkpoint": {"dir": str(base / "state"), "interval": "1s"},
        "schema": {"on_invalid": "repair"},
        "quarantine": {"dir": str(base / "quarantine")},
        "sinks": [{"name": "archive", "type": "file", "dir": str(base / "archive")}],
        "http": {"enabled": False},
        "batch": {"max_wait": "100ms"},
        "enrich": {"environment": "demo"},
    }


def run_demo(directory: Path | None, lines: int = 400) -> int:
    """Run the demo in ``directory`` (a new temp folder when ``None``); return an exit code."""
    console = Console(highlight=False)
    base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="obskit-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    (base / "logs").mkdir(exist_ok=True)
    console.print(f"[bold]obskit-sidecar demo[/] in {base}", soft_wrap=True)
    console.print(
        f"Starting {len(SERVICES)} sample services ({', '.join(SERVICES)}), "
        f"{lines} lines each, into {base / 'logs'} ..."
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sidecar.demo_service",
                "--service",
                name,
                "--out",
                str(base / "logs" / f"{name}.log"),
                "--lines",
                str(lines),
                "--seed",
                str(i + 1),
            ]
        )
        for i, name in enumerate(SERVICES)
    ]
    problems: list[str] = []

    def quiet(level: str, message: str, **fields: Any) -> None:
        if level in ("WARN", "ERROR"):
            problems.append(f"{level} {message} {fields or ''}")

    cfg = build_config(demo_config(base), origin="<demo>")
    engine = Engine(cfg, log=quiet)
    console.print("Running the sidecar on its embedded default (file archive) until idle ...")
    t0 = time.monotonic()
    engine.start()
    # Wait for the services while the sidecar tails their files, then until everything is in.
    while any(p.poll() is None for p in procs):
        engine.run_for(0.2)
    code = engine.run(exit_on_idle=0.6)
    for proc in procs:
        if proc.wait(timeout=10) != 0:
            problems.append(f"a sample service exited with {proc.returncode}")
    _summary(console, base, engine, time.monotonic() - t0)
    for p in problems:
        console.print(f"[red]{p}[/]")
    return code or (1 if problems else 0)


def _trace_example(archive: Path) -> tuple[str, list[str]] | None:
    services: dict[str, set[str]] = {}
    for seg in sorted(archive.glob("archive-*.ndjson")):
        for raw in seg.read_bytes().splitlines():
            rec = orjson.loads(raw)
            tid = rec.get("trace_id")
            if tid:
                services.setdefault(tid, set()).add(rec["service"])
    if not services:
        return None
    tid = max(services, key=lambda t: (len(services[t]), t))
    return tid, sorted(services[tid])


def _summary(console: Console, base: Path, engine: Engine, seconds: float) -> None:
    t = engine.metrics.totals
    forwarded = t.forwarded.get("archive", 0)
    quarantined = sum(t.quarantined.values())
    repaired = Counter(t.repaired)
    console.print()
    table = Table(title=f"What the sidecar did ({seconds:.1f} s)", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("Lines read", f"{t.lines_read:,}", f"from {base / 'logs'}")
    table.add_row("Forwarded", f"{forwarded:,}", f"to the file archive {base / 'archive'}")
    table.add_row(
        "  of which repaired",
        f"{sum(repaired.values()):,}",
        ", ".join(f"{REPAIRS.get(r, r)}: {n}" for r, n in sorted(repaired.items())) or "none",
    )
    table.add_row("Quarantined", f"{quarantined:,}", f"with reasons in {base / 'quarantine'}")
    console.print(table)
    if t.quarantined:
        q = Table(title="Quarantined lines by rule (one example reason each)")
        q.add_column("rule")
        q.add_column("lines", justify="right")
        q.add_column("example reason")
        for rule, n in sorted(t.quarantined.items()):
            q.add_row(rule, str(n), t.examples.get(rule, ""))
        console.print(q)
    lost = t.lines_read - forwarded - quarantined
    if lost == 0:
        console.print("Every line read was either forwarded or quarantined: nothing dropped.")
    else:
        console.print(f"[red]{lost} lines unaccounted for[/]")
    console.print()
    console.print("[bold]Next steps[/]")
    example = _trace_example(base / "archive")
    if example is not None:
        tid, svcs = example
        console.print(f"  # one request across {', '.join(svcs)}:")
        console.print(f"  obskit trace {tid} --path {base / 'archive'}", soft_wrap=True)
    console.print("  # why lines were quarantined (one JSON object per line):")
    console.print(f"  {base / 'quarantine' / 'quarantine.ndjson'}", soft_wrap=True)
    console.print("  # check the services' logs yourself:")
    console.print(f"  obskit validate {base / 'logs'}", soft_wrap=True)
