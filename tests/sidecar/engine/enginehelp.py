"""Helpers for the sidecar engine tests: sample lines, configs, a real sidecar process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

SIDECAR = [sys.executable, "-c", "from sidecar.cli import main; main()"]


def line(n: int, service: str = "checkout", **extra: Any) -> bytes:
    """A valid schema v1 line numbered ``n`` (``seq``)."""
    rec: dict[str, Any] = {
        "timestamp": f"2024-10-01T12:00:{n % 60:02d}.{n % 1000:03d}Z",
        "level": "INFO",
        "service": service,
        "message": f"line {n}",
        "seq": n,
    }
    rec.update(extra)
    return orjson.dumps(rec)


def write_config(tmp: Path, **sections: Any) -> Path:
    cfg: dict[str, Any] = {
        "source": {"path": str(tmp / "logs"), "poll_interval": "100ms"},
        "checkpoint": {"dir": str(tmp / "state"), "interval": "200ms"},
        "http": {"listen": "127.0.0.1:0"},
        "sinks": [{"name": "archive", "type": "file", "dir": str(tmp / "archive")}],
        "batch": {"max_wait": "50ms"},
        "shutdown_timeout": "5s",
    }
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    path = tmp / "sidecar.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def archived(tmp: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seg in sorted((tmp / "archive").glob("archive-*.ndjson")):
        data = seg.read_bytes()
        # Only complete lines: the sidecar may be writing (or was killed mid-write; a restart
        # cuts such a torn batch off).
        out.extend(orjson.loads(x) for x in data[: data.rfind(b"\n") + 1].splitlines() if x)
    return out


def quarantined(tmp: Path) -> list[dict[str, Any]]:
    q = tmp / "state" / "quarantine" / "quarantine.ndjson"
    if not q.exists():
        return []
    return [orjson.loads(x) for x in q.read_bytes().splitlines() if x]


def run_once(
    config: Path, idle: float = 0.5, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``obskit-sidecar run --exit-on-idle`` to completion."""
    return subprocess.run(
        [*SIDECAR, "run", "--config", str(config), "--exit-on-idle", str(idle)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Sidecar:
    """A running ``obskit-sidecar run`` whose stdout (its own logs) is collected to a file."""

    def __init__(
        self,
        config: Path,
        tmp: Path,
        *args: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.out_path = tmp / f"sidecar-{time.monotonic_ns()}.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*(command or SIDECAR), "run", "--config", str(config), *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            preexec_fn=preexec_fn,
        )

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.out_path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                out.append({"raw": raw.decode("utf-8", "replace")})
        return out

    def address(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rec in self.logs():
                if rec.get("message") == "obskit-sidecar started" and rec.get("listen"):
                    return str(rec["listen"])
            assert self.proc.poll() is None, self.out_path.read_text()
            time.sleep(0.05)
        raise AssertionError("sidecar did not report its address")

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture(name="sidecars")
def sidecars_fixture() -> Iterator[list[Sidecar]]:
    """Sidecar processes started by a test; killed at the end if still running."""
    started: list[Sidecar] = []
    yield started
    for s in started:
        s.close()


def wait_for(pred: Any, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
