"""Loki sink benchmark: end to end through ``obskit-sidecar run`` into a Loki stand-in running
in another process, plus the encode cost of the same batches with the official protobuf
runtime (what a straightforward implementation would use).

    python bench/bench_loki.py [--lines 1000000] [--corpus bench/out/corpus-1m.log]
                               [--mode e2e|sink|both] [--loki URL [--loki-pid PID]]

Figures: lines/s (wall), CPU seconds per million lines of the sidecar process only (rusage of
the child), peak RSS of the sidecar. The receiver (``python -m tests.receivers.loki --store
count``) validates every entry like Loki but only counts what it stores.

With ``--loki`` the end-to-end run ships into that real Loki instead (``../shared/tools/
real-loki``), under an ``instance`` label of its own, and waits until every line is queryable
(``count_over_time``); ``--loki-pid`` adds Loki's own CPU seconds over the same time.
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
LOKI = "tests.receivers.loki"
sys.path.insert(0, str(ROOT))

from bench.corpus import write_corpus  # noqa: E402
from bench.harness import (  # noqa: E402
    batches,
    corpus_prefix,
    cpu,
    run_sink_alone,
    start_receiver,
    stop_receiver,
)
from sidecar.sinks.base import Batch  # noqa: E402
from sidecar.sinks.loki import Config, LokiSink  # noqa: E402
from sidecar.sinks.loki_proto import compress  # noqa: E402


def _proc_cpu(pid: int | None) -> float:
    """utime + stime of ``pid`` in seconds (Linux ``/proc``); 0 without a PID."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _queryable(loki: str, instance: str, want: int, timeout: float = 120.0) -> int:
    """Wait until Loki counts ``want`` lines of ``instance`` (or ``timeout``); the count."""
    import httpx

    q = f'sum(count_over_time({{instance="{instance}"}}[24h]))'
    deadline, got = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        r = httpx.get(f"{loki}/loki/api/v1/query", params={"query": q}, timeout=60)
        res = r.json()["data"]["result"] if r.status_code == 200 else []
        got = int(float(res[0]["value"][1])) if res else 0
        if got >= want:
            break
        time.sleep(0.5)
    return got


def run_e2e(
    corpus: Path, lines: int, extra: str = "", loki: str | None = None, loki_pid: int | None = None
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-loki-") as t:
        tmp = Path(t)
        logs = tmp / "logs"
        logs.mkdir()
        size = corpus_prefix(corpus, lines, logs / "app.log")
        if loki:
            instance = f"bench-{os.urandom(4).hex()}"
            extra = f"    instance: {instance}\n" + extra
            rx, url, stats_file = None, loki.rstrip("/"), tmp / "none"
        else:
            rx, url, stats_file = start_receiver(LOKI, tmp, "--accept-old")
        loki_cpu0, delivered = _proc_cpu(loki_pid), 0
        try:
            cfg = tmp / "sidecar.yaml"
            cfg.write_text(
                f"source:\n  path: {logs.as_posix()!r}\n  include: ['*.log']\n"
                f"checkpoint:\n  dir: {(tmp / 'state').as_posix()!r}\n"
                "http:\n  enabled: false\n"
                f"sinks:\n  - name: loki\n    type: loki\n    url: {url}\n" + extra
            )
            exe = shutil.which("obskit-sidecar", path=str(Path(sys.executable).parent))
            cmd = [exe or "obskit-sidecar", "run", "--config", str(cfg), "--exit-on-idle", "2"]
            t0 = time.monotonic()
            child = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL)
            _, status, ru = os.wait4(child.pid, 0)
            wall = time.monotonic() - t0 - 2.0  # minus the idle wait before exit
            child.returncode = os.waitstatus_to_exitcode(status)
            if loki:
                want = sum(1 for _ in (logs / "app.log").open("rb")) - _quarantined(tmp)
                delivered = _queryable(url, instance, want)
                print(
                    f"real Loki {url}: {delivered:,} of {want:,} lines queryable "
                    f"{time.monotonic() - t0 - 2.0:.1f} s after the start"
                )
                if loki_pid:
                    used = _proc_cpu(loki_pid) - loki_cpu0
                    print(f"  Loki's own CPU: {used:.2f} s ({used * 1e6 / lines:.2f} per million)")
        finally:
            st = stop_receiver(rx, stats_file) if rx is not None else {"accepted": delivered}
        cpu = ru.ru_utime + ru.ru_stime
        delivered = st.get("accepted", 0)
        print(f"e2e: {lines:,} lines ({size / 1e6:.0f} MB), exit {child.returncode}")
        if extra:
            print("  sidecar config extra: " + extra.replace("\n", " "))
        print(
            f"  delivered to receiver: {delivered:,} (rejected {st.get('rejected', 0)}, "
            f"requests {st.get('push_requests', 0)})"
        )
        print(f"  wall {wall:.2f} s -> {lines / wall:,.0f} lines/s")
        print(
            f"  sidecar CPU {cpu:.2f} s -> {cpu * 1e6 / lines:.2f} CPU-s per million lines "
            f"({lines / cpu:,.0f} lines per CPU-second)"
        )
        print(f"  sidecar peak RSS {ru.ru_maxrss / 1024:.1f} MiB")


