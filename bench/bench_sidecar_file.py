"""Sidecar engine end to end: the 1,000,000-line corpus tailed, validated and written to the
file sink by a real ``obskit-sidecar run --exit-on-idle`` process.

    python bench/bench_sidecar_file.py [--lines 1000000] [--fsync/--no-fsync]
        [--max-inflight 8MiB] [--profile out.prof]

Prints lines/s (wall time minus the idle wait), CPU seconds per million lines and peak RSS of
the sidecar process (from its rusage), and the same file read raw with ``cat > /dev/null``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import write_corpus  # noqa: E402

IDLE = 0.5


def corpus(lines: int) -> Path:
    out = HERE / "out" / ("corpus-1m.log" if lines == 1_000_000 else f"corpus-{lines}.log")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_corpus(out, lines)
    return out


def raw_read_seconds(path: Path) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        subprocess.run(["cat", str(path)], stdout=devnull, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--max-inflight", help="memory.max_inflight_bytes (default: the sidecar's)")
    ap.add_argument("--profile", help="run the sidecar under cProfile, stats to this file")
    args = ap.parse_args()
    src = corpus(args.lines)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
    try:
        (tmp / "logs").mkdir()
        target = tmp / "logs" / "app.log"
        try:
            os.link(src, target)
        except OSError:
            shutil.copyfile(src, target)
        cfg = {
            "source": {"path": str(tmp / "logs"), "fs_events": False},
            "checkpoint": {"dir": str(tmp / "state")},
            "http": {"enabled": False},
            "sinks": [
                {
                    "name": "archive",
                    "type": "file",
                    "dir": str(tmp / "archive"),
                    "fsync": args.fsync,
                }
            ],
        }
        if args.max_inflight:
            cfg["memory"] = {"max_inflight_bytes": args.max_inflight}
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
        prof = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        code = "from sidecar.cli import main; main()"
        if args.profile:  # cProfile runs a script, not -c: a one-line one in the temp folder
            (tmp / "run.py").write_text(code + "\n")
        raw_read_seconds(target)  # warm the page cache for both
        raw = raw_read_seconds(target)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                *([*prof, str(tmp / "run.py")] if args.profile else ["-c", code]),
                "run",
                "--config",
                str(tmp / "c.yaml"),
                "--exit-on-idle",
                str(IDLE),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0 - IDLE
        out = proc.stdout.read().decode() if proc.stdout else ""
        if status != 0:
            raise SystemExit(f"sidecar failed ({status}):\n{out}")
        cpu = ru.ru_utime + ru.ru_stime
        rss_mib = ru.ru_maxrss / 1024  # KiB on Linux
        size = target.stat().st_size
        archived = sum(p.stat().st_size for p in (tmp / "archive").glob("archive-*"))
        inflight = args.max_inflight or "default"
        print(f"memory.max_inflight_bytes: {inflight}")
        print(f"corpus: {args.lines:,} lines, {size / 2**20:.0f} MiB ({src})")
        print(
            f"sidecar -> file sink (fsync={args.fsync}): {wall:.2f} s wall (startup included),"
            f" {args.lines / wall:,.0f} lines/s"
        )
        print(
            f"  CPU {cpu:.2f} s = {cpu / args.lines * 1e6:.2f} CPU-s per million lines"
            f" ({args.lines / cpu:,.0f} lines per CPU-second)"
        )
        print(f"  peak RSS {rss_mib:.0f} MiB; archive {archived / 2**20:.0f} MiB")
        print(f"raw read (cat > /dev/null): {raw:.3f} s, {args.lines / raw:,.0f} lines/s")
        print(f"ratio sidecar/raw wall time: {wall / raw:.1f}x")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
