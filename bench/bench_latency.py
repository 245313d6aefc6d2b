"""Write-to-archive latency: a writer appends 1,000 lines/s to a log file while a real
``obskit-sidecar run`` ships them to the file sink; a reader follows the archive and notes when
each line arrives. Run with file-system events on and off (poll interval 1 s).

    python bench/bench_latency.py [--seconds 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import yaml


def run(fs_events: bool, seconds: float, rate: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        (tmp / "logs").mkdir()
        log = tmp / "logs" / "app.log"
        log.write_bytes(b"")
        cfg = {
            "source": {"path": str(tmp / "logs"), "poll_interval": "1s", "fs_events": fs_events},
            "checkpoint": {"dir": str(tmp / "state")},
            "http": {"enabled": False},
            "batch": {"max_wait": "50ms"},
            "sinks": [{"name": "archive", "type": "file", "dir": str(tmp / "archive")}],
        }
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from sidecar.cli import main; main()",
                "run",
                "--config",
                str(tmp / "c.yaml"),
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(1.5)  # let it start and find the (empty) file
        arrivals: dict[int, float] = {}
        sent: dict[int, float] = {}
        stop = threading.Event()

        def reader() -> None:
            pos: dict[Path, int] = {}
            while not stop.is_set() or len(arrivals) < len(sent):
                for seg in sorted((tmp / "archive").glob("archive-*.ndjson")):
                    with open(seg, "rb") as fh:
                        fh.seek(pos.get(seg, 0))
                        data = fh.read()
                    cut = data.rfind(b"\n") + 1
                    pos[seg] = pos.get(seg, 0) + cut
                    now = time.monotonic()
                    for raw in data[:cut].splitlines():
                        arrivals.setdefault(orjson.loads(raw)["seq"], now)
                if stop.is_set() and time.monotonic() > deadline:
                    return
                time.sleep(0.002)

        deadline = time.monotonic() + seconds + 10
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        n = int(seconds * rate)
        start = time.monotonic()
        with open(log, "ab", buffering=0) as fh:
            for i in range(n):
                due = start + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                rec = {
                    "timestamp": "2024-10-01T12:00:00Z",
                    "level": "INFO",
                    "service": "latency",
                    "message": "tick",
                    "seq": i,
                }
                sent[i] = time.monotonic()
                fh.write(orjson.dumps(rec) + b"\n")
        stop.set()
        t.join(timeout=15)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        missing = n - len(arrivals)
        if missing:
            print(f"  WARNING: {missing} lines did not arrive")
        return [(arrivals[i] - sent[i]) * 1000 for i in arrivals]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    for fs_events in (True, False):
        lat = sorted(run(fs_events, args.seconds, args.rate))
        p99 = lat[int(len(lat) * 0.99) - 1]
        print(
            f"fs_events={fs_events!s:5}  poll_interval=1s  {len(lat)} lines at {args.rate}/s: "
            f"median {statistics.median(lat):.0f} ms, p99 {p99:.0f} ms, max {lat[-1]:.0f} ms"
        )


if __name__ == "__main__":
    main()
