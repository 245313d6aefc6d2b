"""SDK benchmark: microseconds per log call, in-process, writing to a file, side by side.

    .venv/bin/python bench/bench_sdk.py [--calls 100000] [--repeat 3]

Compared set-ups (each writes the same event: a message and three fields):
  obskit-structlog  obskit.configure() + obskit.get_logger()         (queue + writer thread)
  obskit-stdlib     obskit.configure() + logging.getLogger()         (queue + writer thread)
  structlog-fastest structlog: add_log_level, TimeStamper(iso, utc), JSONRenderer(orjson),
                    BytesLoggerFactory, make_filtering_bound_logger, cache_logger_on_first_use
  python-json-logger  logging + FileHandler + pythonjsonlogger.json.JsonFormatter
  ecs-logging       logging + FileHandler + ecs_logging.StdlibFormatter

"caller" is the time the logging call takes; "total" also waits for obskit's writer thread to
write everything (the others write synchronously, so for them caller == total). The best of
``--repeat`` runs is reported. Then the per-call latency distribution of obskit's structlog
path (queue handler): median and p99.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ecs_logging
import orjson
import structlog
from pythonjsonlogger.json import JsonFormatter

import obskit
from obskit.sdk import configure as sdk_configure
from obskit.sdk.hub import HUB

Setup = Callable[[Path], tuple[Callable[[int], None], Callable[[], None]]]


def _reset_obskit() -> None:
    obskit.shutdown()
    HUB.writer = HUB.renderer = None
    sdk_configure._current = None
    structlog.reset_defaults()
    root = logging.getLogger()
    root.handlers.clear()


def obskit_structlog(folder: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    obskit.configure(service="bench", log_dir=folder, queue_size=1_000_000)
    log = obskit.get_logger("bench")

    def call(i: int) -> None:
        log.info("request handled", user_id=i, path="/api/orders", status=200)

    return call, lambda: (obskit.flush(60), None)[1]


def obskit_stdlib(folder: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    obskit.configure(service="bench", log_dir=folder, queue_size=1_000_000)
    log = logging.getLogger("bench")

    def call(i: int) -> None:
        log.info("request handled", extra={"user_id": i, "path": "/api/orders", "status": 200})

    return call, lambda: (obskit.flush(60), None)[1]


def structlog_fastest(folder: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    fh = (folder / "structlog.log").open("wb")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(file=fh),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()

    def call(i: int) -> None:
        log.info("request handled", user_id=i, path="/api/orders", status=200)

    return call, fh.close


def _stdlib_with(
    folder: Path, fmt: logging.Formatter, name: str
) -> tuple[Callable[[int], None], Callable[[], None]]:
    handler = logging.FileHandler(folder / f"{name}.log", encoding="utf-8")
    handler.setFormatter(fmt)
    log = logging.getLogger(f"bench.{name}")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)

    def call(i: int) -> None:
        log.info("request handled", extra={"user_id": i, "path": "/api/orders", "status": 200})

    return call, handler.close


def python_json_logger(folder: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    fmt = JsonFormatter("{asctime}{levelname}{name}{message}", style="{", timestamp=True)
    return _stdlib_with(folder, fmt, "pjl")


def ecs(folder: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    return _stdlib_with(folder, ecs_logging.StdlibFormatter(), "ecs")


SETUPS: dict[str, Setup] = {
    "obskit-structlog": obskit_structlog,
    "obskit-stdlib": obskit_stdlib,
    "structlog-fastest": structlog_fastest,
    "python-json-logger": python_json_logger,
    "ecs-logging": ecs,
}


def run(setup: Setup, calls: int) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="obskit-bench-"))
    try:
        call, finish = setup(folder)
        for i in range(1000):  # warm caches (structlog's logger cache, key plans)
            call(i)
        t0 = time.perf_counter()
        for i in range(calls):
            call(i)
        t1 = time.perf_counter()
        finish()
        t2 = time.perf_counter()
        _reset_obskit()
        return (t1 - t0) / calls * 1e6, (t2 - t0) / calls * 1e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def latency(calls: int) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="obskit-bench-"))
    try:
        call, finish = obskit_structlog(folder)
        for i in range(1000):
            call(i)
        clock = time.perf_counter_ns
        samples = []
        for i in range(calls):
            t0 = clock()
            call(i)
            samples.append(clock() - t0)
        finish()
        _reset_obskit()
        samples.sort()
        return statistics.median(samples) / 1e3, samples[int(len(samples) * 0.99)] / 1e3
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    results: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for name, setup in SETUPS.items():
            caller, total = run(setup, args.calls)
            best = results.get(name)
            if best is None or total < best[1]:
                results[name] = (caller, total)
    base = results["structlog-fastest"][1]
    print(f"python {sys.version.split()[0]}, {args.calls} calls, best of {args.repeat}")
    print(f"{'set-up':<20}{'caller µs/call':>16}{'total µs/call':>16}{'vs structlog':>14}")
    for name, (caller, total) in results.items():
        print(f"{name:<20}{caller:>16.2f}{total:>16.2f}{total / base:>13.2f}x")
    med, p99 = latency(args.calls)
    print(f"obskit-structlog caller latency (queue handler): median {med:.2f} µs, p99 {p99:.2f} µs")


if __name__ == "__main__":
    main()
