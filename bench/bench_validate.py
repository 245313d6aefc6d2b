"""Validator speed: obskit's library calls and CLI (-j 1 and -j 2) against the jsonschema and
fastjsonschema packages with the shipped JSON Schema, on the shared corpus (1% invalid lines),
in one run.

    python bench/bench_validate.py [--lines 1000000] [--jsonschema-lines 20000]

Library and single-process CLI figures are CPU time of one process: they describe one core.
The -j figures are wall-clock time (that is what parallelism buys), so run them on a quiet
machine; the CLI -j 1 wall figure beside them is the baseline of the speed-up. Memory: peak
RSS of the CLI on the corpus and on a 10x smaller one (flat = streaming). The C kernel is used
when it was built; OBSKIT_PURE_PYTHON=1 measures the pure Python path.
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

from obskit.schema import StreamSummary, batch, validate_chunk, validate_stream  # noqa: E402
from obskit.schema.jsonschema_doc import json_schema  # noqa: E402

OUT = HERE / "out"


def corpus(lines: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"corpus-{lines}.log"
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


def bench_cli(path: Path, jobs: int = 1) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the CLI and its workers) and peak RSS (MiB, the largest of
    them) of `obskit validate --quiet -j N`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "validate", "--quiet", "-j", str(jobs), str(path)],
        capture_output=True,
        check=False,
        cwd=OUT,  # not the repository: `-m` would import its source tree, not the installed obskit
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"obskit validate failed: {proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024


def cli_fast_path() -> str:
    """Which fast path a CLI child started like bench_cli's gets (a source tree without the
    compiled kernel, shadowing an installed obskit, once made the CLI run pure Python)."""
    code = "from obskit.schema import batch; print(batch._kernel is not None)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=OUT
    )
    return "C kernel" if out.stdout.strip() == "True" else "pure Python (no C kernel)"


def sample(path: Path, lines: int) -> list[bytes]:
    out = []
    with open(path, "rb") as f:
        for _ in range(lines):
            ln = f.readline()
            if not ln:
                break
            out.append(ln)
    return out


def bench_jsonschema(lines: list[bytes]) -> tuple[float, int]:
    import jsonschema

    cls = jsonschema.Draft202012Validator
    validator = cls(json_schema(), format_checker=cls.FORMAT_CHECKER)
    invalid = 0
    t0 = time.process_time()
    for ln in lines:
        # What a jsonschema-based checker does per line: parse, then collect every error.
        try:
            doc = json.loads(ln)
        except ValueError:
            invalid += 1
            continue
        if any(True for _ in validator.iter_errors(doc)):
            invalid += 1
    return time.process_time() - t0, invalid


def bench_fastjsonschema(lines: list[bytes]) -> tuple[float, int]:
    import fastjsonschema

    # Compiled to Python code once; its date-time format check is on by default. It stops at
    # the first error of a line (jsonschema above collects them all).
    check = fastjsonschema.compile(json_schema())
    invalid = 0
    t0 = time.process_time()
    for ln in lines:
        try:
            check(json.loads(ln))
        except (ValueError, fastjsonschema.JsonSchemaException):
            invalid += 1
    return time.process_time() - t0, invalid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--jsonschema-lines", type=int, default=20_000)
    ap.add_argument("--fastjsonschema-lines", type=int, default=200_000)
    a = ap.parse_args()
    big = corpus(a.lines)
    small = corpus(a.lines // 10)
    size_mb = big.stat().st_size / 1e6
    kernel = "C kernel" if batch._kernel is not None else "pure Python (no C kernel)"
    print(f"corpus: {a.lines:,} lines, {size_mb:.0f} MB ({big})")
    print(f"fast path: library {kernel}, CLI {cli_fast_path()}")

    # The CLI runs first: a child forked after this process read the corpus into memory
    # would report the parent's pages in its peak RSS.
    _, _, rss_small = bench_cli(small)
    wall1, ccpu, rss = bench_cli(big, jobs=1)
    wall2, ccpu2, _ = bench_cli(big, jobs=2)
    cli_rate = a.lines / ccpu

    cpu, n, bad = bench_library_stream(big)
    lib_rate = n / cpu
    print(f"obskit library validate_stream : {lib_rate:>12,.0f} lines/s  ({bad:,} invalid)")
    cpu_c, n_c = bench_library_chunks(big)
    print(f"obskit library validate_chunk  : {n_c / cpu_c:>12,.0f} lines/s  (1 MiB chunks)")
    print(
        f"obskit validate (CLI, -j 1)    : {cli_rate:>12,.0f} lines/s CPU, "
        f"{a.lines / wall1:,.0f} lines/s wall, peak RSS {rss:.0f} MiB"
    )
    print(f"  peak RSS on a 10x smaller file: {rss_small:.0f} MiB (flat = streaming)")
    print(
        f"obskit validate (CLI, -j 2)    : {a.lines / wall2:>12,.0f} lines/s wall "
        f"({wall1 / wall2:.2f}x -j 1's wall time; {ccpu2:.2f} CPU-s in all)"
    )

    js_lines = sample(big, a.jsonschema_lines)
    js_cpu, _ = bench_jsonschema(js_lines)
    js_rate = len(js_lines) / js_cpu
    fjs_lines = sample(big, a.fastjsonschema_lines)
    fjs_cpu, _ = bench_fastjsonschema(fjs_lines)
    fjs_rate = len(fjs_lines) / fjs_cpu
    print(
        f"jsonschema + log-v1.schema.json: {js_rate:>12,.0f} lines/s  "
        f"({len(js_lines):,} lines sampled)"
    )
    print(
        f"fastjsonschema + same schema   : {fjs_rate:>12,.0f} lines/s  "
        f"({len(fjs_lines):,} lines sampled)"
    )
    for name, rate in (("library", lib_rate), ("CLI -j 1", cli_rate)):
        print(
            f"ratio {name:<8} / jsonschema     : {rate / js_rate:>8.1f}x   "
            f"/ fastjsonschema: {rate / fjs_rate:.1f}x"
        )
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"(CPUs available: {cpus}; library and CLI -j 1 figures are one core's CPU time)")


if __name__ == "__main__":
    main()
