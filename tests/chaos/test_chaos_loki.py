"""Loki with injected faults (429 + Retry-After, 500s, connection resets before and after the
push was stored, answers slower than the client timeout, an outage longer than a batch
interval) while the sidecar is killed and restarted and the services rotate: nothing lost,
duplicates only of identical entries (counted), order kept per Loki stream and file."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from chaoshelp import Chaos, audit_loki, loki_outcome, quarantine_entries

from tests.receivers.loki import LokiReceiver

pytestmark = pytest.mark.chaos

TIMEOUT = 1.0  # the sink's request timeout; "slow" answers take longer than this


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    # In the test process: its store outlives every sidecar process.
    rx = LokiReceiver(store="full").start()
    try:
        yield rx
    finally:
        rx.stop()


def loki_faults(rx: LokiReceiver, chance: float) -> Callable[[random.Random], list[str]]:
    """Each tick, with probability ``chance``, arm one fault; the first five ticks that fire
    cover every kind once (in a seeded order), then kinds are drawn at random."""
    kinds = ["429", "500", "reset", "slow", "outage"]
    pending: list[str] = []
    started = False

    def arm(rng: random.Random) -> list[str]:
        nonlocal started
        if not started:
            pending.extend(rng.sample(kinds, len(kinds)))
            started = True
        if rng.random() >= chance:
            return []
        kind = pending.pop(0) if pending else rng.choice(kinds)
        if kind == "429":
            rx.fail_next(rng.randint(1, 3), 429, retry_after="1")
        elif kind == "500":
            rx.fail_next(rng.randint(2, 8), 500)
        elif kind == "reset":  # half of them after Loki stored the push: outcome unknown
            rx.reset_next(rng.randint(1, 2), store=rng.random() < 0.5)
        elif kind == "slow":
            rx.stall_next(1, seconds=TIMEOUT + 0.5, store=True)
        else:
            rx.outage(rng.uniform(1.0, 2.5), status=rng.choice([502, 503]))
        return [kind]

    return arm


def test_loki_faults_and_kills(chaos: Chaos, loki: LokiReceiver) -> None:
    chaos.write_config(
        [
            {
                "name": "loki",
                "type": "loki",
                "url": loki.url,
                "timeout": f"{TIMEOUT}s",
                "batch_max_bytes": "256KiB",
                "retry": {"initial": 0.05, "max": 0.5},
            }
        ]
    )
    chaos.start_writer(rate=1500, seconds=25)
    chaos.storm(interval=(1.5, 4.0), on_tick=loki_faults(loki, 0.25))
    loki.clear_faults()
    chaos.drain()
    got, different, st = loki_outcome(loki)
    r = chaos.account(got, quarantine_entries(chaos.state), check_order=True)
    r.extra |= {
        "dup_stored": st["duplicates_stored"],
        "dup_dropped_by_loki": st["duplicates_dropped"],
        "faults_served": st["faults_served"],
        "pushes": st["push_requests"],
        "rejected_by_loki": st["rejected"],
    }
    # obskit audit, per service and minute, agrees with the ledger.
    audit = audit_loki(chaos, loki)
    r.extra["audit"] = f"missing={audit.missing},duplicated={audit.duplicated}"
    # Duplicates are allowed (at-least-once) but only as identical entries.
    chaos.assert_clean(r, max_duplicates=None)
    assert (audit.missing, audit.duplicated) == (0, st["duplicates_stored"]), r.line()
    assert not different, f"{r.line()}\ncopies that differ: {list(different.items())[:3]}"
    assert st["faults_served"] > 0, r.line()