def _quarantined(tmp: Path) -> int:
    """Lines the sidecar set aside (the corpus's invalid ones): never sent to Loki."""
    folder = tmp / "state" / "quarantine"
    return sum(sum(1 for _ in p.open("rb")) for p in folder.glob("quarantine*.ndjson"))


def run_encode_compare(bs: list[Batch]) -> None:
    from tests.receivers.loki_wire import PushRequest

    sink = LokiSink("bench", Config(url="http://127.0.0.1:1"))
    n = sum(len(b) for b in bs)
    c0 = cpu()
    nbytes = 0
    for b in bs:
        sink._instance = "bench"
        ctx = sink._context(b)
        for push in sink._plan(b, ctx):
            body, _ = sink._encode(b, ctx.ts, push)
            nbytes += len(body)
    ours = cpu() - c0

    c0 = cpu()
    for b in bs:
        ctx = sink._context(b)
        ts = ctx.ts
        for push in sink._plan(b, ctx):
            req = PushRequest()
            for key, idx in push.streams:
                s = req.streams.add(labels=key)
                for i in idx:
                    e = s.entries.add(line=b.lines[i].decode())
                    e.timestamp.seconds, e.timestamp.nanos = divmod(ts[i], 1_000_000_000)
                    rec = b.records[i]
                    if rec.trace_id:
                        e.structuredMetadata.add(name="trace_id", value=str(rec.trace_id))
                        if rec.span_id:
                            e.structuredMetadata.add(name="span_id", value=str(rec.span_id))
            compress(req.SerializeToString())
    runtime = cpu() - c0
    print(f"encode (timestamps, grouping, protobuf, snappy) of {n:,} lines:")
    print(
        f"  hand-written encoder: {ours * 1e6 / n:.2f} CPU-s per million lines "
        f"({nbytes / n:.0f} wire bytes/line)"
    )
    print(f"  protobuf runtime    : {runtime * 1e6 / n:.2f} CPU-s per million lines")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "out" / "corpus-1m.log")
    ap.add_argument("--mode", choices=("e2e", "sink", "both"), default="both")
    ap.add_argument(
        "--inflight",
        help="memory.max_inflight_bytes for the sidecar (e.g. 8MiB; default: the sidecar's)",
    )
    ap.add_argument("--loki", help="a real Loki's base URL for the e2e run (default: stand-in)")
    ap.add_argument("--loki-pid", type=int, help="that Loki's PID, to report its own CPU")
    args = ap.parse_args()
    if not args.corpus.exists():
        args.corpus.parent.mkdir(parents=True, exist_ok=True)
        write_corpus(args.corpus, max(args.lines, 1_000_000))
    if args.mode in ("e2e", "both"):
        extra = f"memory:\n  max_inflight_bytes: {args.inflight}\n" if args.inflight else ""
        run_e2e(args.corpus, args.lines, extra, args.loki, args.loki_pid)
    if args.mode in ("sink", "both"):
        bs = batches(args.corpus, args.lines)
        run_encode_compare(bs)
        run_sink_alone(LOKI, lambda url: LokiSink("bench", Config(url=url)), bs, "--accept-old")


if __name__ == "__main__":
    main()
