"""What the HTTP sinks share: client settings (TLS, auth, timeouts), retry decisions and
backoff with jitter that honours ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
import ssl
import time

import httpx
import msgspec

from obskit.secrets import Credentials as BaseCredentials
from obskit.secrets import resolve_secret


class TLSConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """TLS for a sink. Verification is on unless ``insecure_skip_verify`` is set."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False


class AuthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Credentials, always by reference: an environment variable name or a file path."""

    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None


class RetryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Exponential backoff with full jitter between ``initial`` and ``max`` seconds."""

    initial: float = 0.5
    max: float = 30.0
    multiplier: float = 2.0


class Credentials(BaseCredentials):
    """Credentials resolved from a sink's :class:`AuthConfig`."""

    @classmethod
    def resolve(cls, auth: AuthConfig | None) -> Credentials:
        if auth is None:
            return cls()
        return cls(
            username=auth.username,
            password=resolve_secret(env=auth.password_env, file=auth.password_file),
            bearer=resolve_secret(env=auth.bearer_token_env, file=auth.bearer_token_file),
            api_key=resolve_secret(env=auth.api_key_env, file=auth.api_key_file),
        )


def make_client(
    *,
    timeout: float,
    tls: TLSConfig | None,
    credentials: Credentials,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with explicit timeouts, TLS verification on by default, and auth."""
    verify: ssl.SSLContext | bool = True
    if tls is not None:
        if tls.insecure_skip_verify:
            verify = False
        else:
            ctx = ssl.create_default_context(cafile=tls.ca_file)
            if tls.cert_file:
                ctx.load_cert_chain(tls.cert_file, tls.key_file)
            verify = ctx
    all_headers = {"User-Agent": "obskit-sidecar"}
    all_headers.update(credentials.headers())
    if headers:
        all_headers.update(headers)
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        verify=verify,
        auth=credentials.basic(),
        headers=all_headers,
        # Connection reuse matters for throughput; one sink thread uses one connection.
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
    )


#: Status codes worth retrying: rate limits and server-side trouble.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after(resp: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or HTTP date)."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class Backoff:
    """Exponential backoff with full jitter; ``Retry-After`` overrides when longer."""

    def __init__(self, cfg: RetryConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self, server_hint: float | None = None) -> float:
        cap = min(self.cfg.max, self.cfg.initial * (self.cfg.multiplier**self.attempt))
        self.attempt += 1
        delay = self._rng.uniform(cap / 2, cap)
        if server_hint is not None:
            delay = max(delay, min(server_hint, self.cfg.max * 4))
        return delay

    def reset(self) -> None:
        self.attempt = 0


def describe_error(exc: Exception) -> str:
    """A short cause for metrics and logs (never includes URLs with credentials or bodies)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, httpx.TransportError):
        return "network"
    return type(exc).__name__
