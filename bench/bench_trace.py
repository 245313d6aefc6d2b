"""Benchmark ``obskit trace``.

(a) files: a folder of mixed logs (several files, some ``.gz``) with one trace's lines
    scattered; the scan rate of the files backend on one core, compared in the same run with
    ``grep -F -r <id>`` on the same folder.
(b) backends: the in-process Loki and Elasticsearch receivers holding ``--lines`` lines over
    7 days, one trace of ``--trace-lines`` lines among them; requests and wall time for a
    7-day lookup, and whether the trace comes back whole.

    python bench/bench_trace.py files --size 2G
    python bench/bench_trace.py backends --lines 1000000 --trace-lines 50000
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402

from obskit.trace.files import search_files  # noqa: E402
from obskit.trace.model import format_ns  # noqa: E402

TRACE = "5c1e0ffee0ddba11c0ffee0ddba11fab"
T_START = 1_795_392_000_000_000_000  # 2026-11-23T00:00:00Z


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    return int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t)


def trace_line(rng: random.Random, i: int) -> bytes:
    return orjson.dumps(
        {
            "timestamp": format_ns(T_START + i * 7_000_000, 6),
            "level": rng.choice(["INFO", "INFO", "WARN", "ERROR"]),
            "service": rng.choice(corpus.SERVICES),
            "trace_id": TRACE,
            "span_id": f"{rng.getrandbits(64) or 1:016x}",
            "message": f"step {i} of the benchmark trace",
        }
    )


def make_folder(folder: Path, size: int, files: int = 8, gz_every: int = 3) -> tuple[int, int]:
    """Write ``files`` files totalling ``size`` bytes of uncompressed logs; every
    ``gz_every``-th is gzip-compressed. Returns (uncompressed bytes, trace lines)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(7)
    per_file = size // files
    total, planted, seq = 0, 0, 0
    for f in range(files):
        name = folder / (f"svc{f}" if f % 2 else f"archive/svc{f}") / f"app-{f}.log"
        name.parent.mkdir(parents=True, exist_ok=True)
        gz = f % gz_every == gz_every - 1
        path = name.with_suffix(".log.gz") if gz else name
        raw = gzip.open(path, "wb", compresslevel=1) if gz else open(path, "wb")  # noqa: SIM115
        with raw as out:
            written, buf = 0, []
            while written < per_file:
                ln = corpus.line_for(rng, seq, 1_700_000_000, 0.01)
                seq += 1
                if rng.random() < 0.00005:  # about 50 trace lines per 1e6 lines, scattered
                    ln = trace_line(rng, planted)
                    planted += 1
                buf.append(ln)
                written += len(ln) + 1
                if len(buf) >= 20000:
                    out.write(b"\n".join(buf) + b"\n")
                    buf.clear()
            if buf:
                out.write(b"\n".join(buf) + b"\n")
        total += written
    return total, planted


