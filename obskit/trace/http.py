"""HTTP plumbing both query backends share: the client (TLS, auth, timeouts) and turning
transport or HTTP failures into one clear :class:`BackendError` line."""

from __future__ import annotations

import ssl
import time
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx

from obskit import __version__
from obskit.secrets import Credentials
from obskit.trace.config import HTTPBackendConfig
from obskit.trace.model import BackendError, TraceUsageError


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, "")).rstrip("/")


def make_client(
    cfg: HTTPBackendConfig,
    creds: Credentials,
    name: str,
    headers: dict[str, str] | None = None,
    max_connections: int = 4,
) -> httpx.Client:
    """An ``httpx.Client`` for one backend: TLS verification on unless turned off, auth."""
    url = cfg.url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TraceUsageError(f"{name} {display_url(url)!r}: not an http(s) URL")
    verify: ssl.SSLContext | bool = True
    if cfg.insecure_skip_verify:
        verify = False
    elif cfg.ca_file or cfg.cert_file:
        try:
            ctx = ssl.create_default_context(cafile=cfg.ca_file)
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TraceUsageError(f"{name}: TLS files: {exc}") from None
        verify = ctx
    all_headers = {"User-Agent": f"obskit-trace/{__version__}"}
    all_headers.update(creds.headers())
    all_headers.update(headers or {})
    auth: Any = creds.basic()
    if auth is None and (parts.username or parts.password):
        auth = (parts.username or "", parts.password or "")
        url = display_url(url)
    return httpx.Client(
        base_url=url,
        timeout=httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 10.0)),
        verify=verify,
        auth=auth,
        headers=all_headers,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
    )


def describe(exc: httpx.HTTPError) -> str:
    """A short human cause: ``connection refused``, ``timed out``, ``TLS: ...``."""
    text = str(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the server (raise timeout in the config)"
    if isinstance(exc, httpx.ConnectError):
        low = text.lower()
        if "refused" in low:
            return "connection refused"
        if "certificate" in low or "ssl" in low:
            return f"TLS: {text}"
        if (
            "name or service not known" in low
            or "nodename nor servname" in low
            or "getaddrinfo" in low
        ):
            return "unknown host"
        return f"cannot connect: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def http_reason(resp: httpx.Response) -> str:
    """``HTTP 400: <the server's reason, first line, at most 300 chars>``."""
    body = resp.text.strip()
    reason = body
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("message", data))
        if isinstance(err, dict):
            root = err.get("root_cause")
            if isinstance(root, list) and root and isinstance(root[0], dict):
                err = root[0]
            reason = f"{err.get('type', '')}: {err.get('reason', '')}".strip(": ")
        else:
            reason = str(err)
    reason = reason.splitlines()[0][:300] if reason else resp.reason_phrase
    hint = {
        401: " (check the credentials)",
        403: " (the credentials lack permission)",
    }.get(resp.status_code, "")
    return f"HTTP {resp.status_code}: {reason}{hint}"


#: Answers worth a second try: rate limits and overloaded or restarting servers.
TRANSIENT: Final = frozenset({429, 502, 503, 504})


def request(
    client: httpx.Client,
    name: str,
    method: str,
    path: str,
    retries: int = 3,
    **kwargs: Any,
) -> httpx.Response:
    """Send one (read-only) request; transport errors become :class:`BackendError` naming
    ``name``. A transient answer (429, 502, 503, 504) is retried up to ``retries`` times after
    the server's ``Retry-After`` (at most 10 s) or a short exponential pause; the last answer
    is returned as is."""
    for attempt in range(retries + 1):
        try:
            resp = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError(name, describe(exc)) from None
        if resp.status_code not in TRANSIENT or attempt == retries:
            return resp
        time.sleep(_pause(resp, attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _pause(resp: httpx.Response, attempt: int) -> float:
    hint = str(resp.headers.get("Retry-After") or "").strip()
    if hint.replace(".", "", 1).isdigit():
        return min(float(hint), 10.0)
    return min(0.25 * 2.0**attempt, 4.0)
