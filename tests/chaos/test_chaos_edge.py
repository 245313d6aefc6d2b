"""The edge node: the backend is cut off far longer than the log files live (connections
refused, then a black hole that only times out), while the services keep writing and their
retention deletes every file but the newest rotated one; then the link comes back.

With the default spool: nothing lost, order kept per Loki stream and file generation,
duplicates only identical and counted, the first push within about a second of the link's
return. Variants: ``kill9`` kills the sidecar during the outage (refused and black hole)
and while it drains; ``two_sinks`` adds a file archive that must get every line while Loki
is still cut off. Time is compressed (1,500 lines/s, files rotated every 2-4 s and deleted
at the next rotation) so a run takes about 40 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from chaoshelp import Chaos, Outcome, audit_loki, loki_outcome, quarantine_entries, wait_until
from netfault import NetFault

from tests.receivers.loki import LokiReceiver

pytestmark = pytest.mark.chaos

RATE, SECONDS = 1500, 20.0
REFUSE_AT, BLACKHOLE_AT = 2.0, 9.0  # writer seconds; the link returns after the writer ends


@pytest.fixture
def loki() -> Iterator[LokiReceiver]:
    rx = LokiReceiver(store="full").start()
    try:
        yield rx
    finally:
        rx.stop()


def _valid(chaos: Chaos) -> int:
    led = chaos.ledger()
    return sum(i["written"] - len(i["invalid"]) for i in led["services"].values())


def _archive_seqs(chaos: Chaos) -> list[str]:
    out = []
    for seg in sorted((chaos.tmp / "archive").glob("archive-*.ndjson")):
        data = seg.read_bytes()
        out += [str(orjson.loads(x)["seq"]) for x in data[: data.rfind(b"\n") + 1].splitlines()]
    return out


def _wait_complete_or_stalled(rx: LokiReceiver, valid: int, timeout: float = 120) -> None:
    """Until every valid line arrived, or nothing new came for 10 s (the accounting then
    says what is missing)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        have = len({orjson.loads(x)["seq"] for x in rx.lines()})
        if have >= valid:
            return
        if have != last:
            last, since = have, time.monotonic()
        elif time.monotonic() - since > 10:
            return
        time.sleep(0.2)


