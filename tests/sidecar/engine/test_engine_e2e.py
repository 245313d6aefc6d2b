"""The real ``obskit-sidecar`` process, real files, the file sink: every valid line exactly
once, invalid lines quarantined with reasons, repairable ones repaired."""

from __future__ import annotations

import signal
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
from enginehelp import (
    Sidecar,
    archived,
    line,
    quarantined,
    run_once,
    wait_for,
    write_config,
)

TRACE_UP = "4BF92F3577B34DA6A3CE929D0E0E4736"


def _sample(tmp: Path) -> dict[str, int]:
    """Two files with valid, repairable and invalid lines; returns each invalid line's offset."""
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    a: list[bytes] = [line(i) for i in range(300)]
    a.insert(10, line(1000, level="WARNING"))  # repairable (OBS003 alias)
    a.insert(20, line(1001, trace_id=TRACE_UP))  # repairable (OBS006 upper case)
    a.insert(30, b'{"timestamp": "2024-10-01T12:00:00Z", "level": "INFO", "message": "no svc"}')
    a.insert(40, b'{"level": "INFO", this is not json')  # OBS001
    a.insert(50, line(1002, level="LOUD"))  # OBS003, not repairable
    a.insert(60, b"")  # OBS012 blank
    body = b"".join(x + (b"\r\n" if i % 7 == 0 else b"\n") for i, x in enumerate(a))
    (logs / "a.log").write_bytes(body)
    offsets = {}
    pos = 0
    for i, x in enumerate(a):
        offsets[x.decode()] = pos
        pos += len(x) + (2 if i % 7 == 0 else 1)
    (logs / "b.log").write_bytes(b"".join(line(i, service="cart") + b"\n" for i in range(200)))
    return offsets


def test_every_valid_line_once_invalid_quarantined_repairable_repaired(tmp_path: Path) -> None:
    offsets = _sample(tmp_path)
    cfg = write_config(
        tmp_path,
        schema={"on_invalid": "repair", "service_default": "fallback-svc"},
        enrich={"environment": "test", "fields": {"team": "a"}},
    )
    res = run_once(cfg)
    assert res.returncode == 0, res.stdout + res.stderr

    recs = archived(tmp_path)
    seqs = Counter((r["service"], r.get("seq")) for r in recs)
    assert all(n == 1 for n in seqs.values()), [k for k, n in seqs.items() if n > 1]
    for i in range(300):
        assert ("checkout", i) in seqs
    for i in range(200):
        assert ("cart", i) in seqs
    by_seq = {r.get("seq"): r for r in recs if r["service"] == "checkout"}
    assert by_seq[1000]["level"] == "WARN"
    assert by_seq[1001]["trace_id"] == TRACE_UP.lower()
    assert any(r["service"] == "fallback-svc" and r["message"] == "no svc" for r in recs)
    assert 1002 not in by_seq
    assert len(recs) == 300 + 200 + 3
    # Static fields are added to each archived record; CRLF is not carried over.
    assert all(r["environment"] == "test" and r["team"] == "a" and "host" in r for r in recs)

    q = quarantined(tmp_path)
    rules = Counter(e["reasons"][0]["rule"] for e in q)
    assert rules == Counter({"OBS001": 1, "OBS003": 1, "OBS012": 1})
    for e in q:
        assert e["file"].endswith("a.log") and e["stage"] == "schema"
        assert offsets[e["raw"]] == e["offset"], e
        assert e["reasons"][0]["message"]
    loud = next(e for e in q if e["reasons"][0]["rule"] == "OBS003")
    assert "LOUD" in loud["reasons"][0]["message"] and loud["service"] == "checkout"


def test_default_policy_quarantines_instead_of_repairing(tmp_path: Path) -> None:
    _sample(tmp_path)
    res = run_once(write_config(tmp_path))
    assert res.returncode == 0, res.stderr
    q = quarantined(tmp_path)
    assert Counter(e["reasons"][0]["rule"] for e in q) == Counter(
        {"OBS001": 1, "OBS003": 2, "OBS006": 1, "OBS009": 1, "OBS012": 1}
    )
    assert len(archived(tmp_path)) == 300 + 200


