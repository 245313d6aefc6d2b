"""examples/python-service: two real processes, one trace, both log files valid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sdk_helpers import assert_valid

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "python-service" / "service.py"


def _start(args: list[str], log_dir: Path) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    proc = subprocess.Popen(
        [sys.executable, str(SERVICE), "--port", "0", "--log-dir", str(log_dir), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the service prints it once bound; it exits on failure
    assert line.startswith("LISTENING "), line
    return proc, int(line.split()[1])


def _lines(folder: Path, service: str) -> list[bytes]:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(f"{service}.*.log"))).splitlines()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    running: list[subprocess.Popen[str]] = []
    yield running
    for p in running:
        p.terminate()
    for p in running:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def test_two_services_share_the_trace(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    backend, bport = _start(["--service", "backend"], tmp_path)
    procs.append(backend)
    frontend, fport = _start(
        ["--service", "frontend", "--downstream", f"http://127.0.0.1:{bport}"], tmp_path
    )
    procs.append(frontend)
    with urllib.request.urlopen(f"http://127.0.0.1:{fport}/work", timeout=10) as resp:
        body = json.loads(resp.read())
    trace_id = body["trace_id"]
    assert body["downstream"]["trace_id"] == trace_id

    deadline = time.monotonic() + 15
    while True:
        front = [orjson.loads(x) for x in _lines(tmp_path, "frontend")]
        back = [orjson.loads(x) for x in _lines(tmp_path, "backend")]
        done = any(r["message"] == "downstream answered" for r in front) and any(
            r["message"] == "http access" for r in back
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert done, (front, back)
    for rec in (*front, *back):
        if rec["message"] in ("request received", "downstream answered"):
            assert rec["trace_id"] == trace_id and len(rec["span_id"]) == 16
    assert {r["service"] for r in front} == {"frontend"}
    assert {r["service"] for r in back} == {"backend"}
    assert any(r.get("trace_id") == trace_id for r in back)
    backend_access = [r for r in back if r["message"] == "http access"]
    assert backend_access[0]["trace_id"] == trace_id  # stdlib path inside the span too

    for p in procs:
        p.terminate()
        assert p.wait(timeout=10) == 0
    for service in ("frontend", "backend"):
        lines = _lines(tmp_path, service)
        assert_valid(lines)
        assert orjson.loads(lines[-1])["message"] == "stopping"  # flushed on shutdown


@pytest.mark.slow
def test_uncaught_exception_is_shipped_as_one_record(tmp_path: Path) -> None:
    # A container's stdout and stderr in one file in the log folder: the SDK's JSON lines
    # (to stdout), then the interpreter's traceback (stderr). The sidecar groups the
    # traceback into one record; the SDK's own "uncaught exception" record stays as it is.
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    env.update(OBSKIT_LOG_DIR="none", OBSKIT_STDOUT="1")
    with open(logs / "python-service.log", "wb") as out:
        proc = subprocess.run(
            [sys.executable, str(SERVICE), "--service", "python-service", "--crash"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    text = (logs / "python-service.log").read_text(encoding="utf-8")
    # (The SDK's record holds the same text JSON-escaped; the raw one starts a line.)
    traceback = text[text.index("\nTraceback (most recent call last):\n") + 1 :].rstrip("\n")
    assert "The above exception was the direct cause" in traceback

    state = tmp_path / "state"
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(
        json.dumps(
            {
                "source": {"path": str(logs), "poll_interval": "100ms"},
                "checkpoint": {"dir": str(state)},
                "http": {"enabled": False},
                "sinks": [{"name": "a", "type": "file", "dir": str(tmp_path / "archive")}],
            }
        ),
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sidecar.cli import main; main()",
            "run",
            "--config",
            str(cfg),
            "--exit-on-idle",
            "1",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (state / "quarantine" / "quarantine.ndjson").exists()
    shipped = [
        orjson.loads(x)
        for seg in sorted((tmp_path / "archive").glob("*.ndjson"))
        for x in seg.read_bytes().splitlines()
    ]
    assert [r["message"] for r in shipped] == [
        "starting",
        "uncaught exception",
        "RuntimeError: cannot start: invalid port setting",
    ]
    crash = shipped[2]
    assert crash["error.stack"] == traceback  # both chained tracebacks, whole
    assert crash["level"] == "ERROR" and crash["service"] == "python-service"
    assert crash["crash"] == "python-traceback" and "trace_id" not in crash
