"""The outage scenario: a backend cut off while the service rotates its files away.

    python bench/bench_outage.py [--loki URL] [--spool both|on|off]
                                 [--rate 3000] [--seconds 60] [--outage-at 15] [--outage 30]

A writer produces numbered lines at ``--rate`` lines/s into three files, each rotated by
rename every 3 s, the rotated file deleted at the next rotation (so a file lives about 6 s).
The sidecar ships to Loki through a TCP proxy that refuses connections from second
``--outage-at`` for ``--outage`` seconds. Afterwards every line is queried back from Loki
(``query_range``, paged), so the figures are what Loki holds: lines lost, lines stored more
than once, the delay from the link's return to the first push, the sidecar's peak RSS, and,
without spool, what the sidecar itself reported lost.

``--loki`` points at a real Loki (``../shared/tools/real-loki``); without it a Loki stand-in
(``tests/receivers/loki.py``) runs in another process. The peers' figures for the same
scenario (180,000 lines, 3,000 lines/s, outage from 15 s to 45 s, a real Loki, this machine
kind) were measured by the project earlier and are printed beside ours: Fluent Bit 5.1.1 has
no tool here to run it again.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "chaos"))

from netfault import NetFault  # noqa: E402

from bench.bench_spool import EXE, rusage_of  # noqa: E402

PEERS = [
    ("Fluent Bit 5.1.1 (in-memory buffer)", "0"),
    ("Promtail 3.6.15", "134,994 (17,997 of them at start-up)"),
    ("obskit before the spool", "99,005"),
]


class Writer(threading.Thread):
    """Numbered lines into three files, each renamed away every 3 s, the previous rotated
    file deleted (``keep one``)."""

    def __init__(self, folder: Path, service: str, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.folder, self.service, self.rate, self.seconds = folder, service, rate, seconds
        self.written = 0
        self.rotations = 0
        self.sizes: list[int] = []  # bytes of each line, newline included
        self.start_time = 0.0

    def run(self) -> None:
        files = [self.folder / f"app-{k}.log" for k in range(3)]
        handles = [open(p, "ab") for p in files]  # noqa: SIM115
        next_rot = [time.monotonic() + 3.0 + k for k in range(3)]
        self.start_time = t0 = time.monotonic()
        n = 0
        while True:
            now = time.monotonic()
            if now - t0 >= self.seconds:
                break
            due = int((now - t0) * self.rate)
            while n < due:
                k = n % 3
                stamp = time.time()
                rec = {
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
                    + f".{int(stamp % 1 * 1e6):06d}Z",
                    "level": "INFO",
                    "service": f"{self.service}-{k}",
                    "message": f"order {n} placed by customer {n * 7919 % 100000}",
                    "seq": n,
                }
                data = orjson.dumps(rec) + b"\n"
                handles[k].write(data)
                self.sizes.append(len(data))
                n += 1
            for h in handles:
                h.flush()
            for k in range(3):
                if now >= next_rot[k]:
                    handles[k].close()
                    old = files[k].with_suffix(".log.1")
                    old.unlink(missing_ok=True)
                    os.replace(files[k], old)
                    handles[k] = open(files[k], "ab")  # noqa: SIM115
                    next_rot[k] = now + 3.0
                    self.rotations += 1
            time.sleep(0.01)
        for h in handles:
            h.close()
        self.written = n


def loki_seqs(url: str, service: str, start_ns: int) -> list[int]:
    """Every ``seq`` Loki holds for the run's services (paged ``query_range``, forward)."""
    out: list[int] = []
    begin = start_ns
    end = time.time_ns() + 60 * 10**9
    seen_at_begin: set[bytes] = set()
    while True:
        r = httpx.get(
            url.rstrip("/") + "/loki/api/v1/query_range",
            params={
                "query": f'{{service=~"{service}-.*"}}',
                "start": str(begin),
                "end": str(end),
                "limit": "5000",
                "direction": "forward",
            },
            timeout=60,
        )
        r.raise_for_status()
        values = [(int(v[0]), v[1]) for s in r.json()["data"]["result"] for v in s["values"]]
        if not values:
            return out
        values.sort()
        last_ts = values[-1][0]
        fresh = 0
        for ts, line in values:
            key = f"{ts}:{line}".encode()
            if ts == begin and key in seen_at_begin:
                continue  # the page boundary's timestamp, already counted
            out.append(int(orjson.loads(line)["seq"]))
            fresh += 1
        seen_at_begin = {f"{ts}:{line}".encode() for ts, line in values if ts == last_ts}
        if len(values) < 5000 or not fresh:
            return out
        begin = last_ts


