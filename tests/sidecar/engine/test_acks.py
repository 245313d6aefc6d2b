"""AckTracker: checkpoints move only over contiguous acknowledged ranges, in order."""

from __future__ import annotations

import random

from sidecar.acks import AckTracker


def test_out_of_order_acks_advance_only_contiguous_prefix() -> None:
    t = AckTracker()
    t.register(1, {"a": ("a.log", 100)}, 100, sinks=2)
    t.register(2, {"a": ("a.log", 200), "b": ("b.log", 50)}, 150, sinks=2)
    t.register(3, {"a": ("a.log", 300)}, 100, sinks=2)
    t.ack(3)
    t.ack(3)
    t.ack(2)
    assert t.take_advanced() == {}  # batch 1 is not done: nothing of a may move
    t.ack(2)
    assert t.take_advanced() == {"b": ("b.log", 50)}  # b's first batch is 2
    t.ack(1)
    assert t.take_advanced() == {}  # one sink of two
    t.ack(1)
    assert t.take_advanced() == {"a": ("a.log", 300)}
    assert t.inflight_bytes == 0 and t.pending == 0


def test_batch_without_lines_is_done_at_once_but_keeps_file_order() -> None:
    t = AckTracker()
    t.register(1, {"a": ("a.log", 100)}, 10, sinks=1)
    t.register(2, {"a": ("a.log", 180)}, 0, sinks=0)  # only quarantined lines
    assert t.take_advanced() == {}
    t.ack(1)
    assert t.take_advanced() == {"a": ("a.log", 180)}


def test_random_completion_order_matches_a_simple_model() -> None:
    rng = random.Random(7)
    for _ in range(50):
        t = AckTracker()
        ends: dict[int, dict[str, int]] = {}
        pos = {"a": 0, "b": 0, "c": 0}
        for seq in range(1, 40):
            files = rng.sample(sorted(pos), rng.randint(1, 3))
            marks = {}
            for f in files:
                pos[f] += rng.randint(1, 100)
                marks[f] = (f, pos[f])
            ends[seq] = {f: m[1] for f, m in marks.items()}
            t.register(seq, marks, 1, sinks=2)
        acks = [s for s in ends for _ in range(2)]
        rng.shuffle(acks)
        done: set[int] = set()
        counts: dict[int, int] = {}
        for s in acks:
            t.ack(s)
            counts[s] = counts.get(s, 0) + 1
            if counts[s] == 2:
                done.add(s)
            adv = t.take_advanced()
            for f, (_, off) in adv.items():
                # Model: the offset of the last batch touching f whose predecessors on f are done.
                expect = 0
                for seq in sorted(ends):
                    if f in ends[seq]:
                        if seq not in done:
                            break
                        expect = ends[seq][f]
                assert off == expect
        assert t.pending == 0 and t.inflight_bytes == 0
