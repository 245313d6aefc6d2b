"""Spool faults in the real sidecar: the disk under the spool fills up mid-run (a write cut
in half, then refused) and frees again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from sidecar.spool import Spool
from tests.receivers.loki import LokiReceiver
from tests.sidecar.engine.enginehelp import wait_for

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUN = REPO / "tests" / "chaos" / "run_sidecar.py"


def now_lines(start: int, n: int) -> bytes:
    t = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return b"".join(
        orjson.dumps(
            {
                "timestamp": f"{stamp}.{i % 1000:03d}Z",
                "level": "INFO",
                "service": "checkout",
                "message": f"line {i}",
                "seq": i,
            }
        )
        + b"\n"
        for i in range(start, start + n)
    )


def config(tmp: Path, url: str, **extra: Any) -> Path:
    cfg = {
        "source": {"path": str(tmp / "logs"), "poll_interval": "100ms"},
        "checkpoint": {"dir": str(tmp / "state"), "interval": "200ms"},
        "http": {"listen": "127.0.0.1:0"},
        "batch": {"max_wait": "50ms", "max_lines": 500},
        "memory": {"max_inflight_bytes": "256KiB"},
        "shutdown_timeout": "3s",
        "sinks": [
            {"name": "loki", "type": "loki", "url": url, "retry": {"initial": 0.05, "max": 0.2}}
        ],
        **extra,
    }
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    p = tmp / "sidecar.yaml"
    p.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return p


class Proc:
    def __init__(self, cfg: Path, tmp: Path, env: dict[str, str]) -> None:
        self.out = tmp / f"sidecar-{time.monotonic_ns()}.out"
        self._f = open(self.out, "wb")  # noqa: SIM115
        self.p = subprocess.Popen(
            [sys.executable, str(RUN), "run", "--config", str(cfg)],
            stdout=self._f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
        )

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.out.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(raw))
        return out

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        self._f.close()


def seqs(rx: LokiReceiver) -> list[int]:
    return sorted(orjson.loads(x)["seq"] for x in rx.lines())


def test_disk_full_under_the_spool_then_space_returns(tmp_path: Path, loki: LokiReceiver) -> None:
    """The spool's disk fills while lines arrive: the cut record is taken back, the error is
    logged once, the lines wait in the files, and once space returns every line arrives
    exactly once; the spool is intact (nothing damaged, nothing left) and a restart sends
    nothing again."""
    flag = tmp_path / "disk-full.flag"
    spool_dir = tmp_path / "state" / "spool"
    env = {"OBSKIT_CHAOS_ENOSPC_FLAG": str(flag), "OBSKIT_CHAOS_ENOSPC_DIR": str(spool_dir)}
    cfg = config(tmp_path, loki.url)
    log = tmp_path / "logs" / "app.log"
    log.write_bytes(now_lines(0, 1000))
    proc = Proc(cfg, tmp_path, env)
    try:
        wait_for(lambda: len(loki.lines()) == 1000, 30, "the first 1000 lines")
        flag.touch()
        with open(log, "ab") as f:
            f.write(now_lines(1000, 3000))
        wait_for(
            lambda: any("spool cannot write" in str(r.get("message")) for r in proc.logs()),
            15,
            "the spool error",
        )
        time.sleep(1.0)
        assert len(loki.lines()) == 1000  # nothing gets past a spool that cannot take it
        errors = [r for r in proc.logs() if "spool cannot write" in str(r.get("message"))]
        assert len(errors) == 1 and "No space left on device" in errors[0]["message"]
        flag.unlink()
        wait_for(lambda: len(loki.lines()) >= 4000, 30, "every line after space returned")
        time.sleep(0.5)
        assert any("spool accepts lines again" in str(r.get("message")) for r in proc.logs())
        proc.p.send_signal(signal.SIGTERM)
        assert proc.p.wait(30) == 0
    finally:
        proc.close()
    assert seqs(loki) == list(range(4000))
    sp = Spool(spool_dir / "loki", max_bytes=1 << 30)
    assert sp.open() == []  # no torn record left behind
    st = sp.stats()
    assert (st.records, st.corrupt_bytes) == (0, 0)
    sp.close()
    # A restart sends nothing again.
    again = subprocess.run(
        [sys.executable, str(RUN), "run", "--config", str(cfg), "--exit-on-idle", "1"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert again.returncode == 0, again.stdout.decode()[-2000:]
    assert seqs(loki) == list(range(4000))
