"""The engine with real sinks of its own kind, in-process: several sinks finishing out of
order, a sink rejecting lines, a sink raising, a checkpoint store that cannot save."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
from enginehelp import line

from sidecar.checkpoint import CheckpointError
from sidecar.config import build_config
from sidecar.engine import Engine
from sidecar.sinks.base import Batch, SendResult, Sink
from sidecar.sinks.delivery import Outcome
from sidecar.source.chunk import Chunk


class ListSource:
    """Hands out the given files' bytes in chunks of a few lines, like the tailer."""

    def __init__(self, files: dict[str, bytes], lines_per_chunk: int = 7) -> None:
        self.files_data = files
        self.pos = dict.fromkeys(files, 0)
        self.n = lines_per_chunk

    def poll(self, max_bytes: int = 1 << 20) -> list[Chunk]:
        out = []
        for key, data in self.files_data.items():
            start = self.pos[key]
            if start >= len(data):
                continue
            end = start
            for _ in range(self.n):
                nl = data.find(b"\n", end)
                if nl < 0:
                    break
                end = nl + 1
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
        class F:
            pass

        out = []
        for key, data in self.files_data.items():
            f = F()
            f.path, f.file_key, f.size, f.read_offset = (
                f"/logs/{key}",
                key,
                len(data),
                self.pos[key],
            )
            out.append(f)
        return out


class Recording(Sink):
    """Accepts everything after a random-ish delay; can reject or fail."""

    def __init__(
        self, name: str, delay: float = 0.0, reject_seq: set[int] | None = None, fail_first: int = 0
    ) -> None:
        super().__init__(name)
        self.delay = delay
        self.reject_seq = reject_seq or set()
        self.fail_first = fail_first
        self.got: list[bytes] = []
        self.lock = threading.Lock()

    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("backend exploded")
        if self.delay:
            time.sleep(self.delay * (batch.seq % 3))  # finish batches out of order in time
        rejected = {}
        for i in part:
            if orjson.loads(batch.lines[i])["seq"] in self.reject_seq:
                rejected[i] = ("400 entry too far behind", "too_far_behind")
        with self.lock:
            self.got += [batch.lines[i] for i in part if i not in rejected]
        return Outcome(delivered=len(part) - len(rejected), rejected=rejected)


