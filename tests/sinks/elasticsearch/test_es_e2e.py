"""End to end: a real ``obskit-sidecar run`` process tails a folder and ships to the
in-process receiver; the backend goes down and comes back, the sidecar is killed mid-request
and restarted. Every valid line must be in the index exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from es_batches import line

from tests.receivers.elasticsearch import EsReceiver

SIDECAR = Path(sys.executable).parent / (
    "obskit-sidecar.exe" if sys.platform == "win32" else "obskit-sidecar"
)

pytestmark = pytest.mark.skipif(not SIDECAR.exists(), reason="obskit-sidecar not installed")


def write_logs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "app.log", "wb") as f:
        for i in range(n):
            f.write(line(i, "checkout" if i % 3 else "payments", trace=f"{i + 1:032x}") + b"\n")


def config(tmp: Path, url: str) -> Path:
    cfg = tmp / "sidecar.yaml"
    cfg.write_text(
        f"source:\n  path: {json.dumps(str(tmp / 'logs'))}\n  poll_interval: 100ms\n"
        f"checkpoint:\n  dir: {json.dumps(str(tmp / 'state'))}\n  interval: 200ms\n"
        f"quarantine:\n  dir: {json.dumps(str(tmp / 'dead'))}\n"
        "http:\n  enabled: false\n"
        "batch:\n  max_lines: 500\n  max_wait: 50ms\n"
        "sinks:\n"
        "  - name: es\n    type: elasticsearch\n"
        f"    url: {url}\n    timeout: 1s\n    batch_max_docs: 250\n"
        "    retry: {initial: 0.05, max: 0.3}\n",
        encoding="utf-8",
    )
    return cfg


def run(cfg: Path, idle: float = 1.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SIDECAR), "run", "--config", str(cfg), "--exit-on-idle", str(idle)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def test_backend_down_then_back_delivers_everything(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs", 3000)
    with EsReceiver() as es:
        es.faults.fail_requests(6, status=503)  # counted, not timed: start-up time varies
        finish(run(config(tmp_path, es.url)))
        assert es.stats.faults_fired["request_503"] == 6
        assert es.count("logs-*") == 3000
        assert len(set(es.ids("logs-*"))) == 3000


def test_kill_9_mid_request_no_loss_no_duplicate(tmp_path: Path) -> None:
    write_logs(tmp_path / "logs", 3000)
    with EsReceiver() as es:
        cfg = config(tmp_path, es.url)
        # Requests hang past the sidecar's 1 s timeout, then the cluster applies them anyway:
        # lines are stored that the sidecar never saw acknowledged.
        es.faults.stall(1.5, n=3, then_process=True)
        proc = run(cfg, idle=30)
        deadline = time.monotonic() + 30
        while es.stats.faults_fired["stall"] < 2:
            assert time.monotonic() < deadline, "sidecar never sent"
            time.sleep(0.02)
        proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
        proc.wait(10)
        time.sleep(1.6)  # let the stalled requests land
        before = es.count("logs-*")
        finish(run(cfg))
        assert es.count("logs-*") == 3000, f"{before} before restart"
        ids = es.ids("logs-*")
        assert len(ids) == len(set(ids)) == 3000
        # The replay after the restart met lines already stored: answered 409, not stored.
        assert es.stats.duplicates_prevented > 0


def test_mapping_conflict_lands_in_dead_letter_with_reason(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [line(i, user="bob") for i in range(20)]
    lines[7] = line(7, user={"name": "bob"})
    (logs / "app.log").write_bytes(b"\n".join(lines) + b"\n")
    with EsReceiver() as es:
        finish(run(config(tmp_path, es.url)))
        assert es.count("logs-*") == 19
    dead = b"".join(p.read_bytes() for p in (tmp_path / "dead").rglob("*") if p.is_file())
    assert b"document_parsing_exception" in dead, dead[:500]
    assert b"handled request 7" in dead and b"handled request 8" not in dead
