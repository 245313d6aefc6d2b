"""Fixtures for the ``obskit validate`` tests: log folders on disk and a CLI runner."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from obskit.cli import main

OK: dict[str, Any] = {
    "timestamp": "2024-05-01T12:30:00.123Z",
    "level": "INFO",
    "service": "checkout-api",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "span_id": "00f067aa0ba902b7",
    "message": "order placed",
}


def jl(**overrides: Any) -> str:
    """One JSON line (with newline): OK with overrides; ``drop=[...]`` removes fields."""
    drop = overrides.pop("drop", ())
    rec = {**OK, **overrides}
    for k in drop:
        rec.pop(k, None)
    return json.dumps(rec) + "\n"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with one clean and one broken log file; the cwd is its parent (no policy)."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "logs"
    d.mkdir()
    (d / "payments.log").write_text(jl(service="payments") * 3)
    (d / "checkout.log").write_text(
        jl()
        + jl(level="WARNING")
        + jl(timestamp="2024-05-01 12:30:00")
        + jl(drop=["trace_id"])
        + "plain text line\n"
    )
    return d


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``obskit validate`` in-process (click's runner) in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, stdin: bytes | None = None) -> Result:
        res = CliRunner().invoke(main, ["validate", *args], input=stdin)
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return Result(res.exit_code, res.stdout, res.stderr)

    return run


def run_process(*args: str, cwd: Path, stdin: bytes | None = None) -> Result:
    """Run ``obskit validate`` as a real process (exit codes, stdin, streams)."""
    proc = subprocess.run(
        [sys.executable, "-m", "obskit.cli", "validate", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return Result(
        proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8")
    )
