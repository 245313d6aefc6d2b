"""Generate the shared benchmark corpus: realistic schema v1 lines, mixed services and levels,
70% with trace ids, 1% invalid in varied ways, 150-400 bytes each.

    python bench/corpus.py OUT.log [--lines 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import orjson

SERVICES = ["checkout", "payments", "cart", "auth-api", "search.v2", "inventory_svc", "gateway"]
LEVELS = ["DEBUG", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR"]
WORDS = [
    "request",
    "handled",
    "user",
    "order",
    "cache",
    "miss",
    "retry",
    "upstream",
    "timeout",
    "db",
    "query",
    "rows",
    "payment",
    "accepted",
    "declined",
    "session",
    "token",
    "refreshed",
    "inventory",
    "reserved",
    "shipped",
    "queue",
    "consumer",
    "lag",
    "connection",
    "pool",
    "exhausted",
    "latency",
    "budget",
    "exceeded",
    "config",
    "reloaded",
]

INVALID_KINDS = [
    lambda r: {**r, "level": "WARNING"},
    lambda r: {**r, "level": "info"},
    lambda r: {**r, "timestamp": "2024-02-30T10:00:00Z"},
    lambda r: {**r, "timestamp": r["timestamp"].replace("Z", "")},
    lambda r: {k: v for k, v in r.items() if k != "service"},
    lambda r: {**r, "service": "Checkout"},
    lambda r: {**r, "trace_id": "0" * 32},
    lambda r: {**r, "trace_id": "ABC" + "0" * 29},
    lambda r: {**r, "span_id": "xyz"},
    lambda r: {**r, "message": 42},
    "not json at all",
    "",
]


def make_record(rng: random.Random, i: int, base_s: int) -> dict[str, object]:
    t = base_s + i // 50
    frac = rng.randrange(1000000)
    rec: dict[str, object] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{frac:06d}Z",
        "level": rng.choice(LEVELS),
        "service": rng.choice(SERVICES),
        "message": " ".join(rng.choices(WORDS, k=rng.randint(4, 18))),
    }
    if rng.random() < 0.7:
        rec["trace_id"] = f"{rng.getrandbits(128):032x}"
        rec["span_id"] = f"{rng.getrandbits(64) or 1:016x}"
    rec["logger"] = rng.choice(["app.http", "app.db", "app.worker", "uvicorn.access"])
    rec["seq"] = i
    if rng.random() < 0.5:
        rec["request_id"] = f"req-{rng.getrandbits(48):012x}"
    if rng.random() < 0.3:
        rec["http"] = {"method": "GET", "path": "/api/v1/orders", "status": 200}
    return rec


def line_for(rng: random.Random, i: int, base_s: int, invalid_rate: float) -> bytes:
    rec = make_record(rng, i, base_s)
    if rng.random() < invalid_rate:
        kind = rng.choice(INVALID_KINDS)
        if isinstance(kind, str):
            return kind.encode()
        rec = kind(rec)
    return orjson.dumps(rec)


def write_corpus(path: Path, lines: int, seed: int = 1, invalid_rate: float = 0.01) -> int:
    """Write the corpus; returns its size in bytes."""
    rng = random.Random(seed)
    # Recent: backends refuse old lines (Loki: older than 7 days by default). Fifty lines a
    # second of record time, ending about now for a million lines.
    base_s = int(time.time()) - lines // 50 - 60
    size = 0
    with open(path, "wb") as f:
        buf = []
        for i in range(lines):
            buf.append(line_for(rng, i, base_s, invalid_rate))
            if len(buf) == 10000:
                data = b"\n".join(buf) + b"\n"
                f.write(data)
                size += len(data)
                buf.clear()
        if buf:
            data = b"\n".join(buf) + b"\n"
            f.write(data)
            size += len(data)
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--invalid-rate", type=float, default=0.01)
    a = ap.parse_args()
    size = write_corpus(a.out, a.lines, a.seed, a.invalid_rate)
    print(f"wrote {a.lines} lines, {size / 1e6:.1f} MB to {a.out}")


if __name__ == "__main__":
    main()