def bench_files(args: argparse.Namespace) -> None:
    size = parse_size(args.size)
    folder = ROOT / "bench" / "out" / f"trace-files-{args.size}"
    marker = folder / ".complete"
    if not marker.exists():
        t = time.perf_counter()
        total, planted = make_folder(folder, size)
        marker.write_text(f"{total} {planted}\n")
        print(
            f"generated {total / 1e6:.0f} MB, {planted} trace lines "
            f"in {time.perf_counter() - t:.0f} s"
        )
    total, planted = (int(x) for x in marker.read_text().split())
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    # Warm the page cache the same way for both tools.
    subprocess.run(
        ["cat", *map(str, folder.rglob("*.log*"))], stdout=subprocess.DEVNULL, check=True
    )
    best = None
    for _ in range(args.repeat):
        t = time.perf_counter()
        found = search_files([folder], TRACE, None)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
        assert len(found.entries) == planted, (len(found.entries), planted)
    assert best is not None
    g_best = None
    for _ in range(args.repeat):
        t = time.perf_counter()
        g = subprocess.run(
            ["grep", "-F", "-r", "-c", TRACE, str(folder)],
            capture_output=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        dt = time.perf_counter() - t
        g_best = dt if g_best is None else min(g_best, dt)
    assert g_best is not None
    grep_found = sum(int(x.rsplit(":", 1)[1]) for x in g.stdout.decode().split())
    gz_bytes = sum(p.stat().st_size for p in folder.rglob("*.gz"))
    print(
        f"folder: {folder} ({on_disk / 1e6:.0f} MB on disk, {total / 1e6:.0f} MB of log text, "
        f"{gz_bytes / 1e6:.0f} MB of it as .gz on disk)"
    )
    print(
        f"obskit trace --path: {best:.2f} s, {total / best / 1e6:.0f} MB/s of log text, "
        f"found {planted}/{planted} lines (incl. inside .gz)"
    )
    print(
        f"grep -F -r:          {g_best:.2f} s, {on_disk / g_best / 1e6:.0f} MB/s of on-disk bytes, "
        f"found {grep_found} lines (cannot see inside .gz)"
    )


def bench_backends(args: argparse.Namespace) -> None:
    from obskit.trace.config import ElasticsearchConfig, LokiConfig, TraceConfig
    from obskit.trace.lookup import run_lookup
    from obskit.trace.model import Window
    from tests.receivers.elasticsearch import EsReceiver
    from tests.receivers.loki import Limits, LokiReceiver

    n, k = args.lines, args.trace_lines
    week = 7 * 86400 * 10**9
    end = time.time_ns() // 10**9 * 10**9
    start = end - week
    rng = random.Random(3)
    step = week // n
    trace_at = set(rng.sample(range(n), k))
    recs: list[tuple[int, dict[str, object]]] = []
    for i in range(n):
        ts = start + i * step
        rec: dict[str, object] = {
            "timestamp": format_ns(ts, 9),
            "level": rng.choice(corpus.LEVELS),
            "service": rng.choice(corpus.SERVICES),
            "message": f"line {i}",
        }
        if i in trace_at:
            rec["trace_id"] = TRACE
            rec["span_id"] = f"{i + 1:016x}"
        else:
            rec["trace_id"] = f"{rng.getrandbits(128):032x}"
        recs.append((ts, rec))
    window = Window(start, end + 10**9)
    which = args.backend

    if which in ("loki", "both"):
        rx = LokiReceiver(Limits(reject_old_samples=False, max_chunk_age=2 * week)).start()
        t = time.perf_counter()
        for i in range(0, n, 20000):
            streams: dict[str, list[list[object]]] = {}
            for ts, rec in recs[i : i + 20000]:
                v: list[object] = [
                    str(ts),
                    orjson.dumps(rec).decode(),
                    {"trace_id": rec["trace_id"]},
                ]
                streams.setdefault(str(rec["service"]), []).append(v)
            body = orjson.dumps(
                {"streams": [{"stream": {"service": s}, "values": v} for s, v in streams.items()]}
            )
            status, text = rx.handle_push("fake", body, "application/json", "")
            assert status == 204, text
        print(f"loki receiver loaded {n} lines in {time.perf_counter() - t:.0f} s")
        for mode in ("metadata", "both"):
            before = rx.stats()["query_requests"]
            cfg = TraceConfig(loki=LokiConfig(url=rx.url, mode=mode, shard=args.loki_shard))
            t = time.perf_counter()
            res = run_lookup(cfg, TRACE, window)
            dt = time.perf_counter() - t
            assert not res.errors, res.errors
            reqs = rx.stats()["query_requests"] - before
            print(
                f"loki mode={mode}: {len(res.entries)}/{k} lines, {reqs} requests, {dt:.1f} s "
                f"(shards of {args.loki_shard}, page 5000, concurrency 4)"
            )
        rx.stop()

    if which in ("es", "both"):
        es = EsReceiver().start()
        import httpx

        t = time.perf_counter()
        with httpx.Client(timeout=600) as c:
            for i in range(0, n, 20000):
                parts = []
                for _, rec in recs[i : i + 20000]:
                    parts.append(b'{"create":{"_index":"logs-bench-default"}}')
                    parts.append(orjson.dumps({"@timestamp": rec["timestamp"], **rec}))
                r = c.post(
                    es.url + "/_bulk",
                    content=b"\n".join(parts) + b"\n",
                    headers={"Content-Type": "application/x-ndjson"},
                )
                assert r.status_code == 200 and not r.json()["errors"]
        print(f"es receiver loaded {n} docs in {time.perf_counter() - t:.0f} s")
        for pit in (True, False):
            before = es.stats.search_requests
            cfg = TraceConfig(
                elasticsearch=ElasticsearchConfig(
                    url=es.url, pit=pit, page_size=args.es_page_size, timeout=args.timeout
                )
            )
            t = time.perf_counter()
            res = run_lookup(cfg, TRACE, window)
            dt = time.perf_counter() - t
            assert not res.errors, res.errors
            reqs = es.stats.search_requests - before
            print(
                f"elasticsearch pit={pit}: {len(res.entries)}/{k} lines, {reqs} searches, "
                f"{dt:.1f} s (7 shards of 1 d, page {args.es_page_size}, concurrency 4)"
            )
        es.stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("files")
    f.add_argument("--size", default="2G", help="uncompressed size of the folder [2G]")
    f.add_argument("--repeat", type=int, default=3)
    b = sub.add_parser("backends")
    b.add_argument("--lines", type=int, default=1_000_000)
    b.add_argument("--trace-lines", type=int, default=50_000)
    b.add_argument("--backend", choices=["loki", "es", "both"], default="both")
    b.add_argument("--es-page-size", type=int, default=1000)
    b.add_argument("--loki-shard", default="6h")
    b.add_argument(
        "--timeout", type=float, default=600.0, help="per request; the receiver is slow at 1M"
    )
    a = ap.parse_args()
    bench_files(a) if a.what == "files" else bench_backends(a)


if __name__ == "__main__":
    main()
