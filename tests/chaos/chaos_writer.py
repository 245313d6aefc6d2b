"""The chaos suite's log writer: numbered schema v1 lines at a steady rate into several files
of several services, each rotated at random moments by a different scheme.

    python chaos_writer.py FOLDER LEDGER --rate 2000 --seconds 25 --seed 7 [--invalid-every 400]

Services and their rotation scheme (all four run at once):

- ``alpha``: obskit's SDK ``SegmentWriter`` (a new segment per rotation; retention deletes the
  oldest segments beyond ``KEEP``);
- ``beta``: rename + create (``beta.log`` -> ``beta.log.1`` -> ...; the oldest beyond ``KEEP``
  is deleted), as logrotate or ``RotatingFileHandler``;
- ``gamma``: copy + truncate (``gamma.log`` copied to ``gamma.log.1``, then truncated), as
  logrotate's ``copytruncate``; the copy and the truncation happen between two writes, so the
  writer itself loses nothing (logrotate's own race is not the shipper's to fix);
- ``delta``: a plain program starting a new file ``delta.<n>.log`` and deleting old ones.

Every line has ``"seq": "<service>-<n>"`` (``n`` from 0, contiguous per service) and
``"gen"``: the file generation it was written into (one inode's content, so per-generation
order is the order on disk). About one line in ``--invalid-every`` is deliberately invalid
(level ``LOUD``: rule OBS003). At the end the ledger (JSON) says what was written:
``{"services": {name: {"written": n, "invalid": [seq...]}}, "rotations": {...}}``.
Files are only deleted after ``KEEP`` further rotations (typically ~20 s): deleting a file
whose lines are not delivered yet is data loss by definition after a crash, whatever the
shipper (a disk spool aside).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import orjson

from obskit.sdk.segments import SegmentWriter

# Files kept per service before the oldest is deleted. Retention must leave the shipper time
# to deliver a file: a file deleted while its lines are still undelivered after a crash is
# lost by definition (with 6, seed 18330675 lost a segment: the Loki faults plus kill -9s
# kept it undelivered for ~8 s). 12 rotations are at least ~8 s and typically ~20 s.
KEEP = 12
LEVELS = ("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG")


def iso_now() -> str:
    ns = time.time_ns()
    sec, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class Stream:
    """One service's file(s) and its rotation scheme."""

    scheme = ""

    def __init__(self, folder: Path, service: str) -> None:
        self.folder = folder
        self.service = service
        self.gen = 0
        self.rotations = 0

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def rotate(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Segments(Stream):
    scheme = "segments"

    def __init__(self, folder: Path, service: str) -> None:
        super().__init__(folder, service)
        self.w = SegmentWriter(folder, service, max_bytes=0, keep_segments=KEEP, keep_bytes=0)

    def write(self, data: bytes) -> None:
        self.w.write(data)

    def rotate(self) -> None:
        self.w.rotate()
        self.gen += 1
        self.rotations += 1

    def close(self) -> None:
        self.w.close()


class _Fd(Stream):
    def __init__(self, folder: Path, service: str) -> None:
        super().__init__(folder, service)
        self.path = folder / f"{service}.log"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        os.close(self.fd)


class RenameCreate(_Fd):
    scheme = "rename"

    def rotate(self) -> None:
        os.close(self.fd)
        oldest = self.folder / f"{self.service}.log.{KEEP}"
        if oldest.exists():
            oldest.unlink()
        for i in range(KEEP - 1, 0, -1):
            src = self.folder / f"{self.service}.log.{i}"
            if src.exists():
                os.replace(src, self.folder / f"{self.service}.log.{i + 1}")
        os.replace(self.path, self.folder / f"{self.service}.log.1")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.gen += 1
        self.rotations += 1


class CopyTruncate(_Fd):
    scheme = "copytruncate"

    def rotate(self) -> None:
        oldest = self.folder / f"{self.service}.log.{KEEP}"
        if oldest.exists():
            oldest.unlink()
        for i in range(KEEP - 1, 0, -1):
            src = self.folder / f"{self.service}.log.{i}"
            if src.exists():
                os.replace(src, self.folder / f"{self.service}.log.{i + 1}")
        shutil.copyfile(self.path, self.folder / f"{self.service}.log.1")
        os.truncate(self.path, 0)  # O_APPEND: the next write lands at the new end (0)
        self.gen += 1
        self.rotations += 1


class NewFileDelete(Stream):
    scheme = "delete"

    def __init__(self, folder: Path, service: str) -> None:
        super().__init__(folder, service)
        self.fd = self._open()

    def _open(self) -> int:
        path = self.folder / f"{self.service}.{self.gen:05d}.log"
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def rotate(self) -> None:
        os.close(self.fd)
        self.gen += 1
        self.rotations += 1
        self.fd = self._open()
        old = self.folder / f"{self.service}.{self.gen - KEEP:05d}.log"
        if self.gen - KEEP >= 0 and old.exists():
            old.unlink()

    def close(self) -> None:
        os.close(self.fd)


def make_line(stream: Stream, n: int, invalid: bool, rng: random.Random) -> bytes:
    rec: dict[str, Any] = {
        "timestamp": iso_now(),
        "level": "LOUD" if invalid else LEVELS[n % len(LEVELS)],
        "service": stream.service,
        "message": f"{stream.service} event {n}",
        "seq": f"{stream.service}-{n}",
        "gen": stream.gen,
    }
    if n % 3 == 0:
        rec["trace_id"] = f"{rng.getrandbits(128) | 1:032x}"
        rec["span_id"] = f"{rng.getrandbits(64) | 1:016x}"
    return orjson.dumps(rec) + b"\n"


def main(argv: list[str] | None = None) -> int:
    global KEEP
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("ledger", type=Path)
    ap.add_argument("--rate", type=int, default=2000, help="lines per second, all services")
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--invalid-every", type=int, default=400, help="0: no invalid lines")
    ap.add_argument("--rotate-min", type=float, default=0.7)
    ap.add_argument("--rotate-max", type=float, default=3.0)
    ap.add_argument(
        "--keep", type=int, default=KEEP, help="rotated files kept per service (retention)"
    )
    ap.add_argument(
        "--copy",
        type=Path,
        default=None,
        help="also append every valid line to this file, never rotated (for obskit audit)",
    )
    a = ap.parse_args(argv)
    KEEP = max(1, a.keep)  # read by the streams' rotations (the edge test keeps 1)
    rng = random.Random(a.seed)
    a.folder.mkdir(parents=True, exist_ok=True)
    streams: list[Stream] = [
        Segments(a.folder, "alpha"),
        RenameCreate(a.folder, "beta"),
        CopyTruncate(a.folder, "gamma"),
        NewFileDelete(a.folder, "delta"),
    ]
    counts = [0] * len(streams)
    invalid: dict[str, list[str]] = {s.service: [] for s in streams}
    next_rotation = [time.monotonic() + rng.uniform(a.rotate_min, a.rotate_max) for _ in streams]
    stop = False
    copy = open(a.copy, "ab") if a.copy else None  # noqa: SIM115 - closed at the end

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    tick = 0.01
    start = time.monotonic()
    i = 0
    while not stop and time.monotonic() - start < a.seconds:
        # Steady rate by the clock: a slow tick is caught up by the next one.
        due = int(a.rate * (time.monotonic() - start)) - i
        per: list[list[bytes]] = [[] for _ in streams]
        while due >= 1:
            k = i % len(streams)
            n = counts[k]
            bad = bool(a.invalid_every) and rng.randrange(a.invalid_every) == 0
            ln = make_line(streams[k], n, bad, rng)
            if bad:
                invalid[streams[k].service].append(f"{streams[k].service}-{n}")
            elif copy is not None:
                copy.write(ln)
            per[k].append(ln)
            counts[k] += 1
            i += 1
            due -= 1
        now = time.monotonic()
        for k, s in enumerate(streams):
            if per[k]:
                s.write(b"".join(per[k]))
            if now >= next_rotation[k]:
                s.rotate()
                next_rotation[k] = now + rng.uniform(a.rotate_min, a.rotate_max)
        elapsed = time.monotonic() - start
        time.sleep(max(0.0, tick - (elapsed % tick)))
    for s in streams:
        s.close()
    if copy is not None:
        copy.close()
    ledger = {
        "services": {
            s.service: {"written": counts[k], "invalid": invalid[s.service], "scheme": s.scheme}
            for k, s in enumerate(streams)
        },
        "rotations": {s.scheme: s.rotations for s in streams},
        "seconds": round(time.monotonic() - start, 2),
    }
    tmp = a.ledger.with_name(a.ledger.name + ".tmp")
    tmp.write_bytes(orjson.dumps(ledger))
    os.replace(tmp, a.ledger)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
