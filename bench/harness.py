"""What the sink benchmarks share: a receiver in another process, corpus slices, pre-validated
batches and the process's CPU time."""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from obskit.schema import Policy, validate_chunk
from sidecar.sinks.base import Batch, Sink

ROOT = Path(__file__).resolve().parent.parent


def start_receiver(
    module: str, tmp: Path, *extra: str, store: str = "count"
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``python -m <module> --store count`` (or ``full``) on an ephemeral port (its CLI from
    ``tests/receivers/served.py``): the process, its URL and where it writes its counters."""
    name = module.rsplit(".", 1)[-1]
    port_file, stats = tmp / f"{name}-port", tmp / f"{name}-stats.json"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", module, "--port", "0", "--port-file", str(port_file)),
            *("--store", store, "--stats-file", str(stats), *extra),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{module} did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}", stats


def stop_receiver(proc: subprocess.Popen[bytes], stats: Path) -> dict[str, int]:
    proc.terminate()
    proc.wait(timeout=30)
    return dict(json.loads(stats.read_text())) if stats.exists() else {}


def corpus_prefix(corpus: Path, lines: int, dest: Path) -> int:
    """Copy the first ``lines`` lines of the corpus; returns the byte size."""
    with corpus.open("rb") as src, dest.open("wb") as out:
        for line in itertools.islice(src, lines):
            out.write(line)
    return dest.stat().st_size


def batches(
    corpus: Path, lines: int, size: int = 20000, static: dict[str, str] | None = None
) -> list[Batch]:
    """The corpus's valid lines in batches of ``size`` lines read, validated beforehand."""
    out = []
    with corpus.open("rb") as f:
        for seq in itertools.count():
            chunk = b"".join(itertools.islice(f, size))
            if not chunk or seq * size >= lines:
                break
            res = validate_chunk(chunk, Policy())
            keep = [i for i, r in enumerate(res.records) if r is not None]
            out.append(
                Batch(
                    seq,
                    [res.lines[i] for i in keep],
                    [res.records[i] for i in keep],  # type: ignore[misc]
                    offsets=keep,
                    runs=[(0, f"bench-{seq}")],
                    static=static if static is not None else {"host": "bench"},
                    read_time=time.time(),
                )
            )
    return out


def cpu() -> float:
    """CPU seconds (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_sink_alone(
    module: str, make_sink: Callable[[str], Sink], bs: list[Batch], *extra: str
) -> None:
    """Pre-validated batches through ``make_sink(url)`` alone (no tailing, no stage) into the
    receiver ``module`` in another process; prints lines/s and CPU-s per million lines of this
    process."""
    with tempfile.TemporaryDirectory(prefix="bench-sink-") as t:
        rx, url, stats_file = start_receiver(module, Path(t), *extra)
        try:
            sink = make_sink(url)
            sink.start()
            n = sum(len(b) for b in bs)
            c0, t0 = cpu(), time.monotonic()
            rejected = sum(len(sink.send(b).rejected) for b in bs)
            wall, used = time.monotonic() - t0, cpu() - c0
            sink.close()
        finally:
            st = stop_receiver(rx, stats_file)
    print(
        f"sink alone (pre-validated batches of 20,000): {n:,} lines, rejected {rejected}, "
        f"delivered {st.get('accepted', 0):,}"
    )
    print(f"  {n / wall:,.0f} lines/s wall; {used * 1e6 / n:.2f} CPU-s per million lines")
