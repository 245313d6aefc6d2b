"""Sink faults, driven into the real sidecar (or the real engine with a sink of its own kind):
one sink down while another delivers, a failure nobody would otherwise hear of, a line a
sink cannot send, a worker that cannot go on, a sink stuck for ever."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from obskit._http import RetryConfig
from sidecar.config import build_config
from sidecar.engine import Engine
from sidecar.sinks.base import Batch, SendResult, Sink
from sidecar.sinks.delivery import Outcome
from sidecar.source.chunk import Chunk
from tests.receivers.loki import LokiReceiver
from tests.sidecar.engine.enginehelp import SIDECAR, Sidecar, archived, line, wait_for

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_lines(path: Path, start: int, n: int, service: str = "checkout") -> None:
    """Numbered lines stamped now (Loki refuses old ones)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamps = [
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{i % 1000:03d}Z"
        for i in range(start, start + n)
    ]
    with open(path, "ab") as f:
        f.write(
            b"".join(
                line(i, service, timestamp=t) + b"\n"
                for i, t in zip(range(start, start + n), stamps, strict=True)
            )
        )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def config(tmp: Path, sinks: list[dict[str, Any]], **extra: Any) -> Path:
    cfg: dict[str, Any] = {
        "source": {"path": str(tmp / "logs"), "poll_interval": "100ms"},
        "checkpoint": {"dir": str(tmp / "state"), "interval": "200ms"},
        "http": {"listen": "127.0.0.1:0"},
        "batch": {"max_wait": "50ms", "max_lines": 500},
        "health": {"sink_failing_after": "1s"},
        "shutdown_timeout": "5s",
        "sinks": sinks,
        **extra,
    }
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    path = tmp / "sidecar.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def seqs(lines: list[str]) -> list[int]:
    return sorted(orjson.loads(x)["seq"] for x in lines)


def test_one_sink_down_the_other_delivers_all_and_the_spool_drains_later(tmp_path: Path) -> None:
    """Loki refuses connections for the whole run: the file archive still gets every line
    at once, /readyz names the failing sink, ``spool status`` shows the backlog and its
    error, and ``spool drain`` delivers it once Loki is up: every line exactly once."""
    port = free_port()
    loki_url = f"http://127.0.0.1:{port}"
    cfg = config(
        tmp_path,
        [
            {"name": "archive", "type": "file", "dir": str(tmp_path / "archive")},
            {"name": "loki", "type": "loki", "url": loki_url, "timeout": "2s"},
        ],
    )
    write_lines(tmp_path / "logs" / "app.log", 0, 2000)
    sc = Sidecar(cfg, tmp_path)
    try:
        addr = sc.address()
        wait_for(lambda: len(archived(tmp_path)) == 2000, 30, "the archive to get every line")
        wait_for(lambda: get(f"http://{addr}/readyz")[0] == 503, 15, "readyz to turn not ready")
        _, body = get(f"http://{addr}/readyz")
        assert "sink loki: failing for" in body and "connect" in body, body
        assert get(f"http://{addr}/healthz")[0] == 200
        wait_for(
            lambda: (
                'obskit_sidecar_spool_lines{sink="loki"} 2000.0' in get(f"http://{addr}/metrics")[1]
            ),
            5,
            "the spool gauge (published every second)",
        )
        st = subprocess.run(
            [*SIDECAR, "spool", "status", "--config", str(cfg), "--json"],
            capture_output=True,
            timeout=60,
        )
        assert st.returncode == 0, st.stderr
        (row,) = orjson.loads(st.stdout)
        assert (row["sink"], row["lines"]) == ("loki", 2000)
        assert row["last_error"].startswith("connect")
        t0 = time.monotonic()
        assert sc.signal(15) == 0
        assert time.monotonic() - t0 < 4  # a failing spooled sink is not waited for
    finally:
        sc.close()
    assert seqs([orjson.dumps(r).decode() for r in archived(tmp_path)]) == list(range(2000))
    # The sidecar is retired; its spool is drained by the command, into a Loki that is up.
    with LokiReceiver().start(port=port) as rx:
        dr = subprocess.run(
            [*SIDECAR, "spool", "drain", "--config", str(cfg), "--sink", "loki"],
            capture_output=True,
            timeout=120,
        )
        assert dr.returncode == 0, dr.stderr.decode()[-2000:]
        assert b"loki: 2000 lines delivered, 0 dead-lettered; 0 left" in dr.stdout
        assert seqs(rx.lines()) == list(range(2000))
        assert rx.stats()["duplicates_stored"] + rx.stats()["duplicates_dropped"] == 0


