"""What the trace's query backends add to :mod:`obskit._http`: a client per backend, and
turning transport or HTTP failures into one clear :class:`BackendError` line."""

from __future__ import annotations

import time
from typing import Any

import httpx

from obskit import __version__
from obskit._http import (
    RETRYABLE_STATUS,
    Backoff,
    ClientConfigError,
    Credentials,
    RetryConfig,
    explain_error,
    make_client,
    retry_after,
)
from obskit.trace.config import HTTPBackendConfig
from obskit.trace.model import BackendError, TraceUsageError

#: Pauses between tries of a read-only query: short, and at most 10 s when the server asks
#: for more (``Retry-After`` is honoured up to four times ``max``).
QUERY_RETRY = RetryConfig(initial=0.25, max=2.5)


def backend_client(
    cfg: HTTPBackendConfig,
    creds: Credentials,
    name: str,
    headers: dict[str, str] | None = None,
    max_connections: int = 4,
) -> httpx.Client:
    """The shared client for one backend (raises :class:`TraceUsageError` naming ``name``
    for a bad URL or TLS files)."""
    try:
        return make_client(
            timeout=cfg.timeout,
            tls=cfg.tls,
            credentials=creds,
            headers=headers,
            base_url=cfg.url,
            user_agent=f"obskit-trace/{__version__}",
            max_connections=max_connections,
        )
    except ClientConfigError as exc:
        raise TraceUsageError(f"{name}: {exc}") from None


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


def request(
    client: httpx.Client,
    name: str,
    method: str,
    path: str,
    retries: int = 3,
    **kwargs: Any,
) -> httpx.Response:
    """Send one (read-only) request; transport errors become :class:`BackendError` naming
    ``name``. An answer worth retrying (:data:`obskit._http.RETRYABLE_STATUS`) is tried again
    up to ``retries`` times after the server's ``Retry-After`` or a short jittered pause; the
    last answer is returned as is."""
    backoff = Backoff(QUERY_RETRY)
    for attempt in range(retries + 1):
        try:
            resp = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError(name, explain_error(exc)) from None
        if resp.status_code not in RETRYABLE_STATUS or attempt == retries or _permanent(resp):
            return resp
        time.sleep(backoff.next_delay(retry_after(resp)))
    raise AssertionError("unreachable")  # pragma: no cover


def _permanent(resp: httpx.Response) -> bool:
    # Elasticsearch before 8.8 and OpenSearch answer "too many buckets" with 503, which a
    # retry cannot change (elastic/elasticsearch#37957).
    return resp.status_code == 503 and b"too_many_buckets_exception" in resp.content
