"""Soak: the real sidecar at a fixed rate for minutes to hours, sampling its memory and CPU.

    python bench/soak.py --minutes 5 [--rate 2000] [--interval 10] [--sink file|loki]

A writer process (``tests/chaos/chaos_writer.py``: four services, every rotation scheme,
one invalid line in 1,000) writes at ``--rate`` lines/s; ``obskit-sidecar run`` ships to the
file sink (bounded: 4 segments of 64 MiB) or to the in-process Loki receiver in count-only
mode. Every ``--interval`` seconds it prints the sidecar's RSS (``VmRSS``), its CPU use over
the interval, and lines read / forwarded (its own ``/metrics``). At the end: RSS at the
start of the second minute, at the end, the peak, and the slope over the second half, which
should be about zero: memory stays flat whatever the duration. Linux (reads ``/proc``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TICK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def metric(text: str, name: str) -> float:
    total = 0.0
    for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M):
        total += float(m.group(1))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--rate", type=int, default=2000, help="lines per second (all services)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--sink", choices=["file", "loki"], default="file")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="obskit-soak-"))
    logs, state = tmp / "logs", tmp / "state"
    logs.mkdir()
    loki = None
    if args.sink == "loki":
        from tests.receivers.loki import LokiReceiver

        loki = LokiReceiver(store="count").start()
        sink = {"name": "loki", "type": "loki", "url": loki.url}
    else:
        sink = {
            "name": "archive",
            "type": "file",
            "dir": str(tmp / "archive"),
            "max_segments": 4,
            "max_segment_bytes": "64MiB",
        }
    cfg = {
        "source": {"path": str(logs)},
        "checkpoint": {"dir": str(state)},
        "http": {"listen": "127.0.0.1:0"},
        "sinks": [sink],
    }
    (tmp / "sidecar.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    seconds = args.minutes * 60
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "chaos" / "chaos_writer.py"),
            str(logs),
            str(tmp / "ledger.json"),
            f"--rate={args.rate}",
            f"--seconds={seconds}",
            "--invalid-every=1000",
            "--rotate-min=5",
            "--rotate-max=20",
        ],
        stdout=subprocess.DEVNULL,
        env=env,
    )
    out = open(tmp / "sidecar.out", "wb")  # noqa: SIM115
    side = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sidecar.cli import main; main()",
            "run",
            "--config",
            str(tmp / "sidecar.yaml"),
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    listen = None
    deadline = time.monotonic() + 30
    while listen is None:
        m = re.search(rb'"listen":"([0-9.:]+)"', (tmp / "sidecar.out").read_bytes())
        if m:
            listen = m.group(1).decode()
        elif time.monotonic() > deadline or side.poll() is not None:
            raise SystemExit(f"sidecar did not start: {(tmp / 'sidecar.out').read_text()}")
        else:
            time.sleep(0.1)
    print(f"soak: {args.minutes} min at {args.rate} lines/s into {args.sink}; folder {tmp}")
    print(f"{'t (s)':>7} {'RSS MiB':>8} {'CPU %':>6} {'read':>10} {'forwarded':>10} {'lag':>8}")
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    last_t, last_cpu = t0, cpu_seconds(side.pid)
    try:
        while writer.poll() is None:
            time.sleep(args.interval)
            now, cpu = time.monotonic(), cpu_seconds(side.pid)
            rss = rss_mib(side.pid)
            text = httpx.get(f"http://{listen}/metrics", timeout=5).text
            read = metric(text, "obskit_sidecar_lines_read_total")
            fwd = metric(text, "obskit_sidecar_lines_forwarded_total")
            lag = metric(text, "obskit_sidecar_file_lag_bytes")
            pct = 100 * (cpu - last_cpu) / (now - last_t)
            print(
                f"{now - t0:7.0f} {rss:8.1f} {pct:6.1f} {read:10.0f} {fwd:10.0f} {lag:8.0f}",
                flush=True,
            )
            samples.append((now - t0, rss))
            last_t, last_cpu = now, cpu
    finally:
        total_cpu = cpu_seconds(side.pid)
        side.terminate()
        side.wait(timeout=60)
        out.close()
        if writer.poll() is None:
            writer.kill()
        if loki is not None:
            loki.stop()
    late = [s for s in samples if s[0] >= 60] or samples
    half = [s for s in samples if s[0] >= samples[-1][0] / 2] or samples
    n = len(half)
    mean_t = sum(t for t, _ in half) / n
    mean_r = sum(r for _, r in half) / n
    var = sum((t - mean_t) ** 2 for t, _ in half) or 1.0
    slope = sum((t - mean_t) * (r - mean_r) for t, r in half) / var * 60
    print(
        f"RSS after 1 min {late[0][1]:.1f} MiB, at the end {samples[-1][1]:.1f} MiB, peak "
        f"{max(r for _, r in samples):.1f} MiB; slope over the second half {slope:+.2f} MiB/min; "
        f"CPU {total_cpu:.1f} s for {seconds * args.rate:,.0f} lines "
        f"({total_cpu / (seconds * args.rate) * 1e6:.1f} s per million)"
    )


if __name__ == "__main__":
    main()