def metric(base: str, name: str) -> float:
    try:
        text = httpx.get(base + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(loki: str, spool: bool, a: argparse.Namespace) -> dict[str, object]:
    target = urlsplit(loki)
    link = NetFault(target.port or 80, target.hostname or "127.0.0.1").start()
    service = f"outage-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as t:
        tmp = Path(t)
        logs = tmp / "logs"
        logs.mkdir()
        port = 19000 + secrets.randbelow(1000)
        cfg = tmp / "sidecar.yaml"
        cfg.write_text(
            f"source:\n  path: {logs.as_posix()!r}\n  poll_interval: 250ms\n"
            f"checkpoint:\n  dir: {(tmp / 'state').as_posix()!r}\n"
            f"http:\n  listen: 127.0.0.1:{port}\n"
            f"sinks:\n  - name: loki\n    type: loki\n    url: {link.url}\n"
            f"    spool: {'true' if spool else 'false'}\n"
        )
        start_ns = time.time_ns() - 60 * 10**9
        child = subprocess.Popen(
            [EXE, "run", "--config", str(cfg)], cwd=tmp, stdout=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        usage: list[tuple[float, float]] = []
        waiter = threading.Thread(target=lambda: usage.append(rusage_of(child)), daemon=True)
        waiter.start()
        w = Writer(logs, service, a.rate, a.seconds)
        w.start()
        time.sleep(a.outage_at)
        link.set("refuse")
        time.sleep(a.outage)
        ok_pushes = 'obskit_sidecar_sink_requests_total{outcome="204",sink="loki"}'
        pushed = metric(base, ok_pushes)
        link.set("forward")
        back = time.monotonic()
        first_push = None
        while time.monotonic() - back < 30:
            now_pushed = metric(
                base, 'obskit_sidecar_sink_requests_total{outcome="204",sink="loki"}'
            )
            if now_pushed > pushed:
                first_push = time.monotonic() - back
                break
            time.sleep(0.05)
        w.join()
        # Until Loki holds every line, or nothing new arrives for 20 s.
        got: list[int] = []
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 20:
            got = loki_seqs(loki, service, start_ns)
            if len(set(got)) >= w.written:
                break
            if len(got) != last:
                last, since = len(got), time.monotonic()
            time.sleep(1)
        reported_bytes = metric(base, "obskit_sidecar_source_lost_bytes_total")
        child.terminate()
        waiter.join(60)
        link.close()
    unique = set(got)
    return {
        "lost_bytes": sum(w.sizes[n] for n in range(w.written) if n not in unique),
        "written": w.written,
        "rotations": w.rotations,
        "lost": w.written - len(unique),
        "duplicates": len(got) - len(unique),
        "first_push": first_push,
        "rss": usage[0][1] if usage else float("nan"),
        "reported_lost_bytes": reported_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loki", help="a real Loki's base URL (default: a stand-in process)")
    ap.add_argument("--spool", choices=("both", "on", "off"), default="both")
    ap.add_argument("--rate", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--outage-at", type=float, default=15.0)
    ap.add_argument("--outage", type=float, default=30.0)
    a = ap.parse_args()
    rx = None
    url = a.loki
    if url is None:
        from bench.harness import start_receiver

        tmp = Path(tempfile.mkdtemp(prefix="bench-outage-rx-"))
        rx, url, _ = start_receiver("tests.receivers.loki", tmp, store="full")
    try:
        print(
            f"{a.rate * a.seconds:,.0f} lines at {a.rate:,}/s into 3 files rotated every 3 s"
            f" (the rotated file deleted at the next rotation); Loki ({url}) unreachable from"
            f" {a.outage_at:g} s for {a.outage:g} s"
        )
        for on in {"both": (True, False), "on": (True,), "off": (False,)}[a.spool]:
            r = run(url, on, a)
            fp = r["first_push"]
            print(
                f"  obskit, spool {'on ' if on else 'off'}: lost {r['lost']:,} of"
                f" {r['written']:,}; stored twice {r['duplicates']:,}; first push"
                f" {'-' if fp is None else f'{fp:.1f} s'} after the link returned; peak RSS"
                f" {r['rss']:.0f} MiB; rotations {r['rotations']}"
            )
            if not on:
                print(
                    f"    the sidecar reported {r['reported_lost_bytes']:,.0f} bytes lost"
                    f" (obskit_sidecar_source_lost_bytes_total); the lines lost were"
                    f" {r['lost_bytes']:,} bytes"
                )
        print("  measured earlier on this machine kind, same scenario into a real Loki:")
        for name, lost in PEERS:
            print(f"    {name}: lost {lost}")
    finally:
        if rx is not None:
            rx.terminate()
            rx.wait(10)


if __name__ == "__main__":
    main()
