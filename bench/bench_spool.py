"""Spool benchmark: what the disk spool costs, how fast it drains, and how much memory it takes,
end to end through ``obskit-sidecar run`` into a Loki stand-in in another process.

    python bench/bench_spool.py [--lines 1000000] [--big-gib 0]

In one run, on the same corpus (``bench/corpus.py``):

1. spool off vs on, the backend up: sidecar CPU seconds per million lines, wall, peak RSS;
2. an outage: the link is refused (a TCP proxy, ``tests/chaos/netfault.py``) while the sidecar
   reads every line into the spool, then comes back: time to spool, drain throughput (to
   compare with 1.) and peak RSS;
3. with ``--big-gib N``: the same outage with N GiB of logs (``spool.max_bytes`` raised to
   fit), to show RSS does not grow with the spool.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "chaos"))

from netfault import NetFault  # noqa: E402

from bench.corpus import write_corpus  # noqa: E402
from bench.harness import corpus_prefix, start_receiver, stop_receiver  # noqa: E402

LOKI = "tests.receivers.loki"

EXE = shutil.which("obskit-sidecar", path=str(Path(sys.executable).parent)) or "obskit-sidecar"


def config(tmp: Path, url: str, spool: str, extra: str = "") -> Path:
    cfg = tmp / "sidecar.yaml"
    cfg.write_text(
        f"source:\n  path: {(tmp / 'logs').as_posix()!r}\n  include: ['*.log']\n"
        f"checkpoint:\n  dir: {(tmp / 'state').as_posix()!r}\n"
        "http:\n  enabled: false\n"
        f"sinks:\n  - name: loki\n    type: loki\n    url: {url}\n"
        "    retry: {initial: 0.2, max: 1}\n"
        f"    spool: {spool}\n" + extra
    )
    return cfg


_VALID: dict[tuple[Path, int], int] = {}


def valid_lines(corpus: Path, lines: int) -> int:
    """Lines of the corpus prefix the receiver must get (the invalid ones are quarantined)."""
    key = (corpus, lines)
    if key not in _VALID:
        import itertools

        from obskit.schema import Policy, validate_chunk

        n = 0
        with corpus.open("rb") as f:
            while lines > 0:
                block = b"".join(itertools.islice(f, min(lines, 100_000)))
                if not block:
                    break
                lines -= block.count(b"\n")
                n += sum(r is not None for r in validate_chunk(block, Policy()).records)
        _VALID[key] = n
    return _VALID[key]


def rusage_of(child: subprocess.Popen[bytes]) -> tuple[float, float]:
    """Wait for ``child``; its CPU seconds and peak RSS in MiB. The peak is the kernel's
    ``VmHWM`` of the child's own image, read until it exits: ``ru_maxrss`` would also count
    this (larger) process's pages the child had between fork and exec."""
    import threading

    peak = [0]

    def watch() -> None:
        status = Path(f"/proc/{child.pid}/status")
        while child.returncode is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.05)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    _, status, ru = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    th.join(1)
    return ru.ru_utime + ru.ru_stime, (peak[0] or ru.ru_maxrss) / 1024


def accepted(stats_url: str) -> int:
    import httpx

    try:
        return int(httpx.get(stats_url, timeout=5).json().get("accepted", 0))
    except (httpx.HTTPError, ValueError):
        return -1


