"""Sidecar source benchmark: read a pre-written file through Tailer.poll to the end.

Reports lines/s, MB/s, CPU seconds and peak RSS of the tailing process, next to a raw read of
the same file in the same run (Python 1 MiB reads, and ``cat FILE > /dev/null``), and the
ratio. Each measurement runs in its own child process so its peak RSS is its own.

    python bench/corpus.py bench/out/corpus-1m.log          # once: 1,000,000 lines
    python bench/bench_tail.py bench/out/corpus-1m.log [--max-bytes 4194304]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    status = Path("/proc/self/status")
    if status.exists():
        # VmHWM belongs to this address space; ru_maxrss is inherited from the forking parent.
        for ln in status.read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return ru.ru_utime + ru.ru_stime, int(ln.split()[1]) * 1024
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024  # Linux: KiB


def child_raw(path: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    c0, _ = _usage()
    lines = 0
    n = 0
    with open(path, "rb", buffering=0) as f:
        while block := f.read(1 << 20):
            n += len(block)
            lines += block.count(b"\n")
    c1, rss = _usage()
    return {
        "secs": time.perf_counter() - t0,
        "cpu": c1 - c0,
        "bytes": n,
        "lines": lines,
        "rss": rss,
    }


def child_tail(path: Path, max_bytes: int) -> dict[str, float]:
    from sidecar.checkpoint import CheckpointStore
    from sidecar.source.settings import SourceSettings
    from sidecar.source.tailer import Tailer

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        folder = Path(tmp) / "logs"
        folder.mkdir()
        target = folder / "app.log"
        try:
            os.link(path, target)  # same bytes, no copy
        except OSError:
            shutil.copyfile(path, target)
        size = target.stat().st_size
        store = CheckpointStore(Path(tmp) / "cp.json")
        store.load()
        tailer = Tailer(SourceSettings(path=str(folder), fs_events=False), store)
        t0 = time.perf_counter()
        c0, _ = _usage()
        lines = 0
        nbytes = 0
        polls = 0
        while nbytes < size:
            polls += 1
            chunks = tailer.poll(max_bytes)
            for d in tailer.discovered():
                store.record(d)
            for c in chunks:
                lines += c.data.count(b"\n")  # what the engine's split costs is not ours
                nbytes = max(nbytes, c.end)
                store.advance(c.file_key, c.end, c.path)
        store.save()
        c1, rss = _usage()
        secs = time.perf_counter() - t0
        tailer.close()
    return {
        "secs": secs,
        "cpu": c1 - c0,
        "bytes": nbytes,
        "lines": lines,
        "rss": rss,
        "polls": polls,
    }


def run_child(kind: str, path: Path, max_bytes: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, str(path), "--child", kind, "--max-bytes", str(max_bytes)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def time_cat(path: Path) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["cat", str(path)], stdout=null, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--max-bytes", type=int, default=4 << 20, help="Tailer.poll budget")
    ap.add_argument("--child", choices=["raw", "tail"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "raw":
        print(json.dumps(child_raw(args.file)))
        return
    if args.child == "tail":
        print(json.dumps(child_tail(args.file, args.max_bytes)))
        return
    size = args.file.stat().st_size
    print(f"file: {args.file} ({size / 1e6:.1f} MB)")
    cat = time_cat(args.file)  # also warms the page cache for everyone
    raw = run_child("raw", args.file, args.max_bytes)
    tail = run_child("tail", args.file, args.max_bytes)
    mb = size / 1e6
    print(f"cat > /dev/null         {cat:7.3f} s  {mb / cat:8.0f} MB/s")
    print(
        f"raw read (1 MiB, py)    {raw['secs']:7.3f} s  {mb / raw['secs']:8.0f} MB/s"
        f"  {raw['lines'] / raw['secs']:12,.0f} lines/s  RSS {raw['rss'] / 2**20:6.1f} MiB"
    )
    print(
        f"Tailer.poll             {tail['secs']:7.3f} s  {mb / tail['secs']:8.0f} MB/s"
        f"  {tail['lines'] / tail['secs']:12,.0f} lines/s  RSS {tail['rss'] / 2**20:6.1f} MiB"
        f"  CPU {tail['cpu']:.2f} s ({tail['cpu'] / tail['lines'] * 1e6:.2f} s per 1M lines)"
        f"  polls {tail['polls']:.0f}"
    )
    print(
        f"ratio tailer/raw-read time: {tail['secs'] / raw['secs']:.2f}x;"
        f" tailer/cat: {tail['secs'] / cat:.2f}x"
    )
    assert tail["lines"] == raw["lines"], (tail["lines"], raw["lines"])


if __name__ == "__main__":
    main()
