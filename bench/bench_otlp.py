"""OTLP sink benchmark: end to end through ``obskit-sidecar run`` into the OTLP receiver running
in another process, beside the Loki sink into the Loki stand-in in the same run; then the
encode cost of the same batches with the hand-written encoder and with the official
``opentelemetry-proto`` runtime, and the sink alone.

    python bench/bench_otlp.py [--lines 1000000] [--corpus bench/out/corpus-1m.log]
                               [--mode e2e|encode|sink|all] [--sinks otlp,loki]

Figures: lines/s (wall), CPU seconds per million lines of the sidecar process only (rusage of
the child), peak RSS of the sidecar. The receivers (``python -m tests.receivers.otlp`` /
``tests.receivers.loki``, ``--store count``) decode every request (the OTLP one with the
official runtime) and only count what they store.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
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
from sidecar.sinks.compress import gzip  # noqa: E402
from sidecar.sinks.otlp import Config, OTLPSink, resource_attributes  # noqa: E402

RECEIVERS = {"otlp": "tests.receivers.otlp", "loki": "tests.receivers.loki"}


def run_e2e(kind: str, corpus: Path, lines: int, extra: str = "") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as t:
        tmp = Path(t)
        logs = tmp / "logs"
        logs.mkdir()
        size = corpus_prefix(corpus, lines, logs / "app.log")
        rx, url, stats_file = start_receiver(
            RECEIVERS[kind], tmp, *(["--accept-old"] if kind == "loki" else [])
        )
        try:
            cfg = tmp / "sidecar.yaml"
            cfg.write_text(
                f"source:\n  path: {logs.as_posix()!r}\n  include: ['*.log']\n"
                f"checkpoint:\n  dir: {(tmp / 'state').as_posix()!r}\n"
                "http:\n  enabled: false\n"
                f"sinks:\n  - name: {kind}\n    type: {kind}\n    url: {url}\n"
                "    spool: false\n" + extra
            )
            exe = shutil.which("obskit-sidecar", path=str(Path(sys.executable).parent))
            cmd = [exe or "obskit-sidecar", "run", "--config", str(cfg), "--exit-on-idle", "2"]
            t0 = time.monotonic()
            child = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL)
            _, status, ru = os.wait4(child.pid, 0)
            wall = time.monotonic() - t0 - 2.0  # minus the idle wait before exit
            code = os.waitstatus_to_exitcode(status)
        finally:
            st = stop_receiver(rx, stats_file)
    cpu = ru.ru_utime + ru.ru_stime
    out = {
        "sink": kind,
        "lines": lines,
        "mb": size / 1e6,
        "exit": code,
        "delivered": st.get("accepted", 0),
        "requests": st.get("export_requests", st.get("push_requests", 0)),
        "wall_lines_per_s": lines / wall,
        "cpu_s_per_million": cpu * 1e6 / lines,
        "lines_per_cpu_s": lines / cpu,
        "peak_rss_mib": ru.ru_maxrss / 1024,
    }
    print(
        f"e2e {kind:4}: {lines:,} lines ({out['mb']:.0f} MB), exit {code}, delivered "
        f"{out['delivered']:,} in {out['requests']:,} requests; wall {out['wall_lines_per_s']:,.0f}"
        f" lines/s; sidecar CPU {out['cpu_s_per_million']:.2f} s per million lines "
        f"({out['lines_per_cpu_s']:,.0f} lines per CPU-second); peak RSS "
        f"{out['peak_rss_mib']:.1f} MiB"
    )
    return out


def run_encode_compare(bs: list[Batch]) -> None:
    from tests.sinks.otlp.official import official_request

    sink = OTLPSink("bench", Config(url="http://127.0.0.1:1"))
    n = sum(len(b) for b in bs)
    c0 = cpu()
    raw = wire = 0
    for b in bs:
        for part in sink.parts(b):
            body = sink.body(b, part)
            raw += len(body)
            wire += len(gzip(body))
    ours = cpu() - c0

    c0 = cpu()
    for b in bs:
        ts = sink._ts(b.records)
        observed = int(b.read_time * 1e9)
        for part in sink.parts(b):
            groups: dict[str, list[Any]] = {}
            for i in part:
                groups.setdefault(b.records[i].service, []).append(
                    (b.lines[i], b.records[i], ts[i], observed)
                )
            req = official_request(
                [(resource_attributes(s, b.static, {}), r) for s, r in groups.items()]
            )
            gzip(req.SerializeToString())
    official = cpu() - c0
    print(f"encode (timestamps, grouping, ExportLogsServiceRequest, gzip) of {n:,} lines:")
    print(
        f"  hand-written encoder : {ours * 1e6 / n:.2f} CPU-s per million lines "
        f"({raw / n:.0f} bytes/line, {wire / n:.0f} gzipped)"
    )
    print(f"  opentelemetry-proto  : {official * 1e6 / n:.2f} CPU-s per million lines")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--corpus", type=Path, default=ROOT / "bench" / "out" / "corpus-1m.log")
    ap.add_argument("--mode", choices=("e2e", "encode", "sink", "all"), default="all")
    ap.add_argument("--sinks", default="otlp,loki", help="e2e sinks, in order (otlp,loki)")
    ap.add_argument("--otlp-extra", default="", help="YAML lines added to the OTLP sink")
    args = ap.parse_args()
    if not args.corpus.exists():
        args.corpus.parent.mkdir(parents=True, exist_ok=True)
        write_corpus(args.corpus, max(args.lines, 1_000_000))
    if args.mode in ("e2e", "all"):
        for kind in args.sinks.split(","):
            extra = args.otlp_extra.replace("\\n", "\n") if kind == "otlp" else ""
            run_e2e(kind.strip(), args.corpus, args.lines, extra)
    if args.mode in ("encode", "sink", "all"):
        static = {"host": "bench", "environment": "prod", "image_version": "v1"}
        bs = batches(args.corpus, args.lines, static=static)
        if args.mode in ("encode", "all"):
            run_encode_compare(bs)
        if args.mode in ("sink", "all"):
            run_sink_alone(RECEIVERS["otlp"], lambda url: OTLPSink("bench", Config(url=url)), bs)


if __name__ == "__main__":
    main()