def test_a_failing_sink_is_heard_once_per_cause_without_credentials(
    tmp_path: Path, loki: LokiReceiver
) -> None:
    """Loki answers 401 with a body that echoes the credentials: one WARN names the sink,
    the status and the URL (no password), the echoed token is masked; retries continue
    without a log line each; the recovery is logged."""
    secret_url = loki.url.replace("http://", "http://bob:hunter2@")
    loki.fail_next(40, status=401, body="no org id; got Authorization: Bearer s3cr3t-t0ken-value")
    cfg = config(
        tmp_path,
        [
            {
                "name": "loki",
                "type": "loki",
                "url": secret_url,
                "retry": {"initial": 0.02, "max": 0.05},
            }
        ],
    )
    write_lines(tmp_path / "logs" / "app.log", 0, 300)
    sc = Sidecar(cfg, tmp_path)
    try:
        wait_for(lambda: len(loki.lines()) == 300, 60, "delivery after the 401s")
        wait_for(
            lambda: any("delivering again" in str(r.get("message")) for r in sc.logs()),
            10,
            "the recovery log line",
        )
    finally:
        sc.close()
    text = sc.out_path.read_text()
    assert "hunter2" not in text and "s3cr3t-t0ken-value" not in text
    warns = [r for r in sc.logs() if str(r.get("message", "")).startswith("sink loki:")]
    failures = [r for r in warns if r["level"] in ("WARN", "ERROR")]
    assert len(failures) == 1, failures  # 40 failures, one line (the interval is 60 s)
    assert failures[0]["cause"] == "401"
    assert failures[0]["url"] == loki.url + "/loki/api/v1/push"
    assert "***" in failures[0]["detail"] and "s3cr3t" not in failures[0]["detail"]


# --- the engine with sinks of its own kind -----------------------------------------------


class ListSource:
    """The given files' bytes, a few lines per chunk, like the tailer."""

    def __init__(self, files: dict[str, bytes], lines_per_chunk: int = 50) -> None:
        self.data = files
        self.pos = dict.fromkeys(files, 0)
        self.n = lines_per_chunk

    def poll(self, max_bytes: int = 1 << 20) -> list[Chunk]:
        out = []
        for key, data in self.data.items():
            start = end = self.pos[key]
            for _ in range(self.n):
                nl = data.find(b"\n", end)
                if nl < 0:
                    break
                end = nl + 1
            if end > start:
                self.pos[key] = end
                out.append(Chunk(key, f"/logs/{key}.log", start, end, data[start:end]))
        return out

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.01))

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def files(self) -> list[Any]:
        return []


def _engine_cfg(tmp: Path, **extra: Any) -> Any:
    return build_config(
        {
            "source": {"path": str(tmp / "logs")},
            "checkpoint": {"dir": str(tmp / "state"), "interval": "50ms"},
            "http": {"enabled": False},
            "batch": {"max_lines": 100, "max_wait": "10ms"},
            **extra,
        }
    )


def _data(n: int) -> bytes:
    return b"".join(line(i) + b"\n" for i in range(n))


class PoisonSensitive(Sink):
    """A sink whose encoder raises on some lines (as a real encoder meets a value it cannot
    represent): everything else must be delivered, those lines dead-lettered."""

    def __init__(self, name: str, poison: set[int]) -> None:
        super().__init__(name)
        # Short back-off: what is tested is which lines end where, not the waits between
        # strikes (the default back-off made this one test a minute long).
        self.retry = RetryConfig(initial=0.01, max=0.05)
        self.poison = poison
        self.got: list[int] = []
        self.attempts = 0

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        self.attempts += 1
        seqs_ = [orjson.loads(batch.lines[i])["seq"] for i in part]
        bad = [s for s in seqs_ if s in self.poison]
        if bad:
            raise ValueError(f"cannot encode a float of 1e999 (seq {bad[0]})")
        self.got += seqs_
        return Outcome.ok(len(part))


