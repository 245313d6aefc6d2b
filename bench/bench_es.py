"""Elasticsearch sink benchmark: end to end through a real ``obskit-sidecar run``, and the bulk
body encoding compared with what a user of the official Python client would write.

    .venv/bin/python bench/bench_es.py [--lines 1000000] [--skip-e2e] [--skip-encode]

End to end: the corpus (``bench/corpus.py``) is written to a folder, the in-process
Elasticsearch receiver runs in a separate process (``python -m tests.receivers.elasticsearch
--count-only``: it parses every action line and answers every item, but stores nothing),
and ``obskit-sidecar run --exit-on-idle 2`` tails, validates, encodes (gzip) and ships it.
Reported: lines/s from the sidecar's start to the last ``_bulk`` answer, the sidecar's CPU
seconds (its own rusage: user + system) per million lines, and its peak RSS.

Encoding: the same validated lines turned into gzip'd ``_bulk`` bodies, in this process, by
(a) obskit's :class:`~sidecar.sinks.es_bulk.DocumentBuilder` (bytes splicing) and (b) the
approach of the elasticsearch-py ``helpers.bulk`` user: ``json.loads`` each line, add
``@timestamp`` and the static fields, ``json.dumps`` the action and the document.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.corpus import write_corpus  # noqa: E402
from obskit.schema import Policy, validate_chunk  # noqa: E402
from sidecar.sinks.base import LineId  # noqa: E402
from sidecar.sinks.elasticsearch import _gzip  # noqa: E402
from sidecar.sinks.es_bulk import DocumentBuilder, TargetResolver, doc_id  # noqa: E402

STATIC = {"host": "bench-node", "environment": "bench"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.receivers.elasticsearch",
            "--port",
            str(port),
            "--count-only",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("receiver did not start")


def run_e2e(work: Path, lines: int, inflight: str | None, spool: bool = True) -> dict[str, float]:
    work = work / f"e2e-{inflight or 'default'}-{'spool' if spool else 'nospool'}"
    logs, state = work / "logs", work / "state"
    logs.mkdir(parents=True)
    state.mkdir()
    size = write_corpus(logs / "app.log", lines)
    port = free_port()
    rx = start_receiver(port)
    cfg = work / "sidecar.yaml"
    cfg.write_text(
        f"source:\n  path: {json.dumps(str(logs))}\n"
        f"checkpoint:\n  dir: {json.dumps(str(state))}\n"
        "http:\n  enabled: false\n"
        + (f"memory:\n  max_inflight_bytes: {inflight}\n" if inflight else "")
        + "sinks:\n"
        "  - name: es\n    type: elasticsearch\n"
        f"    url: http://127.0.0.1:{port}\n    gzip: true\n"
        + ("" if spool else "    spool: false\n"),
        encoding="utf-8",
    )
    exe = Path(sys.executable).parent / "obskit-sidecar"
    try:
        t0 = time.time()
        child = subprocess.Popen(
            [str(exe), "run", "--config", str(cfg), "--exit-on-idle", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert child.stderr is not None
        err = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.stderr.write(err.decode(errors="replace")[-3000:])
            raise SystemExit(f"sidecar exited with {child.returncode}")
        stats = httpx.get(f"http://127.0.0.1:{port}/_receiver/stats").json()
    finally:
        rx.terminate()
        rx.wait(10)
    docs = stats["docs_stored"]
    elapsed = stats["last_bulk_at"] - t0
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "lines": lines,
        "bytes": size,
        "docs": docs,
        "items_non_201": sum(v for k, v in stats["items"].items() if k != "201"),
        "seconds": elapsed,
        "lines_per_s": lines / elapsed,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu * 1e6 / lines,
        "rss_mib": usage.ru_maxrss / 1024,
        "gzip_ratio": stats["bulk_bytes_decoded"] / max(1, stats["bulk_bytes"]),
    }


def load_batch(path: Path, limit: int) -> tuple[list[bytes], list[object], list[int]]:
    """Valid lines of the corpus, their records and byte offsets (file key ``bench``)."""
    data = path.read_bytes()
    res = validate_chunk(data, Policy())
    lines, recs, offsets = [], [], []
    off = 0
    for raw, rec in zip(res.lines, res.records, strict=True):
        if rec is not None:
            lines.append(raw)
            recs.append(rec)
            offsets.append(off)
        off += len(raw) + 1
        if len(lines) >= limit:
            break
    return lines, recs, offsets


def encode_obskit(lines: list[bytes], recs: list[object], ids: list[int]) -> int:
    b = DocumentBuilder(
        TargetResolver("logs-{service}-{namespace}", "default"), "create", STATIC, True, "default"
    )
    total = 0
    for start in range(0, len(lines), 10_000):
        body = b"".join(
            b.item(ln, r, "bench", i)  # type: ignore[arg-type]
            for ln, r, i in zip(
                lines[start : start + 10_000],
                recs[start : start + 10_000],
                ids[start : start + 10_000],
                strict=True,
            )
        )
        total += len(_gzip(body, 1))
    return total


def encode_client_style(lines: list[bytes], ids: list[int]) -> int:
    total = 0
    for start in range(0, len(lines), 10_000):
        parts = []
        for ln, ident in zip(
            lines[start : start + 10_000], ids[start : start + 10_000], strict=True
        ):
            doc = json.loads(ln)
            doc["@timestamp"] = doc["timestamp"]
            for k, v in STATIC.items():
                doc.setdefault(k, v)
            index = "logs-" + doc["service"].replace("-", "_") + "-default"
            action = {"create": {"_index": index, "_id": doc_id(LineId("bench", ident))}}
            parts.append(json.dumps(action, separators=(",", ":")))
            parts.append(json.dumps(doc, separators=(",", ":")))
        body = ("\n".join(parts) + "\n").encode()
        total += len(_gzip(body, 1))  # the same gzip for both: this compares the encoding
    return total


def run_encode(work: Path, lines: int) -> dict[str, float]:
    path = work / "enc.log"
    write_corpus(path, lines)
    ln, recs, ids = load_batch(path, lines)
    t = time.process_time()
    encode_obskit(ln, recs, ids)
    ours = time.process_time() - t
    t = time.process_time()
    encode_client_style(ln, ids)
    theirs = time.process_time() - t
    n = len(ln)
    return {
        "docs": n,
        "obskit_cpu_s_per_million": ours * 1e6 / n,
        "client_style_cpu_s_per_million": theirs * 1e6 / n,
        "speedup": theirs / ours,
    }


def run_sink_alone(work: Path, lines: int) -> dict[str, float]:
    """Pre-validated batches of 20,000 lines through the sink alone (no tailing)."""
    from obskit.schema.record import Record
    from sidecar.sinks.base import Batch
    from sidecar.sinks.elasticsearch import Config, ElasticsearchSink

    path = work / "sink.log"
    write_corpus(path, lines)
    ln, recs, ids = load_batch(path, lines)
    batches = [
        Batch(
            n,
            ln[i : i + 20_000],
            [r for r in recs[i : i + 20_000] if isinstance(r, Record)],
            offsets=ids[i : i + 20_000],
            runs=[(0, "bench")],
            static=dict(STATIC),
        )
        for n, i in enumerate(range(0, len(ln), 20_000))
    ]
    port = free_port()
    rx = start_receiver(port)
    try:
        sink = ElasticsearchSink("bench", Config(url=f"http://127.0.0.1:{port}"))
        sink.start()
        c0, t0 = time.process_time(), time.perf_counter()
        for b in batches:
            assert not sink.send(b).rejected
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        sink.close()
        stats = httpx.get(f"http://127.0.0.1:{port}/_receiver/stats").json()
    finally:
        rx.terminate()
        rx.wait(10)
    n = len(ln)
    assert stats["docs_stored"] == n, stats
    return {"docs": n, "lines_per_s": n / wall, "cpu_s_per_million": cpu * 1e6 / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--encode-lines", type=int, default=200_000)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-encode", action="store_true")
    ap.add_argument("--skip-sink", action="store_true")
    ap.add_argument(
        "--inflight", action="append", help="memory.max_inflight_bytes for e2e (repeatable)"
    )
    ap.add_argument("--spool", choices=("on", "off", "both"), default="on", help="e2e runs")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obskit-bench-es-") as tmp:
        work = Path(tmp)
        spools = {"on": [True], "off": [False], "both": [False, True]}[a.spool]
        runs = [] if a.skip_e2e else [(i, sp) for i in (a.inflight or [None]) for sp in spools]
        for inflight, spool in runs:
            r = run_e2e(work, a.lines, inflight, spool)
            print(
                f"end to end (max_inflight_bytes {inflight or 'default'}, spool "
                f"{'on' if spool else 'off'}): {r['lines']:,} lines "
                f"({r['bytes'] / 1e6:.0f} MB) -> "
                f"{r['docs']:,} docs "
                f"(non-201 items: {r['items_non_201']}) in {r['seconds']:.2f} s = "
                f"{r['lines_per_s']:,.0f} lines/s; sidecar CPU {r['cpu_s']:.2f} s "
                f"({r['cpu_s_per_million']:.2f} CPU-s per million lines), peak RSS "
                f"{r['rss_mib']:.0f} MiB; gzip ratio {r['gzip_ratio']:.1f}x"
            )
        if not a.skip_sink:
            k = run_sink_alone(work, a.lines)
            print(
                f"sink alone: {k['docs']:,} docs in batches of 20,000: {k['lines_per_s']:,.0f} "
                f"lines/s, {k['cpu_s_per_million']:.2f} CPU-s per million"
            )
        if not a.skip_encode:
            e = run_encode(work, a.encode_lines)
            print(
                f"bulk body encoding + gzip, {e['docs']:,} docs: obskit "
                f"{e['obskit_cpu_s_per_million']:.2f} CPU-s per million; json.loads/json.dumps "
                f"per doc (elasticsearch-py helpers style) "
                f"{e['client_style_cpu_s_per_million']:.2f} CPU-s per million "
                f"({e['speedup']:.1f}x)"
            )


if __name__ == "__main__":
    main()
