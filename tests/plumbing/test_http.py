"""The one HTTP client factory (``obskit._http``): credentials from a URL become basic auth
and never reach a message; ``Retry-After`` in both of its forms; TLS file errors are one
clear line."""

from __future__ import annotations

import email.utils
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from obskit._http import (
    ClientConfigError,
    Credentials,
    TLSConfig,
    display_url,
    explain_error,
    make_client,
    retry_after,
)

SECRET = "pa55-s3cret"


class _Echo(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012 - one server per test module

    def do_GET(self) -> None:
        _Echo.seen.append(dict(self.headers))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_url_credentials_become_basic_auth_and_leave_the_url(server: str) -> None:
    url = f"http://bob:{SECRET}@{server}/base/"
    assert display_url(url) == f"http://{server}/base"
    with make_client(timeout=5, tls=None, credentials=Credentials(), base_url=url) as c:
        assert SECRET not in str(c.base_url)
        assert c.get("/x").status_code == 204
    assert _Echo.seen[-1]["Authorization"] == "Basic Ym9iOnBhNTUtczNjcmV0"  # bob:pa55-s3cret
    assert _Echo.seen[-1]["User-Agent"] == "obskit-sidecar"


def test_transport_errors_never_show_the_credentials() -> None:
    url = f"http://bob:{SECRET}@127.0.0.1:{_closed_port()}"
    with (
        make_client(timeout=2, tls=None, credentials=Credentials(), base_url=url) as c,
        pytest.raises(httpx.ConnectError) as exc,
    ):
        c.get("/")
    assert explain_error(exc.value) == "connection refused"
    assert SECRET not in str(exc.value)
    with pytest.raises(ClientConfigError) as bad:
        make_client(timeout=2, tls=None, credentials=Credentials(), base_url=f"htp://u:{SECRET}@x")
    assert SECRET not in str(bad.value) and "not an http(s) URL" in str(bad.value)


def test_missing_tls_files_are_one_clear_error() -> None:
    with pytest.raises(ClientConfigError, match=r"^TLS files: .*No such file"):
        make_client(
            timeout=2, tls=TLSConfig(ca_file="/nonexistent/ca.pem"), credentials=Credentials()
        )


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("1.5", 1.5), ("", None), ("soon", None)],
)
def test_retry_after_seconds(header: str, expected: float | None) -> None:
    resp = httpx.Response(429, headers={"Retry-After": header} if header else {})
    assert retry_after(resp) == expected


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    resp = httpx.Response(
        503, headers={"Retry-After": email.utils.formatdate(now + 30, usegmt=True)}
    )
    assert retry_after(resp, now=now) == pytest.approx(30.0)
    resp = httpx.Response(
        503, headers={"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}
    )
    assert retry_after(resp, now=now) == 0.0
