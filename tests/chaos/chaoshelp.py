"""The chaos harness: a writer process, the real sidecar process killed and restarted at
random moments, and the accounting of what was written against what arrived.

Randomness comes from one seed (``OBSKIT_CHAOS_SEED`` to replay a run); the seed is in every
summary line and every assertion message.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

HERE = Path(__file__).resolve().parent
# The writer's copy+truncate service. Its lines re-read from a copy after a restart used to
# get the copy's identity (duplicates in the file sink and Elasticsearch; fixed, see
# test_copytruncate_ids.py). The disk-full test still tolerates and reports them: there,
# checkpoints cannot be saved while the disk is full (see docs/testing.md).
COPYTRUNCATE_SERVICE = "gamma"
REPO = HERE.parents[1]


def chaos_seed() -> int:
    env = os.environ.get("OBSKIT_CHAOS_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 2**31)


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``pred`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Outcome:
    """What arrived, for :func:`account`: seq ids in arrival order, and per arrival the key
    within which order is promised (e.g. service and file generation)."""

    seqs: list[str] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    identical_dups: int = 0  # extra copies that were exactly the same entry
    different_dups: list[str] = field(default_factory=list)  # copies that differ: a bug


@dataclass
class Report:
    name: str
    seed: int
    written: int = 0
    valid: int = 0
    invalid: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicates: int = 0
    order_violations: list[str] = field(default_factory=list)
    quarantined: int = 0
    quarantine_copies: int = 0
    quarantine_missing: list[str] = field(default_factory=list)
    quarantine_unexpected: list[str] = field(default_factory=list)
    kills: int = 0
    terms: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rotations: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        faults = ",".join(f"{k}:{v}" for k, v in sorted(self.faults.items())) or "none"
        rot = ",".join(f"{k}:{v}" for k, v in sorted(self.rotations.items()))
        extra = "".join(f" {k}={v}" for k, v in self.extra.items())
        return (
            f"chaos[{self.name}] seed={self.seed} written={self.written} "
            f"(valid {self.valid}, invalid {self.invalid}) delivered={self.delivered} "
            f"lost={len(self.lost)} duplicates={self.duplicates} "
            f"quarantined={self.quarantined}/{self.invalid} "
            f"restarts={self.kills + self.terms} (kill-9 {self.kills}, SIGTERM {self.terms}) "
            f"rotations={rot} faults={faults}{extra}"
        )

    def publish(self) -> str:
        text = self.line()
        print("\n" + text, flush=True)
        results = os.environ.get("OBSKIT_CHAOS_RESULTS")
        if results:
            with open(results, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        return text


class SidecarProc:
    """One ``obskit-sidecar run`` process; its stdout/stderr (own logs) go to a file."""

    def __init__(self, config: Path, out: Path, env: dict[str, str], *args: str) -> None:
        self.out_path = out
        self._out = open(out, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "run_sidecar.py"), "run", "--config", str(config), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            cwd=str(config.parent),
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def started(self) -> bool:
        """Whether it has installed its signal handlers (it logs its start line after)."""
        self._out.flush()
        return b'"obskit-sidecar started"' in self.out_path.read_bytes()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)
        self._out.close()

    def term(self, timeout: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Stuck: have it print every thread's stack (SIGUSR1), then fail with them.
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            self.proc.kill()
            self.proc.wait(timeout=10)
            self._out.flush()
            raise AssertionError(
                f"no exit {timeout:.0f} s after SIGTERM; its stacks and last output:\n"
                + self.out_path.read_text(errors="replace")[-8000:]
            ) from None
        finally:
            self._out.close()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"sidecar did not finish within {timeout:.0f} s") from None
        finally:
            self._out.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._out.closed:
            self._out.close()

    def logs(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for raw in self.out_path.read_bytes().splitlines():
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                rec = {"raw": raw.decode("utf-8", "replace")}
            out.append(rec if isinstance(rec, dict) else {"raw": str(rec)})
        return out


class Chaos:
    """One chaos run in ``tmp``: config, writer, sidecar storm, drain, accounting."""

    def __init__(self, tmp: Path, seed: int, name: str) -> None:
        self.tmp = tmp
        self.seed = seed
        self.rng = random.Random(seed)
        self.report = Report(name, seed)
        self.logs = tmp / "logs"
        self.state = tmp / "state"
        self.ledger_path = tmp / "ledger.json"
        #: Every valid line the writer wrote, in one file never rotated (``--copy``).
        self.copy_path = tmp / "written.ndjson"
        self.config_path = tmp / "sidecar.yaml"
        self.env: dict[str, str] = {}
        self.procs: list[SidecarProc] = []
        self.writer: subprocess.Popen[bytes] | None = None
        self._t0 = time.monotonic()
        self.events_path = tmp / "events.txt"

    def event(self, what: str) -> None:
        """Timeline of the storm (``events.txt`` in the test folder), for post-mortems."""
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(f"{time.monotonic() - self._t0:8.3f} {what}\n")

    # --- setup ---------------------------------------------------------------------------
    def write_config(self, sinks: list[dict[str, Any]], **sections: Any) -> Path:
        cfg: dict[str, Any] = {
            "source": {"path": str(self.logs), "poll_interval": "100ms"},
            "checkpoint": {"dir": str(self.state), "interval": "200ms"},
            "http": {"enabled": False},
            "batch": {"max_wait": "100ms", "max_lines": 2000},
            "shutdown_timeout": "3s",
            "sinks": sinks,
        }
        for k, v in sections.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        return self.config_path

    def start_writer(
        self, rate: int, seconds: float, invalid_every: int = 400, *extra: str
    ) -> None:
        self.event("writer start")
        self.writer = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "chaos_writer.py"),
                str(self.logs),
                str(self.ledger_path),
                f"--rate={rate}",
                f"--seconds={seconds}",
                f"--seed={self.seed}",
                f"--invalid-every={invalid_every}",
                f"--copy={self.copy_path}",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def start_sidecar(self, *args: str) -> SidecarProc:
        p = SidecarProc(
            self.config_path, self.tmp / f"sidecar-{len(self.procs):02d}.out", self.env, *args
        )
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            p.close()
        if self.writer is not None and self.writer.poll() is None:
            self.writer.kill()
            self.writer.wait(timeout=10)

    # --- the storm -----------------------------------------------------------------------
    def storm(
        self,
        *,
        interval: tuple[float, float] = (1.0, 3.5),
        term_share: float = 0.3,
        on_tick: Callable[[random.Random], Iterable[str]] | None = None,
        tick: float = 0.5,
    ) -> None:
        """While the writer runs: every ``interval`` seconds stop the sidecar (SIGKILL, or
        SIGTERM with probability ``term_share``) and start it again after a short random
        pause. ``on_tick(rng)`` may inject faults (returns the names of what it injected)."""
        assert self.writer is not None
        side = self.start_sidecar()
        next_stop = time.monotonic() + self.rng.uniform(*interval)
        deadline = time.monotonic() + 600
        while self.writer.poll() is None:
            assert time.monotonic() < deadline, "writer never finished"
            time.sleep(tick)
            if on_tick is not None:
                armed = on_tick(self.rng)
                for kind in armed:
                    self.event(f"fault {kind}")
                self.report.faults.update(armed)
            assert side.alive(), f"sidecar died by itself: {side.out_path.read_text()[-3000:]}"
            if time.monotonic() < next_stop:
                continue
            # A SIGTERM that lands while the interpreter is still importing ends the process
            # the way any Python program ends (exit -15, nothing lost: it is a kill); the
            # graceful path is tested once the sidecar has its handlers.
            if self.rng.random() < term_share and side.started():
                self.event("SIGTERM")
                rc = side.term(timeout=30)
                assert rc == 0, f"SIGTERM exit {rc}: {side.out_path.read_text()[-3000:]}"
                self.report.terms += 1
            else:
                self.event("SIGKILL")
                side.kill9()
                self.report.kills += 1
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.event(f"start sidecar-{len(self.procs):02d}")
            side = self.start_sidecar()
            next_stop = time.monotonic() + self.rng.uniform(*interval)
        assert self.writer.returncode == 0, "writer failed"
        # The last sidecar of the storm is stopped for good with a kill -9: the drain run
        # then starts from whatever was saved, as after a crash.
        side.kill9()
        self.report.kills += 1

    def drain(self, timeout: float = 120) -> SidecarProc:
        """A final ``run --exit-on-idle`` until everything is shipped (exit 0 required)."""
        side = self.start_sidecar("--exit-on-idle", "2")
        rc = side.wait(timeout)
        assert rc == 0, f"drain exit {rc}: {side.out_path.read_text()[-3000:]}"
        return side

    # --- accounting ----------------------------------------------------------------------
    def ledger(self) -> dict[str, Any]:
        return dict(orjson.loads(self.ledger_path.read_bytes()))

    def account(self, got: Outcome, quarantine: list[dict[str, Any]], check_order: bool) -> Report:
        r = self.report
        led = self.ledger()
        r.rotations = dict(led["rotations"])
        expected: set[str] = set()
        invalid: set[str] = set()
        for svc, info in led["services"].items():
            r.written += info["written"]
            expected.update(f"{svc}-{n}" for n in range(info["written"]))
            invalid.update(info["invalid"])
        expected -= invalid
        r.valid, r.invalid = len(expected), len(invalid)
        counts = Counter(got.seqs)
        r.delivered = len(counts.keys() & expected)
        r.lost = sorted(expected - counts.keys())
        r.unexpected = sorted(counts.keys() - expected)
        r.duplicates = sum(c - 1 for c in counts.values()) + got.identical_dups
        dup_by = Counter(k.rpartition("-")[0] for k, c in counts.items() for _ in range(c - 1))
        if dup_by:
            r.extra["dups_by_service"] = dict(sorted(dup_by.items()))
            r.extra["dup_examples"] = sorted(k for k, c in counts.items() if c > 1)[:5]
        if check_order:
            last: dict[tuple[Any, ...], int] = {}
            seen: set[str] = set()
            for seq, key in zip(got.seqs, got.keys, strict=True):
                if seq in seen:
                    continue  # a resent copy: order is promised for first deliveries
                seen.add(seq)
                svc, _, n = seq.rpartition("-")
                if last.get(key, -1) > int(n):
                    r.order_violations.append(f"{seq} after {svc}-{last[key]} in {key}")
                last[key] = max(last.get(key, -1), int(n))
        qseqs = Counter(_seq_of_raw(q) for q in quarantine)
        r.quarantined = len(qseqs.keys() & invalid)
        r.quarantine_copies = sum(qseqs.values())
        r.quarantine_missing = sorted(invalid - qseqs.keys())
        r.quarantine_unexpected = sorted(str(k) for k in qseqs.keys() - invalid)
        return r

    def assert_clean(
        self,
        r: Report,
        *,
        max_duplicates: int | None = 0,
        known_dup_services: tuple[str, ...] = (),
    ) -> None:
        """Fail with the summary line unless nothing was lost, nothing unexpected arrived,
        order held, the quarantine holds exactly the invalid lines, and duplicates are within
        ``max_duplicates`` (not counting ``known_dup_services``, reported separately)."""
        dup_by: dict[str, int] = r.extra.get("dups_by_service", {})
        known = sum(dup_by.get(s, 0) for s in known_dup_services)
        if known:
            r.extra["copytruncate_dups"] = known
        summary = r.publish()
        problems = []
        if r.lost:
            problems.append(f"{len(r.lost)} lost: {_ranges(r.lost)}")
        if r.unexpected:
            problems.append(f"{len(r.unexpected)} unexpected deliveries, e.g. {r.unexpected[:10]}")
        if max_duplicates is not None and r.duplicates - known > max_duplicates:
            problems.append(f"{r.duplicates - known} duplicates (allowed {max_duplicates})")
        if r.order_violations:
            problems.append(f"order broken: {r.order_violations[:5]}")
        if r.quarantine_missing or r.quarantine_unexpected:
            problems.append(
                f"quarantine: missing {r.quarantine_missing[:10]}, "
                f"unexpected {r.quarantine_unexpected[:10]}"
            )
        if not r.kills or r.valid < 1000:
            problems.append("the run did not exercise anything (no kill or too few lines)")
        assert not problems, (
            f"{summary}\n" + "\n".join(problems) + f"\n(replay: OBSKIT_CHAOS_SEED={r.seed})"
        )


def loki_outcome(rx: Any) -> tuple[Outcome, dict[str, list[Any]], dict[str, int]]:
    """What a Loki receiver holds, for :meth:`Chaos.account`: per entry its seq and order key
    (Loki orders per stream, the source per file generation), the copies that differ (a
    bug: duplicates must be identical), and the receiver's counters."""
    got = Outcome()
    forms: list[tuple[str, Any]] = []
    for e in rx.entries():
        rec = orjson.loads(e.line)
        got.seqs.append(str(rec["seq"]))
        got.keys.append((tuple(sorted(e.labels.items())), rec["gen"]))
        forms.append((str(rec["seq"]), (tuple(sorted(e.labels.items())), e.ts, e.line)))
    st = rx.stats()
    # Copies Loki dropped itself (head-block dedup) were sent twice as well.
    got.identical_dups = st["duplicates_dropped"]
    different = {k: v for k, v in by_seq(forms).items() if len(v) > 1}
    return got, different, st


