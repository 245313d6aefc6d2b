"""HTTP plumbing for everything in obskit that talks to a server (the sidecar's sinks,
``obskit-sidecar es-setup``, ``obskit trace``): the one auth and TLS config schema, the client
factory, which answers are worth retrying, ``Retry-After``, backoff with jitter, and a short
cause for a transport error.

Credentials never reach a message: URLs are shown through :func:`display_url` (without any
``user:password@``), and a URL's user info is moved into the client's basic auth. httpx logs
every request with its full URL at INFO; the processes that log keep its logger at WARNING
(``sidecar.selflog``).
"""

from __future__ import annotations

import email.utils
import random
import re
import ssl
import time
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

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
    """Credentials resolved from an :class:`AuthConfig`."""

    @classmethod
    def resolve(cls, auth: AuthConfig | None) -> Credentials:
        """Read the secrets ``auth`` names (raises ``obskit.secrets.SecretError``)."""
        if auth is None:
            return cls()
        return cls(
            username=auth.username,
            password=resolve_secret(env=auth.password_env, file=auth.password_file),
            bearer=resolve_secret(env=auth.bearer_token_env, file=auth.bearer_token_file),
            api_key=resolve_secret(env=auth.api_key_env, file=auth.api_key_file),
        )


class ClientConfigError(ValueError):
    """The URL or the TLS files cannot make a client (the message names which, never a
    secret)."""


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part and trailing slash, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, "")).rstrip("/")


def _verify(tls: TLSConfig | None) -> ssl.SSLContext | bool:
    if tls is None:
        return True
    if tls.insecure_skip_verify:
        return False
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ClientConfigError(f"TLS files: {exc}") from None
    return ctx


def make_client(
    *,
    timeout: float,
    tls: TLSConfig | None,
    credentials: Credentials,
    headers: dict[str, str] | None = None,
    base_url: str = "",
    user_agent: str = "obskit-sidecar",
    max_connections: int = 4,
) -> httpx.Client:
    """An ``httpx.Client`` with explicit timeouts, TLS verification on by default, and auth.

    With ``base_url`` (checked to be http or https), requests take paths; user info in it
    becomes basic auth unless ``credentials`` has a username, and is dropped from the URL.
    Raises :class:`ClientConfigError` for an unusable URL or TLS files.
    """
    auth: Any = credentials.basic()
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientConfigError(f"{display_url(base_url)!r}: not an http(s) URL")
        if auth is None and (parts.username or parts.password):
            auth = (parts.username or "", parts.password or "")
        base_url = display_url(base_url)
    all_headers = {"User-Agent": user_agent}
    all_headers.update(credentials.headers())
    all_headers.update(headers or {})
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        verify=_verify(tls),
        auth=auth,
        headers=all_headers,
        # Connection reuse matters for throughput: keep as many open as may be in use.
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
    )


#: Status codes worth retrying: rate limits and server-side trouble.
RETRYABLE_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after(resp: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
    value = str(resp.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


#: The jitter's generator when none is given: one per process, since seeding one from the OS
#: for every Backoff cost more than the rest of a successful push's bookkeeping (a sink makes
#: a Backoff per push). ``uniform`` on a shared Random is safe across threads.
_JITTER = random.Random()


class Backoff:
    """Exponential backoff with full jitter; ``Retry-After`` overrides when longer (up to
    four times ``max``)."""

    def __init__(self, cfg: RetryConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.attempt = 0
        self._rng = rng or _JITTER

    def next_delay(self, server_hint: float | None = None) -> float:
        """The pause before the next attempt."""
        cap = min(self.cfg.max, self.cfg.initial * (self.cfg.multiplier**self.attempt))
        self.attempt += 1
        delay = self._rng.uniform(cap / 2, cap)
        if server_hint is not None:
            delay = max(delay, min(server_hint, self.cfg.max * 4))
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self.attempt = 0


def describe_error(exc: Exception) -> str:
    """A short cause for metric labels and logs: ``timeout``, ``connect``, ``protocol``,
    ``network`` (never includes URLs with credentials or bodies)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, httpx.TransportError):
        return "network"
    return type(exc).__name__


#: ``//user:password@`` in a URL quoted by an exception's text.
_USERINFO: Final = re.compile(r"//[^/@\s]*@")


def explain_error(exc: Exception) -> str:
    """The same cause as :func:`describe_error`, as words for a person: ``connection
    refused``, ``unknown host``, ``TLS: ...``, ``timed out ...`` (user info in any URL the
    exception quotes is removed)."""
    text = _USERINFO.sub("//", str(exc))
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