def shipping(corpus: Path, lines: int, spool: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as t:
        tmp = Path(t)
        (tmp / "logs").mkdir()
        corpus_prefix(corpus, lines, tmp / "logs" / "app.log")
        rx, url, stats = start_receiver(LOKI, tmp, "--accept-old")
        try:
            cfg = config(tmp, url, spool)
            t0 = time.monotonic()
            child = subprocess.Popen(
                [EXE, "run", "--config", str(cfg), "--exit-on-idle", "2"],
                cwd=tmp,
                stdout=subprocess.DEVNULL,
            )
            cpu, rss = rusage_of(child)
            wall = time.monotonic() - t0 - 2.0
        finally:
            st = stop_receiver(rx, stats)
    assert st.get("accepted") == valid_lines(corpus, lines), st
    return {"cpu": cpu * 1e6 / lines, "wall": wall, "rate": lines / wall, "rss": rss}


def outage(corpus: Path, lines: int, big: bool = False) -> dict[str, float]:
    """Link refused while everything is spooled, then back: spool time, drain rate, RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-spool-out-", dir=os.environ.get("TMPDIR")) as t:
        tmp = Path(t)
        (tmp / "logs").mkdir()
        size = corpus_prefix(corpus, lines, tmp / "logs" / "app.log")
        rx, url, stats = start_receiver(LOKI, tmp, "--accept-old")
        port = int(url.rsplit(":", 1)[1])
        link = NetFault(port).start()
        link.set("refuse")
        # The big run raises spool.max_bytes to hold everything.
        spool = f"{{max_bytes: {max(1 << 30, int(size * 1.2))}}}" if big else "true"
        cfg = config(tmp, link.url, spool)
        try:
            t0 = time.monotonic()
            child = subprocess.Popen(
                [EXE, "run", "--config", str(cfg), "--exit-on-idle", "2"],
                cwd=tmp,
                stdout=subprocess.DEVNULL,
            )
            spool_dir = tmp / "state" / "spool" / "loki"
            # Spooled: the sidecar has read the whole file (its checkpoint reaches the end).
            ck = tmp / "state" / "checkpoints.json"
            while True:
                if child.poll() is not None:
                    raise SystemExit("sidecar exited during the outage")
                try:
                    if f'"offset":{size}'.encode() in ck.read_bytes():
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            spooled = time.monotonic() - t0
            spool_bytes = sum(p.stat().st_size for p in spool_dir.glob("*.seg"))
            link.set("forward")
            t1 = time.monotonic()
            cpu, rss = rusage_of(child)
            drain = time.monotonic() - t1 - 2.0
        finally:
            link.close()
            st = stop_receiver(rx, stats)
    assert st.get("accepted") == valid_lines(corpus, lines), st
    return {
        "spooled_s": spooled,
        "spool_mb": spool_bytes / 1e6,
        "log_mb": size / 1e6,
        "drain_s": drain,
        "drain_rate": lines / drain,
        "rss": rss,
        "cpu": cpu * 1e6 / lines,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "out" / "corpus-1m.log")
    ap.add_argument("--big-gib", type=float, default=0.0)
    a = ap.parse_args()
    if not a.corpus.exists():
        a.corpus.parent.mkdir(parents=True, exist_ok=True)
        write_corpus(a.corpus, max(a.lines, 1_000_000))
    off = shipping(a.corpus, a.lines, "false")
    on = shipping(a.corpus, a.lines, "true")
    print(f"shipping {a.lines:,} lines into the receiver (backend up):")
    for name, r in (("spool off", off), ("spool on ", on)):
        print(
            f"  {name}: {r['cpu']:.2f} CPU-s per million lines, {r['rate']:,.0f} lines/s wall,"
            f" peak RSS {r['rss']:.0f} MiB"
        )
    print(f"  spool CPU overhead: {100 * (on['cpu'] / off['cpu'] - 1):+.0f}% per line")
    o = outage(a.corpus, a.lines)
    print(f"outage: link refused while {a.lines:,} lines ({o['log_mb']:.0f} MB) are read:")
    print(f"  spooled in {o['spooled_s']:.1f} s ({o['spool_mb']:.0f} MB of spool)")
    print(
        f"  drained in {o['drain_s']:.1f} s after the link returned = {o['drain_rate']:,.0f}"
        f" lines/s ({o['drain_rate'] / on['rate']:.2f}x normal shipping with the spool on)"
    )
    print(f"  whole run: {o['cpu']:.2f} CPU-s per million lines, peak RSS {o['rss']:.0f} MiB")
    if a.big_gib:
        big = ROOT / "bench" / "out" / f"corpus-{a.big_gib:g}gib.log"
        n = int(a.big_gib * (1 << 30) / 200)
        if not big.exists():
            write_corpus(big, n)
        with big.open("rb") as f:
            n = sum(1 for _ in f)
        b = outage(big, n, big=True)
        print(f"big outage: {n:,} lines ({b['log_mb'] / 1e3:.2f} GB) spooled, then drained:")
        print(
            f"  spool {b['spool_mb'] / 1e3:.2f} GB; spooled in {b['spooled_s']:.0f} s; drained"
            f" at {b['drain_rate']:,.0f} lines/s; peak RSS {b['rss']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
