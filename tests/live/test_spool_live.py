"""The real sidecar into a real Loki through a link that goes down while the service rotates
and deletes its files: every line is queryable afterwards, once. Set OBSKIT_TEST_LOKI_URL
(``pytest -m live tests/live/test_spool_live.py``)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from tests.chaos.netfault import NetFault
from tests.sidecar.engine.enginehelp import SIDECAR

URL = os.environ.get("OBSKIT_TEST_LOKI_URL")
TENANT = os.environ.get("OBSKIT_TEST_LOKI_TENANT")
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not URL, reason="OBSKIT_TEST_LOKI_URL is not set"),
]


def _write(folder: Path, service: str, start: int, n: int) -> None:
    """``n`` numbered lines into app.log, stamped now."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with open(folder / "app.log", "ab") as f:
        for i in range(start, start + n):
            rec = {
                "timestamp": f"{stamp}.{i % 1000:03d}Z",
                "level": "INFO",
                "service": service,
                "message": f"line {i}",
                "seq": i,
            }
            f.write(orjson.dumps(rec) + b"\n")


def _rotate(folder: Path) -> None:
    """Rename app.log to app.log.1, deleting the previous app.log.1 (keep one)."""
    (folder / "app.log.1").unlink(missing_ok=True)
    if (folder / "app.log").exists():
        os.replace(folder / "app.log", folder / "app.log.1")


def _query(service: str, start_ns: int) -> list[int]:
    assert URL
    headers = {"X-Scope-OrgID": TENANT} if TENANT else {}
    r = httpx.get(
        URL.rstrip("/") + "/loki/api/v1/query_range",
        params={
            "query": f'{{service="{service}"}}',
            "start": str(start_ns),
            "end": str(time.time_ns() + 60 * 10**9),
            "limit": "5000",
            "direction": "forward",
        },
        headers=headers,
        timeout=30,
    )
    r.raise_for_status()
    return sorted(
        int(orjson.loads(v[1])["seq"]) for s in r.json()["data"]["result"] for v in s["values"]
    )


def test_outage_with_rotation_every_line_queryable_once(tmp_path: Path) -> None:
    assert URL
    target = urlsplit(URL)
    link = NetFault(target.port or 80, target.hostname or "127.0.0.1").start()
    service = f"obskit-live-spool-{secrets.token_hex(3)}"
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = {
        "source": {"path": str(logs), "poll_interval": "100ms"},
        "checkpoint": {"dir": str(tmp_path / "state"), "interval": "200ms"},
        "http": {"enabled": False},
        "batch": {"max_wait": "100ms"},
        "sinks": [
            {
                "name": "loki",
                "type": "loki",
                "url": link.url,
                "tenant": TENANT,
                "timeout": "2s",
                "retry": {"initial": 0.2, "max": 2},
            }
        ],
    }
    (tmp_path / "sidecar.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    start_ns = time.time_ns() - 60 * 10**9
    proc = subprocess.Popen(
        [*SIDECAR, "run", "--config", str(tmp_path / "sidecar.yaml")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    try:
        n = 0
        for step in range(12):  # 12 files of 250 lines, one rotation a second
            if step == 2:
                link.set("refuse")
            if step == 8:
                link.set("blackhole")
            _write(logs, service, n, 250)
            n += 250
            time.sleep(1.0)
            _rotate(logs)
        link.set("forward")
        deadline = time.monotonic() + 90
        got: list[int] = []
        while time.monotonic() < deadline:
            got = _query(service, start_ns)
            if len(set(got)) >= n:
                break
            time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        link.close()
    assert sorted(set(got)) == list(range(n)), f"missing {sorted(set(range(n)) - set(got))[:20]}"
    assert len(got) == n, "lines stored more than once"
