"""The disk spool on real files: order, acknowledgements, restarts, torn tails, damage, full
spools, and a model-based test of random appends, reads, acks and reopenings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sidecar.spool import HEADER_SIZE, Spool, SpoolFull


def payload(n: int, size: int = 100) -> bytes:
    return f"record {n} ".encode().ljust(size, b".")


def make(d: Path, **kw: object) -> Spool:
    kw.setdefault("max_bytes", 64 * 1024 * 1024)
    s = Spool(d, **kw)  # type: ignore[arg-type]
    assert s.open() == []
    return s


def drain(s: Spool) -> list[bytes]:
    out = []
    while True:
        got = s.read()
        if got is None:
            return out
        loc, data = got
        out.append(data)
        s.ack(loc)


def test_round_trip_in_order_and_counted(tmp_path: Path) -> None:
    s = make(tmp_path)
    for n in range(10):
        loc = s.append(payload(n), lines=n + 1)
        assert loc.no == n
    st = s.stats()
    assert (st.records, st.lines) == (10, sum(range(1, 11)))
    assert st.oldest is not None
    assert drain(s) == [payload(n) for n in range(10)]
    st = s.stats()
    assert (st.records, st.lines, st.oldest) == (0, 0, None)
    s.close()


def test_reopen_resumes_after_the_last_acknowledged_record(tmp_path: Path) -> None:
    s = make(tmp_path, segment_bytes=1024)  # several segments
    for n in range(30):
        s.append(payload(n), lines=2)
    for _ in range(12):
        loc, _ = s.read()  # type: ignore[misc]
        s.ack(loc)
    s.close()
    s2 = make(tmp_path, segment_bytes=1024)
    assert s2.stats().records == 18 and s2.stats().lines == 36
    assert drain(s2) == [payload(n) for n in range(12, 30)]
    # Appending goes on with the numbering.
    assert s2.append(payload(30), lines=1).no == 30
    s2.close()


def test_delivered_segments_are_freed(tmp_path: Path) -> None:
    s = make(tmp_path, segment_bytes=4096)
    for n in range(200):
        s.append(payload(n), lines=1)
    assert len(list(tmp_path.glob("*.seg"))) > 3
    drain(s)
    segs = list(tmp_path.glob("*.seg"))
    assert len(segs) == 1  # only the one being written remains
    assert s.stats().nbytes == segs[0].stat().st_size
    s.close()


def test_a_torn_tail_is_cut_and_never_read(tmp_path: Path) -> None:
    s = make(tmp_path)
    for n in range(5):
        s.append(payload(n), lines=1)
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    size = seg.stat().st_size
    with open(seg, "r+b") as f:  # the last record half written
        f.truncate(size - 30)
    s2 = Spool(tmp_path, max_bytes=1 << 26)
    warnings = s2.open()
    assert len(warnings) == 1 and "cut" in warnings[0] and str(HEADER_SIZE + 70) in warnings[0]
    assert drain(s2) == [payload(n) for n in range(4)]
    assert s2.append(payload(99), lines=1).no == 4  # the torn record's number is reused
    s2.close()


def test_a_damaged_record_is_skipped_counted_and_the_rest_delivered(tmp_path: Path) -> None:
    s = make(tmp_path, segment_bytes=2048)
    for n in range(40):
        s.append(payload(n), lines=3)
    s.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    with open(first, "r+b") as f:  # flip a byte inside record 2's payload
        f.seek(2 * (HEADER_SIZE + 100) + HEADER_SIZE + 10)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    s2 = make(tmp_path, segment_bytes=2048)
    got = drain(s2)
    assert got == [payload(n) for n in range(40) if n != 2]
    assert s2.stats().corrupt_bytes == HEADER_SIZE + 100
    assert any("damaged" in w for w in s2.take_warnings())
    s2.close()


def test_full_spool_blocks(tmp_path: Path) -> None:
    s = make(tmp_path, max_bytes=1024 * 1024, segment_bytes=64 * 1024)
    n = 0
    with pytest.raises(SpoolFull):
        while True:
            s.append(payload(n, 10_000), lines=1)
            n += 1
    assert s.stats().nbytes <= 1024 * 1024
    assert s.stats().records == n and s.stats().dropped_lines == 0
    # Delivering frees space: appends are taken again.
    for _ in range(20):
        loc, _ = s.read()  # type: ignore[misc]
        s.ack(loc)
    s.append(payload(n, 10_000), lines=1)
    s.close()


def test_full_spool_drops_the_oldest_segment_and_counts_its_lines(tmp_path: Path) -> None:
    s = make(tmp_path, max_bytes=1024 * 1024, segment_bytes=64 * 1024, when_full="drop_oldest")
    for n in range(300):  # ~3 MB through a 1 MiB spool
        s.append(payload(n, 10_000), lines=7)
    st = s.stats()
    assert st.nbytes <= 1024 * 1024
    assert st.lines + st.dropped_lines == 300 * 7  # every line delivered-to-be or counted
    got = drain(s)
    first = int(got[0].split()[1])
    assert got == [payload(n, 10_000) for n in range(first, 300)]
    assert st.dropped_lines == first * 7
    s.close()


def test_torn_ledger_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    s = make(tmp_path)
    for n in range(10):
        s.append(payload(n), lines=1)
    for _ in range(4):
        loc, _ = s.read()  # type: ignore[misc]
        s.ack(loc)
    s.close()
    led = tmp_path / "ledger"
    raw = bytearray(led.read_bytes())
    # The newest slot (sequence 5 after open + 4 acks... whichever is newer) gets garbage:
    # the reader may then redo one record, never skip one.
    seqs = [int.from_bytes(raw[i * 64 + 8 : i * 64 + 16], "little") for i in range(2)]
    newest = 0 if seqs[0] > seqs[1] else 1
    raw[newest * 64 + 20] ^= 0xFF
    led.write_bytes(bytes(raw))
    s2 = make(tmp_path)
    got = drain(s2)
    assert got[-6:] == [payload(n) for n in range(4, 10)] and len(got) in (6, 7)
    s2.close()


def test_reader_opens_segments_through_the_os_seam(tmp_path: Path) -> None:
    opened: list[str] = []

    def opener(path: str):  # type: ignore[no-untyped-def]
        opened.append(path)
        return open(path, "rb")

    s = make(tmp_path, opener=opener)
    s.append(payload(0), lines=1)
    assert drain(s) == [payload(0)]
    assert opened and opened[0].endswith(".seg")
    s.close()


_KILL_WRITER = """
import sys
from pathlib import Path
from sidecar.spool import Spool
s = Spool(Path(sys.argv[1]), max_bytes=1 << 30, segment_bytes=256 * 1024, fsync="never")
s.open()
n = s.next_no
while True:
    s.append(b"%d " % n + b"x" * (n * 37 % 3000), lines=1)
    n += 1
    if n % 50 == 0:
        print(n, flush=True)
