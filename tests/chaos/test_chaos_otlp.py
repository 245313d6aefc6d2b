"""The OTLP receiver with the Loki chaos run's faults (429 + Retry-After, 500s, connection
resets before and after the request was stored, answers slower than the client timeout, an
outage longer than a batch interval) while the sidecar is killed and restarted and the
services rotate: nothing lost, duplicates only as identical records (counted), order kept
per service and file among first deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chaoshelp import Chaos, Outcome, by_seq, http_faults, quarantine_entries

from tests.receivers.otlp import OTLPReceiver

pytestmark = pytest.mark.chaos

TIMEOUT = 1.0  # the sink's request timeout; "slow" answers take longer than this


@pytest.fixture
def otlp() -> Iterator[OTLPReceiver]:
    # In the test process: its store outlives every sidecar process.
    rx = OTLPReceiver(store="full").start()
    try:
        yield rx
    finally:
        rx.stop()


def test_otlp_faults_and_kills(chaos: Chaos, otlp: OTLPReceiver) -> None:
    chaos.write_config(
        [
            {
                "name": "otlp",
                "type": "otlp",
                "url": otlp.url,
                "timeout": f"{TIMEOUT}s",
                "batch_max_bytes": "256KiB",
                "retry": {"initial": 0.05, "max": 0.5},
            }
        ]
    )
    chaos.start_writer(rate=1500, seconds=15)
    chaos.storm(interval=(1.5, 4.0), on_tick=http_faults(otlp, 0.25, TIMEOUT))
    otlp.clear_faults()
    chaos.drain()
    got = Outcome()
    forms: list[tuple[str, Any]] = []
    for r in otlp.records():
        seq = str(r.attributes["seq"])
        got.seqs.append(seq)
        got.keys.append((r.service, r.attributes["gen"]))
        form = (r.service, r.time_unix_nano, r.body, r.trace_id, tuple(sorted(r.attributes)))
        forms.append((seq, form))
    st = otlp.stats()
    different = {k: v for k, v in by_seq(forms).items() if len(v) > 1}
    r = chaos.account(got, quarantine_entries(chaos.state), check_order=True)
    r.extra |= {
        "faults_served": st["faults_served"],
        "requests": st["export_requests"],
        "rejected_by_receiver": st["rejected"],
    }
    # Duplicates are allowed (at-least-once) but only as identical records.
    chaos.assert_clean(r, max_duplicates=None)
    assert not different, f"{r.line()}\ncopies that differ: {list(different.items())[:3]}"
    assert st["faults_served"] > 0 and st["rejected"] == 0, r.line()
