"""Planted secrets never leave the sidecar: not in its own logs (start, errors, retries,
stop), not in /metrics, not in the dead-letter files, not in ``check-config`` output, even
while every sink fails authentication or cannot connect and a URL carries a password."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.receivers.elasticsearch import EsReceiver
from tests.receivers.loki import LokiReceiver

SIDECAR = [sys.executable, "-c", "from sidecar.cli import main; main()"]
PASSWORD = "pl4nted-P4SSWORD-7f3a9c"  # each value is unique, so any leak is found
TOKEN = "pl4nted-T0KEN-e81b22"
API_KEY = "pl4nted-APIKEY-0d6e5f"
URL_PASSWORD = "pl4nted-URLPASS-55aa01"


def _forms(secret: str, user: str = "shipper") -> list[bytes]:
    """The value itself and the encodings a leak would likely take."""
    basic = base64.b64encode(f"{user}:{secret}".encode())
    return [secret.encode(), basic, base64.b64encode(secret.encode())]


def test_secrets_never_in_logs_metrics_or_dead_letters(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(
        b'{"timestamp":"2024-10-01T12:00:00Z","level":"INFO","service":"a","message":"ok"}\n'
        b'{"timestamp":"2024-10-01T12:00:00Z","level":"LOUD","service":"a","message":"bad"}\n'
    )
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "api_key").write_text(API_KEY)
    with LokiReceiver() as loki, EsReceiver(auth=["Basic d3Jvbmc6d3Jvbmc="]) as es:
        loki.fail_next(1000, 401, body="no org id")  # every push: authentication failure
        cfg = {
            "source": {"path": str(logs), "poll_interval": "100ms"},
            "checkpoint": {"dir": str(tmp_path / "state"), "interval": "200ms"},
            "http": {"listen": "127.0.0.1:0"},
            "shutdown_timeout": "1s",
            "sinks": [
                {
                    "name": "loki",
                    "type": "loki",
                    "url": loki.url,
                    "timeout": "1s",
                    "auth": {"username": "shipper", "password_env": "PLANTED_PW"},
                    "retry": {"initial": 0.05, "max": 0.2},
                },
                {
                    "name": "loki-token",
                    "type": "loki",
                    "url": loki.url.replace("http://", f"http://shipper:{URL_PASSWORD}@"),
                    "timeout": "1s",
                    "auth": {"bearer_token_file": str(tmp_path / "token")},
                    "retry": {"initial": 0.05, "max": 0.2},
                },
                {
                    "name": "es",
                    "type": "elasticsearch",
                    "url": es.url,
                    "timeout": "1s",
                    "api_key_file": str(tmp_path / "api_key"),
                    "retry": {"initial": 0.05, "max": 0.2},
                },
            ],
        }
        path = tmp_path / "sidecar.yaml"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        env = {**os.environ, "PLANTED_PW": PASSWORD}
        check = subprocess.run(
            [*SIDECAR, "check-config", str(path)], capture_output=True, env=env, timeout=60
        )
        out_path = tmp_path / "sidecar.out"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                [*SIDECAR, "run", "--config", str(path)], stdout=out, stderr=out, env=env
            )
            try:
                deadline = time.monotonic() + 30
                listen = None
                while listen is None or loki.stats()["faults_served"] < 6:
                    assert time.monotonic() < deadline, out_path.read_text()[-2000:]
                    assert proc.poll() is None, out_path.read_text()[-2000:]
                    for raw in out_path.read_bytes().splitlines():
                        if b'"listen":"127.0.0.1:' in raw:
                            listen = raw.split(b'"listen":"')[1].split(b'"')[0].decode()
                    time.sleep(0.1)
                assert es.stats.auth_failures > 0 or es.stats.requests > 0
                metrics = httpx.get(f"http://{listen}/metrics", timeout=5).content
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        assert loki.stats()["push_requests"] > 0  # the credentials were really used
    stdout = out_path.read_bytes()
    assert b"ERROR" in stdout or b'"level":"WARN"' in stdout  # the failures were logged
    dead = b"".join(p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file())
    places = {
        "sidecar output": stdout,
        "/metrics": metrics,
        "state folder (checkpoints, dead letters)": dead,
        "check-config": check.stdout + check.stderr,
    }
    leaks = [
        f"{where}: {form!r}"
        for where, blob in places.items()
        for secret in (PASSWORD, TOKEN, API_KEY, URL_PASSWORD)
        for form in _forms(secret)
        if form in blob
    ]
    assert not leaks, leaks