def _stop_when(eng: Engine, cond: Any, timeout: float = 20) -> None:
    """Request a stop from another thread once ``cond()`` holds (or at the timeout)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.01)
        eng.request_stop()

    threading.Thread(target=watch, daemon=True).start()


def _cfg(tmp: Path, **extra: Any) -> Any:
    return build_config(
        {
            "source": {"path": str(tmp / "logs")},
            "checkpoint": {"dir": str(tmp / "state"), "interval": "50ms"},
            "http": {"enabled": False},
            "batch": {"max_lines": 10, "max_wait": "10ms"},
            **extra,
        }
    )


def _data(n: int, service: str = "checkout", bad_every: int = 0) -> bytes:
    return b"".join(
        (b"not json" if bad_every and i % bad_every == 5 else line(i, service)) + b"\n"
        for i in range(n)
    )


def test_two_sinks_out_of_order_rejections_and_checkpoints(tmp_path: Path) -> None:
    files = {"a": _data(200, bad_every=13), "b": _data(150, "cart")}
    fast = Recording("fast")
    slow = Recording("slow", delay=0.01, reject_seq={7, 8})
    eng = Engine(
        _cfg(tmp_path),
        source_factory=lambda c, cp: ListSource(files),
        sinks=[fast, slow],
        log=lambda *a, **k: None,
    )
    assert eng.run(exit_on_idle=0.2) == 0
    # Every line reached both sinks once (minus what slow rejected), checkpoints at the ends.
    valid_a = [ln for ln in files["a"].splitlines() if ln != b"not json"]
    assert sorted(fast.got) == sorted(valid_a + files["b"].splitlines())
    assert len(slow.got) == len(fast.got) - 4  # seq 7 and 8 of both files
    assert eng.checkpoints.get("a") == len(files["a"])
    assert eng.checkpoints.get("b") == len(files["b"])
    dead = [
        orjson.loads(x)
        for x in (tmp_path / "state" / "quarantine" / "quarantine.ndjson").read_bytes().splitlines()
    ]
    sink_dead = [d for d in dead if d["stage"] == "sink"]
    assert len(sink_dead) == 4
    assert {d["sink"] for d in sink_dead} == {"slow"}
    assert all(d["reasons"][0]["message"] == "400 entry too far behind" for d in sink_dead)
    assert {d["file"] for d in sink_dead} == {"/logs/a.log", "/logs/b.log"}
    assert sum(d["stage"] == "schema" for d in dead) == len(files["a"].splitlines()) - len(valid_a)
    assert eng.metrics.totals.dead_lettered == {"slow: too_far_behind": 4}  # by category


def test_a_failing_sink_is_retried_never_acknowledged_early(tmp_path: Path) -> None:
    files = {"a": _data(30)}
    sink = Recording("flaky", fail_first=2)
    logs: list[tuple[str, str]] = []
    eng = Engine(
        _cfg(tmp_path),
        source_factory=lambda c, cp: ListSource(files),
        sinks=[sink],
        log=lambda level, msg, **k: logs.append((level, msg)),
    )
    assert eng.run(exit_on_idle=0.2) == 0
    assert sorted(sink.got) == sorted(files["a"].splitlines())
    # The first failure is logged at once (later ones of the same cause are folded in), and
    # the recovery too.
    assert [(lv, m) for lv, m in logs if "flaky" in m] == [
        ("WARN", "sink flaky: error"),
        ("INFO", next(m for _, m in logs if "delivering again" in m)),
    ]
    assert eng.checkpoints.get("a") == len(files["a"])


def test_checkpoint_save_failure_is_logged_and_retried(tmp_path: Path, monkeypatch: Any) -> None:
    files = {"a": _data(40)}
    sink = Recording("s")
    logs: list[tuple[str, str, dict[str, Any]]] = []
    eng = Engine(
        _cfg(tmp_path),
        source_factory=lambda c, cp: ListSource(files),
        sinks=[sink],
        log=lambda level, msg, **k: logs.append((level, msg, k)),
    )
    real_save = eng.checkpoints.save
    failures = {"n": 0}

    def flaky_save(*args: Any) -> None:
        if failures["n"] < 2:
            failures["n"] += 1
            raise CheckpointError("disk full")
        real_save(*args)

    monkeypatch.setattr(eng.checkpoints, "save", flaky_save)
    assert eng.run(exit_on_idle=0.3) == 0
    errors = [x for x in logs if x[0] == "ERROR"]
    assert len(errors) == 2 and "disk full" in errors[0][2]["error"]
    saved = orjson.loads((tmp_path / "state" / "checkpoints.json").read_bytes())
    assert saved["files"]["a"]["offset"] == len(files["a"])


def test_too_long_lines_from_the_source_are_quarantined(tmp_path: Path) -> None:
    from sidecar.source.chunk import TooLong

    data = _data(3)
    long_at = len(data)
    tail = line(99) + b"\n"

    class Src(ListSource):
        def poll(self, max_bytes: int = 1 << 20) -> list[Chunk]:
            if self.pos["a"]:
                return []
            self.pos["a"] = long_at + 5000 + len(tail)
            c = Chunk("a", "/logs/a.log", 0, self.pos["a"], data + tail)
            offs, pos = [], 0
            for ln in data.splitlines():
                offs.append(pos)
                pos += len(ln) + 1
            c.offsets = [*offs, long_at + 5000]  # the long line sits between them on disk
            c.too_long = [TooLong(long_at, 4999, b'{"level":"INFO","service":"big","message":"xx')]
            return [c]

    sink = Recording("s")
    eng = Engine(
        _cfg(tmp_path),
        source_factory=lambda c, cp: Src({"a": data}),
        sinks=[sink],
        log=lambda *a, **k: None,
    )
    eng.run(exit_on_idle=0.2)
    dead = [
        orjson.loads(x)
        for x in (tmp_path / "state" / "quarantine" / "quarantine.ndjson").read_bytes().splitlines()
    ]
    assert len(dead) == 1
    assert dead[0]["reasons"][0]["rule"] == "OBS011" and dead[0]["offset"] == long_at
    assert dead[0]["line_length"] == 4999 and dead[0]["service"] == "big"
    assert [r["rule"] for r in dead[0]["reasons"]] == ["OBS011"]
    assert eng.metrics.totals.quarantined == {"OBS011": 1}


def test_stop_hands_over_the_open_batch_and_returns_promptly(tmp_path: Path) -> None:
    files = {"a": _data(25)}
    sink = Recording("s")
    cfg = _cfg(tmp_path, batch={"max_lines": 1000, "max_wait": "1h"}, shutdown_timeout="30s")
    src = ListSource(files)
    eng = Engine(cfg, source_factory=lambda c, cp: src, sinks=[sink], log=lambda *a, **k: None)
    # Stop once everything was read: the lines are all in the open batch (max_wait 1 h).
    _stop_when(eng, lambda: src.pos["a"] == len(files["a"]))
    t0 = time.monotonic()
    assert eng.run() == 0
    assert time.monotonic() - t0 < 10  # not the 30 s shutdown deadline
    assert sorted(sink.got) == sorted(files["a"].splitlines())
    assert eng.checkpoints.get("a") == len(files["a"])


def test_a_stuck_sink_is_stopped_at_the_deadline_and_nothing_is_acknowledged(
    tmp_path: Path,
) -> None:
    from sidecar.sinks.base import SinkStopped

    class Stuck(Recording):
        def send(self, batch: Batch) -> SendResult:
            self.stopping.wait()  # a backend that never answers; waits end on shutdown
            raise SinkStopped

    files = {"a": _data(40)}
    stuck, ok = Stuck("stuck"), Recording("ok")
    eng = Engine(
        _cfg(tmp_path, shutdown_timeout="1s"),
        source_factory=lambda c, cp: ListSource(files),
        sinks=[ok, stuck],
        log=lambda *a, **k: None,
    )
    _stop_when(eng, lambda: len(ok.got) == 40)
    t0 = time.monotonic()
    assert eng.run() == 0
    assert time.monotonic() - t0 < 10
    assert eng.checkpoints.get("a") in (None, 0)  # one sink never confirmed anything
    assert sorted(ok.got) == sorted(files["a"].splitlines())


def test_quarantine_metric_service_label_is_bounded() -> None:
    from sidecar.metrics import MAX_SERVICE_LABELS, Metrics

    m = Metrics()
    for i in range(MAX_SERVICE_LABELS + 50):
        m.quarantined("OBS003", f"svc-{i}", "example")
    m.quarantined("OBS003", "Bad\x1b[31mName", "example")
    m.quarantined("OBS003", None, "example")
    services = {
        s.labels["service"]
        for metric in m.registry.collect()
        if metric.name == "obskit_sidecar_lines_quarantined"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert len(services) == MAX_SERVICE_LABELS + 2  # the kept names, "other", "unknown"
    assert {"other", "unknown"} <= services and "Bad\x1b[31mName" not in services