@pytest.mark.parametrize("variant", ["plain", "kill9", "two_sinks"])
def test_edge_outage_longer_than_files_live(chaos: Chaos, loki: LokiReceiver, variant: str) -> None:
    link = NetFault(loki.port).start()
    sinks: list[dict[str, Any]] = [
        {
            "name": "loki",
            "type": "loki",
            "url": link.url,
            "timeout": "1s",
            "batch_max_bytes": "256KiB",
            "retry": {"initial": 0.1, "max": 5},
        }
    ]
    if variant == "two_sinks":
        sinks.insert(0, {"name": "archive", "type": "file", "dir": str(chaos.tmp / "archive")})
    chaos.write_config(sinks)
    side = chaos.start_sidecar()
    # Files live a second or two: lines written before the sidecar runs could be deleted
    # unread, which no shipper can help.
    wait_until(side.started, 30, "the sidecar to start")
    # A killed sidecar is away for its start-up time (1-3 s on a busy machine): a file
    # deleted in that gap with lines not yet spooled is lost whatever the shipper (no one
    # is reading), so there the files live a little longer: the newest rotated file of the
    # segment and new-file schemes is the one before the current one (keep 2).
    # Elsewhere a rotated file lives one rotation interval (2-4 s): a healthy shipper on a
    # busy 2-core machine must be able to read it in that time.
    keep = (
        ["--keep=2", "--rotate-min=3", "--rotate-max=5"]
        if variant == "kill9"
        else ["--keep=1", "--rotate-min=2", "--rotate-max=4"]
    )
    chaos.start_writer(RATE, SECONDS, 400, *keep)
    t0 = time.monotonic()

    def at(t: float) -> None:
        time.sleep(max(0.0, t0 + t - time.monotonic()))

    def kill_and_restart(why: str) -> None:
        nonlocal side
        chaos.event(f"SIGKILL ({why})")
        side.kill9()
        chaos.report.kills += 1
        side = chaos.start_sidecar()

    try:
        at(REFUSE_AT)
        chaos.event("link: refuse")
        link.set("refuse")
        if variant == "kill9":
            at(6.0)
            kill_and_restart("outage, refused")
        at(BLACKHOLE_AT)
        chaos.event("link: black hole")
        link.set("blackhole")
        if variant == "kill9":
            at(13.0)
            kill_and_restart("outage, black hole")
        assert chaos.writer is not None
        chaos.writer.wait(timeout=SECONDS + 60)
        assert chaos.writer.returncode == 0
        chaos.event("writer done")
        valid = _valid(chaos)
        if variant == "two_sinks":
            # The archive gets everything while Loki is still cut off: one sink's outage
            # holds back neither the reading nor the other sink.
            wait_until(lambda: len(set(_archive_seqs(chaos))) >= valid, 15, "the archive")
            chaos.event("archive complete")
        before = len(loki.lines())
        chaos.event("link: back")
        link.set("forward")
        back = time.monotonic()
        wait_until(lambda: len(loki.lines()) > before, 10, "the first push after the outage")
        first_push = time.monotonic() - back
        chaos.report.extra["first_push_s"] = round(first_push, 2)
        if variant == "kill9":
            wait_until(lambda: len(loki.lines()) > before + 2000, 30, "the drain to be going")
            kill_and_restart("draining")
        _wait_complete_or_stalled(loki, valid)
        chaos.event(f"loki has {len(loki.lines())} lines")
        rc = side.term(timeout=30)
        assert rc == 0, side.out_path.read_text()[-3000:]
        chaos.report.terms += 1
        if variant != "kill9":
            chaos.report.kills += 1  # (assert_clean asks for a disruption; the outage is one)
    finally:
        link.close()
    got, different, st = loki_outcome(loki)
    r = chaos.account(got, quarantine_entries(chaos.state), check_order=True)
    r.extra |= {
        "dup_stored": st["duplicates_stored"],
        "dup_dropped_by_loki": st["duplicates_dropped"],
        "pushes": st["push_requests"],
        "proxied_connections": link.accepted,
    }
    if variant == "two_sinks":
        archive = Outcome(
            seqs=_archive_seqs(chaos), keys=[("archive",)] * len(_archive_seqs(chaos))
        )
        ra = chaos.account(archive, quarantine_entries(chaos.state), check_order=False)
        assert not ra.lost and ra.duplicates == 0, ra.line()
    # With the spool nothing is ever reported lost either (files went, their lines were
    # safe in the spool).
    reported = [p.out_path.name for p in chaos.procs if b'"kind":"lost"' in p.out_path.read_bytes()]
    assert not reported, f"{r.line()}: losses reported by {reported}"
    # obskit audit, per service and minute, agrees with the ledger: nothing missing, and
    # exactly the copies Loki kept counted as duplicated.
    audit = audit_loki(chaos, loki)
    r.extra["audit"] = f"missing={audit.missing},duplicated={audit.duplicated}"
    chaos.assert_clean(r, max_duplicates=None)
    assert (audit.missing, audit.duplicated) == (0, st["duplicates_stored"]), r.line()
    assert not different, f"{r.line()}\ncopies that differ: {list(different.items())[:3]}"
    # Every scheme rotated (and so deleted files) several times while Loki was away.
    rotations = chaos.ledger()["rotations"]
    assert min(rotations.values()) >= 3, f"{r.line()}: too few rotations {rotations}"
    # The first push goes out about a second after the link returns (the wait while the
    # backend is unreachable is capped at 1 s; a request caught in the black hole times out
    # after the sink's 1 s timeout first).
    assert first_push < 3.0, r.line()
