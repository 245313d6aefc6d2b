"""Dialect conversion beside the schema v1 fast path, in the same run: the same records written
as schema v1 and as each JSON dialect (the way its library writes them), then

- **stage**: ``SchemaStage.process`` over 1 MiB chunks in this process (what conversion adds
  to the stage, CPU-s per million lines);
- **sidecar** (``--e2e``, default on): a real ``obskit-sidecar run --exit-on-idle`` into the
  file sink (fsync off), CPU-s per million lines from its rusage: what a user pays.

    python bench/bench_dialects.py [--lines 200000] [--no-e2e] [--dialects go-slog,zap]

The goal (issue 14) is at most 2x the v1 path's CPU per line. Figures on a busy machine are
for orientation only; ``docs/benchmarks.md`` has the quiet-machine ones.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import make_record  # noqa: E402

from obskit.schema import timestamp_ns  # noqa: E402
from sidecar.config import build_config  # noqa: E402
from sidecar.metrics import Metrics  # noqa: E402
from sidecar.source.chunk import Chunk  # noqa: E402
from sidecar.transform.quarantine import DeadLetter  # noqa: E402
from sidecar.transform.stage import SchemaStage  # noqa: E402

Render = Callable[[dict[str, Any]], dict[str, Any]]
LOWER = {"DEBUG": "debug", "INFO": "info", "WARN": "warn", "ERROR": "error"}


def _rest(rec: dict[str, Any], *drop: str) -> dict[str, Any]:
    skip = {"timestamp", "level", "message", "trace_id", "span_id", *drop}
    return {k: v for k, v in rec.items() if k not in skip}


def _ids(rec: dict[str, Any], trace: str, span: str) -> dict[str, Any]:
    if "trace_id" not in rec:
        return {}
    return {trace: rec["trace_id"], span: rec["span_id"]}


def _asctime(ts: str) -> str:
    ns = timestamp_ns(ts)
    wall = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns // 10**9))
    return f"{wall},{ns // 10**6 % 1000:03d}"


# How each library writes a record (key order as it writes them).
RENDER: dict[str, Render] = {
    "v1": lambda r: r,
    "go-slog": lambda r: {
        "time": r["timestamp"],
        "level": r["level"],
        "msg": r["message"],
        **_ids(r, "trace_id", "span_id"),
        **_rest(r),
    },
    "zap": lambda r: {
        "level": LOWER[r["level"]],
        "ts": timestamp_ns(r["timestamp"]) / 1e9,
        "caller": "orders/handler.go:42",
        "msg": r["message"],
        **_ids(r, "trace_id", "span_id"),
        **_rest(r),
    },
    "logrus": lambda r: dict(
        sorted(
            {
                "level": "warning" if r["level"] == "WARN" else LOWER[r["level"]],
                "msg": r["message"],
                "time": r["timestamp"],
                **_ids(r, "traceId", "spanId"),
                **_rest(r),
            }.items()
        )
    ),
    "serilog": lambda r: {
        "@t": r["timestamp"],
        "@mt": r["message"],
        **(
            {}
            if r["level"] == "INFO"
            else {"@l": {"DEBUG": "Debug", "WARN": "Warning", "ERROR": "Error"}[r["level"]]}
        ),
        **_ids(r, "@tr", "@sp"),
        **_rest(r),
    },
    "ecs": lambda r: {
        "@timestamp": r["timestamp"],
        "log.level": LOWER[r["level"]],
        "message": r["message"],
        "ecs.version": "1.6.0",
        "service": {"name": r["service"]},
        **(
            {"trace": {"id": r["trace_id"]}, "span": {"id": r["span_id"]}}
            if "trace_id" in r
            else {}
        ),
        **_rest(r, "service"),
    },
    "python-json": lambda r: {
        "asctime": _asctime(r["timestamp"]),
        "levelname": "WARNING" if r["level"] == "WARN" else r["level"],
        "name": r.get("logger"),
        "message": r["message"],
        **_ids(r, "otelTraceID", "otelSpanID"),
        **_rest(r, "logger"),
    },
    "structlog": lambda r: {
        **_rest(r),
        **_ids(r, "trace_id", "span_id"),
        "event": r["message"],
        "level": "warning" if r["level"] == "WARN" else LOWER[r["level"]],
        "timestamp": r["timestamp"],
    },
}


def corpus(name: str, lines: int, out: Path) -> Path:
    path = out / f"{name}.log"
    rng = random.Random(1)  # the same records for every dialect
    render = RENDER[name]
    with open(path, "wb") as f:
        buf = []
        for i in range(lines):
            buf.append(orjson.dumps(render(make_record(rng, i, 1_700_000_000))))
            if len(buf) == 10000:
                f.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            f.write(b"\n".join(buf) + b"\n")
    return path


def _schema(name: str) -> dict[str, Any]:
    if name == "v1":
        return {}
    return {"dialects": [{"include": ["*.log"], "dialect": name}]}


def stage_cpu(name: str, path: Path, tmp: Path) -> tuple[float, int]:
    """CPU seconds of SchemaStage.process over ``path`` in 1 MiB chunks; lines forwarded."""
    cfg = build_config({"schema": _schema(name), "checkpoint": {"dir": str(tmp / "st")}})
    dead = DeadLetter(tmp / f"q-{name}", 1 << 30, 2)
    stage = SchemaStage(cfg.config.schema, dead, Metrics())
    data = path.read_bytes()
    chunks = []
    pos = 0
    while pos < len(data):
        end = data.rfind(b"\n", pos, pos + (1 << 20)) + 1
        chunks.append(Chunk("k", str(path), pos, end, data[pos:end]))
        pos = end
    t0 = time.process_time()
    out = sum(len(stage.process(c).lines) for c in chunks)
    cpu = time.process_time() - t0
    dead.close()
    return cpu, out


def sidecar_cpu(name: str, path: Path, tmp: Path) -> float:
    """CPU seconds of a real sidecar process shipping ``path`` to the file sink."""
    run = tmp / f"run-{name}"
    (run / "logs").mkdir(parents=True)
    os.link(path, run / "logs" / "app.log")
    cfg = {
        "source": {"path": str(run / "logs"), "fs_events": False},
        "checkpoint": {"dir": str(run / "state")},
        "http": {"enabled": False},
        "schema": _schema(name),
        "sinks": [{"name": "a", "type": "file", "dir": str(run / "archive"), "fsync": False}],
    }
    (run / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sidecar.cli import main; main()",
            "run",
            "--config",
            str(run / "c.yaml"),
            "--exit-on-idle",
            "0.3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, ru = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"sidecar failed for {name} ({status})")
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--dialects", default=",".join(n for n in RENDER if n != "v1"))
    args = ap.parse_args()
    names = ["v1", *args.dialects.split(",")]
    per_m = 1e6 / args.lines
    with tempfile.TemporaryDirectory(prefix="bench-dialects-") as t:
        tmp = Path(t)
        paths = {n: corpus(n, args.lines, tmp) for n in names}
        print(f"{args.lines:,} lines each (the same records, written by each library's rules)")
        print(f"{'':12} {'stage CPU-s/M':>14} {'x v1':>6}", end="")
        print(f" {'sidecar CPU-s/M':>16} {'x v1':>6}" if args.e2e else "")
        base: tuple[float, float] | None = None
        for n in names:
            cpu, out = stage_cpu(n, paths[n], tmp)
            if out != args.lines:
                raise SystemExit(f"{n}: {out} of {args.lines} lines forwarded")
            row = f"{n:12} {cpu * per_m:14.2f}"
            e2e = sidecar_cpu(n, paths[n], tmp) if args.e2e else 0.0
            if base is None:
                base = (cpu, e2e)
            row += f" {cpu / base[0]:6.2f}"
            if args.e2e:
                row += f" {e2e * per_m:16.2f} {e2e / base[1]:6.2f}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
