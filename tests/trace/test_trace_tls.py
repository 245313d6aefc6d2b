"""TLS to a backend (verification on by default, a private CA, the explicit opt-out) and the
headers a query carries (auth, tenant, encoding flags)."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from trace_helpers import TRACE, line, record

from obskit._http import AuthConfig, TLSConfig
from obskit.trace.config import LokiConfig, TraceConfig
from obskit.trace.lookup import run_lookup
from obskit.trace.model import Window

NOW = time.time_ns()
WINDOW = Window(NOW - 3600 * 10**9, NOW)


class _Loki(BaseHTTPRequestHandler):
    """Answers every query_range with one line of the trace, in Loki's JSON shape."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    headers_seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.headers_seen.append(dict(self.headers))
        ts = NOW - 60 * 10**9
        body = json.dumps(
            {
                "status": "success",
                "data": {
                    "resultType": "streams",
                    "result": [
                        {
                            "stream": {"service": "checkout"},
                            "values": [[str(ts), line(record(ts, message="over tls"))]],
                        }
                    ],
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def tls_loki(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Loki)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=10)


def test_tls_verification(tls_loki: tuple[str, Path]) -> None:
    url, cert = tls_loki
    cfg = LokiConfig(url=url, mode="metadata")
    res = run_lookup(TraceConfig(loki=cfg), TRACE, WINDOW)
    assert res.errors and res.errors[0].startswith(f"loki {url}: TLS: ")
    assert "certificate" in res.errors[0].lower()

    cfg = LokiConfig(url=url, mode="metadata", tls=TLSConfig(ca_file=str(cert)))
    res = run_lookup(TraceConfig(loki=cfg), TRACE, WINDOW)
    assert not res.errors and [e.message for e in res.entries] == ["over tls"]

    cfg = LokiConfig(url=url, mode="metadata", tls=TLSConfig(insecure_skip_verify=True))
    res = run_lookup(TraceConfig(loki=cfg), TRACE, WINDOW)
    assert not res.errors and len(res.entries) == 1


def test_auth_and_tenant_headers(
    tls_loki: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_loki
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    _Loki.headers_seen.clear()
    cfg = LokiConfig(
        url=url,
        tls=TLSConfig(ca_file=str(cert)),
        tenant="team-a",
        auth=AuthConfig(bearer_token_file=str(token)),
    )
    assert not run_lookup(TraceConfig(loki=cfg, concurrency=1), TRACE, WINDOW).errors
    h = _Loki.headers_seen[0]
    assert h["Authorization"] == "Bearer tok-123"
    assert h["X-Scope-OrgID"] == "team-a"
    assert h["X-Loki-Response-Encoding-Flags"] == "categorize-labels"
    assert h["User-Agent"].startswith("obskit-trace/")

    _Loki.headers_seen.clear()
    monkeypatch.setenv("OBSKIT_LOKI_PASSWORD", "pw")
    cfg = LokiConfig(
        url=url,
        tls=TLSConfig(ca_file=str(cert)),
        auth=AuthConfig(username="sre"),
        categorize_labels=False,
    )
    assert not run_lookup(TraceConfig(loki=cfg), TRACE, WINDOW).errors
    h = _Loki.headers_seen[0]
    assert h["Authorization"] == "Basic c3JlOnB3"  # sre:pw
    assert "X-Loki-Response-Encoding-Flags" not in h
    assert "X-Scope-OrgID" not in h
