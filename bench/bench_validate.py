"""Validator speed: obskit's library call and CLI against the jsonschema package with the
shipped JSON Schema, on the shared corpus (1% invalid lines), in one run.

    python bench/bench_validate.py [--lines 1000000] [--jsonschema-lines 20000]

Figures are CPU time of one process (the validator is single-threaded), so they describe one
core. Memory: peak RSS of the CLI on the corpus and on a 10x smaller one (flat = streaming).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus  # noqa: E402

from obskit.schema import StreamSummary, validate_chunk, validate_stream  # noqa: E402
from obskit.schema.jsonschema_doc import json_schema  # noqa: E402


def corpus(lines: int) -> Path:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    path = out / f"corpus-{lines}.log"
    if not path.exists():
        write_corpus(path, lines)
    return path


def bench_library_stream(path: Path) -> tuple[float, int, int]:
    summary = StreamSummary()
    t0 = time.process_time()
    with open(path, "rb") as f:
        for _ in validate_stream(f, summary=summary):
            pass
    return time.process_time() - t0, summary.lines, summary.invalid


def bench_library_chunks(path: Path) -> tuple[float, int]:
    data = path.read_bytes()
    n = 0
    t0 = time.process_time()
    off = 0
    while off < len(data):
        end = data.rfind(b"\n", off, off + (1 << 20))
        if end < 0:
            end = len(data) - 1
        n += len(validate_chunk(data[off : end + 1]).lines)
        off = end + 1
    return time.process_time() - t0, n


def bench_cli(path: Path) -> tuple[float, float, float]:
    """Wall seconds, child CPU seconds and child peak RSS (MiB) of `obskit validate -q`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "validate", "--quiet", str(path)],
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"obskit validate failed: {proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024


def bench_jsonschema(path: Path, lines: int) -> tuple[float, int, int]:
    import jsonschema

    cls = jsonschema.Draft202012Validator
    validator = cls(json_schema(), format_checker=cls.FORMAT_CHECKER)
    sample = []
    with open(path, "rb") as f:
        for _ in range(lines):
            ln = f.readline()
            if not ln:
                break
            sample.append(ln)
    invalid = 0
    t0 = time.process_time()
    for ln in sample:
        # What a jsonschema-based checker does per line: parse, then collect every error.
        try:
            doc = json.loads(ln)
        except ValueError:
            invalid += 1
            continue
        if any(True for _ in validator.iter_errors(doc)):
            invalid += 1
    return time.process_time() - t0, len(sample), invalid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--jsonschema-lines", type=int, default=20_000)
    a = ap.parse_args()
    big = corpus(a.lines)
    small = corpus(a.lines // 10)
    size_mb = big.stat().st_size / 1e6
    print(f"corpus: {a.lines:,} lines, {size_mb:.0f} MB ({big})")

    # The CLI runs first: a child forked after this process read the corpus into memory
    # would report the parent's pages in its peak RSS.
    _, _, rss_small = bench_cli(small)
    wall, ccpu, rss = bench_cli(big)
    cli_rate = a.lines / ccpu

    cpu, n, bad = bench_library_stream(big)
    lib_rate = n / cpu
    print(f"obskit library validate_stream : {lib_rate:>12,.0f} lines/s  ({bad:,} invalid)")
    cpu_c, n_c = bench_library_chunks(big)
    print(f"obskit library validate_chunk  : {n_c / cpu_c:>12,.0f} lines/s  (1 MiB chunks)")
    print(
        f"obskit validate (CLI)          : {cli_rate:>12,.0f} lines/s CPU, "
        f"{a.lines / wall:,.0f} lines/s wall, peak RSS {rss:.0f} MiB"
    )
    print(f"  peak RSS on a 10x smaller file: {rss_small:.0f} MiB (flat = streaming)")

    js_cpu, js_n, _ = bench_jsonschema(big, a.jsonschema_lines)
    js_rate = js_n / js_cpu
    print(f"jsonschema + log-v1.schema.json: {js_rate:>12,.0f} lines/s  ({js_n:,} lines sampled)")
    print(f"ratio library / jsonschema     : {lib_rate / js_rate:>12.1f}x")
    print(f"ratio CLI / jsonschema         : {cli_rate / js_rate:>12.1f}x")
    print(f"(cores: {os.cpu_count()}, all figures single-process CPU time)")


if __name__ == "__main__":
    main()
