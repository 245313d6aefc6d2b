"""A sample service for ``obskit-sidecar demo``: writes schema v1 lines to a log file at a
steady pace, some of them broken the way real services break them.

    python -m sidecar.demo_service --service checkout --out logs/checkout.log --lines 400
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

#: What each service says at each step of a request (the 4th line of each is untraced).
STEPS = {
    "checkout": ["order received", "calling payments", "order confirmed", "cache refreshed"],
    "payments": ["authorising card", "card authorised", "receipt stored", "settlement batch"],
    "cart": ["cart loaded", "prices applied", "cart locked", "cart cleanup"],
}


def trace_id(n: int) -> str:
    """The n-th demo trace id: the same in every service, so one trace spans them."""
    return hashlib.sha256(f"obskit-demo-{n}".encode()).hexdigest()[:32]


def span_id(service: str, n: int) -> str:
    return hashlib.sha256(f"{service}-{n}".encode()).hexdigest()[:16]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def broken(i: int, service: str, rec: dict[str, Any]) -> bytes | None:
    """Every 23rd line is wrong in one of the usual ways (some repairable, some not)."""
    kind = (i // 23) % 7
    if i % 23 != 11:
        return None
    if kind == 0:
        return orjson.dumps({**rec, "level": "WARNING"})  # repairable: WARN
    if kind == 1 and rec.get("trace_id"):
        return orjson.dumps({**rec, "trace_id": str(rec["trace_id"]).upper()})  # repairable
    if kind == 2:
        return orjson.dumps({**rec, "timestamp": rec["timestamp"].replace("Z", "")})  # no zone
    if kind == 3:
        return f"Traceback (most recent call last): {service} crashed".encode()  # not JSON
    if kind == 4:
        return orjson.dumps({k: v for k, v in rec.items() if k != "service"})  # no service
    if kind == 5:
        return orjson.dumps({**rec, "service": service.capitalize()})  # upper case
    return orjson.dumps({**rec, "level": "LOUD"})  # no such level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--service", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lines", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=2.0, help="spread the lines over this")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pause = args.seconds / max(1, args.lines // 20)
    with open(args.out, "ab", buffering=0) as fh:
        for i in range(args.lines):
            rec: dict[str, Any] = {
                "timestamp": now(),
                "level": rng.choice(["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]),
                "service": args.service,
                "message": STEPS.get(args.service, STEPS["cart"])[i % 4],
                "order_id": f"o-{i // 4:05d}",
            }
            if i % 4 != 3:  # three lines in four belong to a request trace
                rec["trace_id"] = trace_id(i // 4)
                rec["span_id"] = span_id(args.service, i)
            line = broken(i, args.service, rec) or orjson.dumps(rec)
            fh.write(line + b"\n")
            if i % 20 == 19:
                time.sleep(pause)


if __name__ == "__main__":
    main()