def test_kill_9_mid_run_then_restart_archives_every_line_exactly_once(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    # Checkpoints saved rarely: after the kill, most archived lines are read again, and the
    # file sink must recognise them (its journal) instead of archiving them twice.
    cfg = write_config(
        tmp_path,
        checkpoint={"interval": "1h"},
        batch={"max_lines": 97, "max_wait": "10ms"},
    )
    log = tmp_path / "logs" / "app.log"
    total = 30000
    with open(log, "wb") as fh:
        fh.write(b"".join(line(i) + b"\n" for i in range(total // 2)))
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    wait_for(lambda: len(archived(tmp_path)) > 3000, what="some lines archived")
    with open(log, "ab") as fh:
        fh.write(b"".join(line(i) + b"\n" for i in range(total // 2, total - 5000)))
    s.kill()
    before = len(archived(tmp_path))
    assert 0 < before < total
    with open(log, "ab") as fh:
        fh.write(b"".join(line(i) + b"\n" for i in range(total - 5000, total)))
    res = run_once(cfg)
    assert res.returncode == 0, res.stdout + res.stderr
    seqs = Counter(r["seq"] for r in archived(tmp_path))
    assert sorted(seqs) == list(range(total))
    assert max(seqs.values()) == 1


def test_sigterm_flushes_saves_checkpoint_and_exits_0(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    cfg = write_config(tmp_path, checkpoint={"interval": "1h"})
    log = tmp_path / "logs" / "app.log"
    log.write_bytes(b"".join(line(i) + b"\n" for i in range(5000)))
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    wait_for(lambda: len(archived(tmp_path)) == 5000, what="all lines archived")
    assert s.signal(signal.SIGTERM) == 0
    msgs = [r.get("message") for r in s.logs()]
    assert "obskit-sidecar stopped" in msgs
    cp = orjson.loads((tmp_path / "state" / "checkpoints.json").read_bytes())
    assert [e["offset"] for e in cp["files"].values()] == [log.stat().st_size]
    # A restart resumes at the checkpoint: nothing is read again.
    res = run_once(cfg)
    assert res.returncode == 0
    assert '"lines_read":0' in res.stdout
    assert len(archived(tmp_path)) == 5000


def test_metrics_health_and_readiness_endpoints(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    _sample(tmp_path)
    cfg = write_config(tmp_path, schema={"on_invalid": "repair"})
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    base = "http://" + s.address()
    wait_for(lambda: len(archived(tmp_path)) == 502, what="archive complete")

    def get(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return r.status, r.read().decode()

    assert get("/healthz")[0] == 200
    assert get("/readyz")[0] == 200

    def metric_lines() -> str:
        return get("/metrics")[1]

    wait_for(lambda: "obskit_sidecar_file_lag_bytes{" in metric_lines(), what="lag metric")
    text = metric_lines()
    assert "obskit_sidecar_lines_read_total 506.0" in text
    assert 'obskit_sidecar_lines_forwarded_total{sink="archive"} 502.0' in text
    assert 'obskit_sidecar_lines_quarantined_total{rule="OBS003",service="checkout"} 1.0' in text
    assert 'obskit_sidecar_lines_repaired_total{rule="OBS006"} 1.0' in text
    assert 'obskit_sidecar_sink_batches_total{outcome="ok",sink="archive"}' in text
    assert 'obskit_sidecar_sink_request_seconds_count{sink="archive"}' in text
    assert "obskit_sidecar_checkpoint_age_seconds" in text
    assert 'obskit_sidecar_file_lag_bytes{path="' in text
    assert s.signal(signal.SIGTERM) == 0


def test_busy_health_port_is_one_clear_error_and_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, http={"listen": f"127.0.0.1:{port}"})
        res = run_once(cfg)
    assert res.returncode == 1
    errors = [orjson.loads(x) for x in res.stdout.splitlines() if b'"ERROR"' in x.encode()]
    assert len(errors) == 1 and "cannot start" in errors[0]["message"], res.stdout
    assert errors[0]["service"] == "obskit-sidecar" and errors[0]["timestamp"].endswith("Z")