def audit_loki(chaos: Chaos, rx: Any) -> Any:
    """``obskit audit`` of the writer's complete copy of its valid lines (``--copy``) against
    a Loki receiver: the oracle's view of the same run, per service and minute."""
    from obskit.audit import compare
    from obskit.trace.config import LokiConfig

    return compare(files=[chaos.copy_path], backend=LokiConfig(url=rx.url), settle=0)


def _ranges(seqs: list[str], limit: int = 12) -> str:
    """``svc-10..svc-250, ...``: lost lines as contiguous runs per service."""
    by: dict[str, list[int]] = defaultdict(list)
    for s in seqs:
        svc, _, n = s.rpartition("-")
        by[svc].append(int(n))
    runs = []
    for svc, ns in sorted(by.items()):
        ns.sort()
        start = prev = ns[0]
        for n in [*ns[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            runs.append(f"{svc}-{start}..{prev}" if prev > start else f"{svc}-{start}")
            if n is not None:
                start = prev = n
    more = f" (+{len(runs) - limit} more runs)" if len(runs) > limit else ""
    return ", ".join(runs[:limit]) + more


def _seq_of_raw(entry: dict[str, Any]) -> str | None:
    raw = entry.get("raw")
    if not isinstance(raw, str):
        return None
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return rec.get("seq") if isinstance(rec, dict) else None


def read_ndjson(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        for n, raw in enumerate(p.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                raise AssertionError(f"{p}:{n}: corrupt record ({exc}): {raw[:300]!r}") from None
    return out


def quarantine_entries(state: Path, torn: list[bytes] | None = None) -> list[dict[str, Any]]:
    """Dead-letter entries. A crash can tear the last entry (kill -9 with a full disk); the
    fragment stays on its own line (the line itself is quarantined again after the restart,
    its checkpoint never passed it) and is collected in ``torn`` if given, else an error."""
    out: list[dict[str, Any]] = []
    for p in sorted((state / "quarantine").glob("quarantine*.ndjson")):
        for n, raw in enumerate(p.read_bytes().splitlines(), 1):
            if not raw.strip():
                continue
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                if torn is None or raw.count(b'{"time"') != 1:
                    raise AssertionError(f"{p}:{n}: corrupt entry ({exc}): {raw[:300]!r}") from None
                torn.append(raw)
    return out


def outcome_of_records(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> Outcome:
    """Seqs in arrival order, with the order key of each record."""
    got = Outcome()
    for rec in records:
        got.seqs.append(str(rec.get("seq")))
        got.keys.append(key(rec))
    return got


def file_order(rec: dict[str, Any]) -> tuple[Any, ...]:
    """Order promised per source file: one service's file generation (one inode's lines)."""
    return (rec.get("service"), rec.get("gen"))


def by_seq(records: Iterable[tuple[str, Any]]) -> dict[str, set[Any]]:
    """Distinct forms each seq arrived in (for "duplicates only of identical entries")."""
    forms: dict[str, set[Any]] = defaultdict(set)
    for seq, form in records:
        forms[seq].add(form)
    return forms


def fault_kinds(kinds: list[str], chance: float) -> Callable[[random.Random], str | None]:
    """Each tick, with probability ``chance``, the kind of fault to arm (``None``: none this
    tick): every kind once first, in an order drawn from the run's seed, then kinds at
    random."""
    pending: list[str] = []
    started = False

    def draw(rng: random.Random) -> str | None:
        nonlocal started
        if not started:
            pending.extend(rng.sample(kinds, len(kinds)))
            started = True
        if rng.random() >= chance:
            return None
        return pending.pop(0) if pending else rng.choice(kinds)

    return draw


def http_faults(rx: Any, chance: float, timeout: float) -> Callable[[random.Random], list[str]]:
    """Faults for a receiver with the shared fault API (``tests/receivers/faults.py``: the Loki
    and OTLP receivers). Each tick, with probability ``chance``, arm one: 429 with
    Retry-After, a run of 500s, connection resets (half of them after the request was
    stored: outcome unknown), an answer slower than the client's ``timeout`` (stored), or an
    outage of 502/503. The first five that fire cover every kind once (in a seeded order),
    then kinds are drawn at random."""
    draw = fault_kinds(["429", "500", "reset", "slow", "outage"], chance)

    def arm(rng: random.Random) -> list[str]:
        kind = draw(rng)
        if kind is None:
            return []
        if kind == "429":
            rx.fail_next(rng.randint(1, 3), 429, retry_after="1")
        elif kind == "500":
            rx.fail_next(rng.randint(2, 8), 500)
        elif kind == "reset":
            rx.reset_next(rng.randint(1, 2), store=rng.random() < 0.5)
        elif kind == "slow":
            rx.stall_next(1, seconds=timeout + 0.5, store=True)
        else:
            rx.outage(rng.uniform(1.0, 2.5), status=rng.choice([502, 503]))
        return [kind]

    return arm