def test_a_poison_line_is_isolated_and_the_rest_delivered(tmp_path: Path) -> None:
    poison = {17, 250, 251, 999}
    sink = PoisonSensitive("enc", poison)
    logs: list[tuple[str, str, dict[str, Any]]] = []
    eng = Engine(
        _engine_cfg(tmp_path),
        source_factory=lambda c, cp: ListSource({"a": _data(1000)}),
        sinks=[sink],
        log=lambda lv, m, **k: logs.append((lv, m, k)),
    )
    assert eng.run(exit_on_idle=0.2) == 0
    assert sorted(sink.got) == [i for i in range(1000) if i not in poison]
    dead = [
        orjson.loads(x)
        for x in (tmp_path / "state" / "quarantine" / "quarantine.ndjson").read_bytes().splitlines()
    ]
    assert sorted(orjson.loads(d["raw"])["seq"] for d in dead) == sorted(poison)
    assert all(d["stage"] == "sink" and d["sink"] == "enc" for d in dead)
    assert all("cannot encode a float of 1e999" in d["reasons"][0]["message"] for d in dead)
    assert eng.metrics.totals.dead_lettered == {"enc: error": 4}
    assert eng.checkpoints.get("a") == len(_data(1000))
    assert any(lv == "WARN" and "sink enc: error" in m for lv, m, _ in logs)


class Exploding(Sink):
    """A sink whose worker hits a bug outside any delivery step it can retry."""

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        raise AssertionError("unreachable")

    def send(self, batch: Batch) -> SendResult:
        raise TypeError("'NoneType' object is not subscriptable")


def test_a_worker_that_cannot_go_on_stops_the_sidecar_with_the_reason(tmp_path: Path) -> None:
    logs: list[tuple[str, str]] = []
    ok = PoisonSensitive("ok", set())
    eng = Engine(
        _engine_cfg(tmp_path, shutdown_timeout="60s"),
        source_factory=lambda c, cp: ListSource({"a": _data(300)}),
        sinks=[ok, Exploding("bad")],
        log=lambda lv, m, **k: logs.append((lv, m)),
    )
    t0 = time.monotonic()
    assert eng.run() != 0  # no exit_on_idle: only the failure ends the run
    # At once: not after waiting out shutdown_timeout for lines the dead worker never takes.
    assert time.monotonic() - t0 < 30
    assert eng.fatal is not None and "NoneType" in eng.fatal
    assert any(
        lv == "ERROR" and "sink bad: worker not running" in m and "NoneType" in m for lv, m in logs
    )
    assert eng.checkpoints.get("a") in (None, 0)  # the bad sink never took a line


class Stuck(Sink):
    """A backend that never answers (its waits end only at shutdown)."""

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        self.stopping.wait()
        from sidecar.sinks.base import SinkStopped

        raise SinkStopped


def test_a_stuck_sink_without_spool_never_freezes_the_engine(tmp_path: Path) -> None:
    """The engine thread does not wait on the stuck sink: the healthy one gets what memory
    allows, housekeeping goes on (the checkpoint-age gauge tells the real age), /healthz
    stays alive and /readyz names the stuck sink."""
    ok = PoisonSensitive("ok", set())
    eng = Engine(
        _engine_cfg(tmp_path, health={"sink_failing_after": "1s", "checkpoint_stale_after": "2s"}),
        source_factory=lambda c, cp: ListSource({"a": _data(200)}),
        sinks=[ok, Stuck("stuck")],
        log=lambda *a, **k: None,
    )
    runner = threading.Thread(target=eng.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: len(ok.got) == 200, 20, "the healthy sink to get all 200 lines")
        time.sleep(2)
        # Housekeeping goes on: checkpoints are saved (not moved: the stuck sink holds them
        # back), so the age gauge stays fresh instead of freezing at its last value.
        assert eng.liveness() == []
        assert eng.metrics.checkpoint_age._value.get() < 1.5  # type: ignore[attr-defined]
        assert time.time() - (eng.saved_at or 0) < 1.5
        assert time.monotonic() - eng.heartbeat < 1.5
    finally:
        eng.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    assert eng.checkpoints.get("a") in (None, 0)


def test_checkpoint_age_counts_from_start_until_the_first_save(tmp_path: Path) -> None:
    ok = PoisonSensitive("ok", set())
    eng = Engine(
        _engine_cfg(tmp_path, health={"checkpoint_stale_after": "1s"}),
        source_factory=lambda c, cp: ListSource({"a": _data(10)}),
        sinks=[ok],
        log=lambda *a, **k: None,
    )
    from sidecar.checkpoint import CheckpointError

    def refuse(*a: Any) -> None:
        raise CheckpointError("cannot save checkpoints: Read-only file system")

    eng.checkpoints.save = refuse  # type: ignore[method-assign]
    runner = threading.Thread(target=eng.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: eng.ready, 10, "start")
        time.sleep(1.5)
        assert eng.checkpoint_age() >= 1.4
        assert any("checkpoints not saved for" in r for r in eng.readiness())
    finally:
        eng.request_stop()
        runner.join(30)
