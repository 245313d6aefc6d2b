"""Helpers for the source tests: a fake clock, a reader that polls with deadlines, the
writer process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sidecar.checkpoint import CheckpointStore
from sidecar.source.chunk import Chunk
from sidecar.source.tailer import Tailer

WRITER = Path(__file__).with_name("writer.py")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


def lines_of(chunks: list[Chunk]) -> list[bytes]:
    out: list[bytes] = []
    for c in chunks:
        if c.data:
            out.extend(c.data[:-1].split(b"\n"))
    return out


class Reader:
    """Polls a tailer, keeps every line read, records what it discovered and acknowledges
    like the engine would (``ack=False``: records discoveries only)."""

    def __init__(self, tailer: Tailer, store: CheckpointStore, ack: bool = True) -> None:
        self.tailer = tailer
        self.store = store
        self.ack = ack
        self.chunks: list[Chunk] = []
        self.lines: list[bytes] = []

    def poll(self, max_bytes: int = 4 << 20) -> list[Chunk]:
        chunks = self.tailer.poll(max_bytes)
        for d in self.tailer.discovered():  # the engine records discoveries, acked or not
            self.store.record(d)
        for c in chunks:
            assert c.data == b"" or c.data.endswith(b"\n")
            if self.ack:
                self.store.advance(c.file_key, c.end, c.path)
        self.chunks.extend(chunks)
        self.lines.extend(lines_of(chunks))
        return chunks

    def until(self, cond: Callable[[], bool], timeout: float = 20.0, pause: float = 0.002) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met in {timeout}s; read {len(self.lines)} lines")
            self.poll()
            time.sleep(pause)


def numbers(lines: list[bytes]) -> list[int]:
    return [int(ln.split(b" ", 1)[0]) for ln in lines]


def start_writer(scheme: str, folder: Path, total: int, per_file: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), scheme, str(folder), str(total), str(per_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
