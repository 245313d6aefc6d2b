"""Elasticsearch ``_bulk`` with injected faults (429 with Retry-After, 500s, per-item 429s,
connection resets, answers slower than the client timeout but applied anyway, an outage)
while the sidecar is killed and restarted and the services rotate: every valid line stored
exactly once (deterministic ids turn every resend into a 409)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterator

import orjson
import pytest
from chaoshelp import Chaos, Outcome, fault_kinds, quarantine_entries

from tests.receivers.elasticsearch import EsReceiver

pytestmark = pytest.mark.chaos

TIMEOUT = 1.0


@pytest.fixture
def es() -> Iterator[EsReceiver]:
    with EsReceiver() as rx:  # in the test process: outlives every sidecar process
        yield rx


def es_faults(rx: EsReceiver, chance: float) -> Callable[[random.Random], list[str]]:
    """Like the Loki suite: every kind once in a seeded order, then random kinds."""
    draw = fault_kinds(["429", "500", "item-429", "reset", "slow", "outage"], chance)

    def arm(rng: random.Random) -> list[str]:
        kind = draw(rng)
        if kind is None:
            return []
        f = rx.faults
        if kind == "429":
            f.fail_requests(rng.randint(1, 3), 429, retry_after=1)
        elif kind == "500":
            f.fail_requests(rng.randint(2, 6), 500)
        elif kind == "item-429":
            f.fail_items(rng.randint(5, 200), 429)
        elif kind == "reset":
            f.reset(rng.randint(1, 2))
        elif kind == "slow":  # applied after the client gave up: the resend meets 409s
            f.stall(TIMEOUT + 0.5, n=1, then_process=True)
        else:
            f.outage(rng.uniform(1.0, 2.5), status=503)
        return [kind]

    return arm


def test_elasticsearch_faults_and_kills(chaos: Chaos, es: EsReceiver) -> None:
    chaos.write_config(
        [
            {
                "name": "es",
                "type": "elasticsearch",
                "url": es.url,
                "timeout": f"{TIMEOUT}s",
                "batch_max_docs": 500,
                "retry": {"initial": 0.05, "max": 0.5},
            }
        ]
    )
    chaos.start_writer(rate=1500, seconds=25)
    chaos.storm(interval=(1.5, 4.0), on_tick=es_faults(es, 0.25))
    es.faults.clear()
    chaos.drain()
    docs = es.documents("logs-*")
    got = Outcome(seqs=[str(d["seq"]) for d in docs], keys=[() for _ in docs])
    ids = es.ids("logs-*")
    r = chaos.account(got, quarantine_entries(chaos.state), check_order=False)
    r.extra |= {
        "conflicts_409": es.stats.duplicates_prevented,
        "faults_fired": sum(es.stats.faults_fired.values()),
        "bulks": es.stats.bulk_requests,
    }
    # Order is not promised in Elasticsearch (up to `concurrency` bulks in flight; search
    # sorts by timestamp); exactly-once is.
    chaos.assert_clean(r, max_duplicates=0)
    assert len(ids) == len(set(ids)), r.line()
    same: dict[str, set[bytes]] = defaultdict(set)
    for d in docs:
        same[str(d["seq"])].add(orjson.dumps(d, option=orjson.OPT_SORT_KEYS))
    assert all(len(v) == 1 for v in same.values()), f"{r.line()}\ncopies differ"
    assert sum(es.stats.faults_fired.values()) > 0, r.line()
