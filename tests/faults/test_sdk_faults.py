"""SDK faults (issue 12, item 10): the writer thread was started only by the put that saw a
queue length of 1, so two first puts racing each other (both see 2) left it unstarted and,
once the queue was full, every record was dropped. Real threads, real segment files; a
profile hook widens the race window (a pause right after each queue append) so the race
happens on every run instead of once in many thousands."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType

import orjson

from obskit.sdk.queue import AsyncWriter
from obskit.sdk.segments import SegmentWriter

ROUNDS = 2
THREADS = 8
PER_THREAD = 40  # 8 x 40 = 320 records through a queue of 64: the writer must drain it
QUEUE = 64


def _race_one_writer(folder: Path) -> tuple[AsyncWriter, int]:
    seg = SegmentWriter(folder, "svc")
    seg.ensure_folder()
    w = AsyncWriter(seg, stdout=False, queue_size=QUEUE, flush_interval=0.01)
    barrier = threading.Barrier(THREADS)
    # Producers stay under the queue bound while a writer drains it; without one they give
    # up at this deadline and the queue overflows (the old failure).
    deadline = time.monotonic() + 3

    def producer(t: int) -> None:
        barrier.wait()  # every thread's first put at the same moment
        for i in range(PER_THREAD):
            w.put(orjson.dumps({"seq": t * PER_THREAD + i}))
            while w.stats()["queued"] > QUEUE // 2 and time.monotonic() < deadline:
                time.sleep(0.001)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return w, THREADS * PER_THREAD


def _pause_after_append(frame: FrameType, event: str, arg: object) -> None:
    """Profile hook: after a deque append returns, let the other threads run first."""
    appended = getattr(arg, "__name__", "") == "append"
    if event == "c_return" and appended and isinstance(getattr(arg, "__self__", None), deque):
        time.sleep(0.002)


def test_racing_first_puts_still_start_the_writer(tmp_path: Path) -> None:
    threading.setprofile(_pause_after_append)  # for the threads started from here on
    try:
        for r in range(ROUNDS):
            folder = tmp_path / f"round{r}"
            w, total = _race_one_writer(folder)
            # No flush(): the writer thread alone must write every record.
            deadline = time.monotonic() + 5
            while w.stats()["written"] < total and time.monotonic() < deadline:
                time.sleep(0.01)
            stats = w.stats()
            w.close()
            assert stats["dropped"] == 0, (r, stats)
            assert stats["written"] == total, (r, stats)
            seqs = sorted(
                orjson.loads(raw)["seq"]
                for seg in folder.glob("svc.*.log")
                for raw in seg.read_bytes().splitlines()
            )
            assert seqs == list(range(total)), r
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