"""


def test_kill_9_while_appending_never_leaves_a_record_readable_twice_or_torn(
    tmp_path: Path,
) -> None:
    """A real process appending as fast as it can, killed with SIGKILL five times: after
    each restart the spool holds whole, numbered records only, without gaps."""
    for _round in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parents[3]),
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # appending
        time.sleep(0.05 + 0.03 * _round)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    s = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=256 * 1024)
    s.open()
    nos = []
    while True:
        got = s.read()
        if got is None:
            break
        loc, data = got
        assert data.startswith(b"%d " % loc.no)
        assert len(data) == len(b"%d " % loc.no) + loc.no * 37 % 3000
        nos.append(loc.no)
        s.ack(loc)
    assert nos == list(range(len(nos))) and len(nos) > 100
    assert s.stats().corrupt_bytes == 0
    s.close()


class SpoolModel(RuleBasedStateMachine):
    """Random appends, reads, acks, reopens against a list model: what is read is exactly
    what was appended and not acknowledged, in order."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = make(self.dir, max_bytes=1 << 30, segment_bytes=4096)
        self.appended: list[bytes] = []
        self.acked = 0
        self.read_pending: list[tuple[object, bytes]] = []

    @rule(size=st.integers(0, 3000), lines=st.integers(0, 50))
    def append(self, size: int, lines: int) -> None:
        data = payload(len(self.appended), max(size, 12))
        self.spool.append(data, lines)
        self.appended.append(data)

    @rule()
    def read_and_ack(self) -> None:
        got = self.spool.read()
        if self.acked >= len(self.appended):
            assert got is None
            return
        assert got is not None
        loc, data = got
        assert data == self.appended[self.acked]
        self.spool.ack(loc)
        self.acked += 1

    @rule()
    def read_without_ack(self) -> None:
        got = self.spool.read()
        if got is not None:
            assert got[1] == self.appended[self.acked]

    @precondition(lambda self: True)
    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = make(self.dir, max_bytes=1 << 30, segment_bytes=4096)

    @invariant()
    def backlog_matches(self) -> None:
        assert self.spool.stats().records == len(self.appended) - self.acked

    def teardown(self) -> None:
        self.spool.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
