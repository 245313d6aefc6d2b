"""What the HTTP sinks (Loki, Elasticsearch, OTLP) do the same way: the retry settings the
delivery loop reads, and one pooled client per sink, opened by :meth:`HTTPSink.start` with the
config's timeout, TLS and credentials and closed by :meth:`HTTPSink.close`."""

from __future__ import annotations

from typing import Protocol

import httpx

from obskit._durations import Duration
from obskit._http import AuthConfig, Credentials, RetryConfig, TLSConfig, make_client
from sidecar.sinks.base import Sink


class HTTPSettings(Protocol):
    """The settings every HTTP sink's config has."""

    @property
    def timeout(self) -> Duration: ...
    @property
    def tls(self) -> TLSConfig | None: ...
    @property
    def auth(self) -> AuthConfig | None: ...
    @property
    def retry(self) -> RetryConfig: ...


class HTTPSink(Sink):
    """A sink that talks HTTP through one client; subclasses add :meth:`client_headers`."""

    def __init__(
        self, name: str, settings: HTTPSettings, max_retry_duration: Duration | None = None
    ) -> None:
        super().__init__(name)
        self._settings = settings
        self.retry = settings.retry
        if max_retry_duration is not None:
            self.max_retry_duration = float(max_retry_duration)
        self._client: httpx.Client | None = None

    def client_headers(self) -> dict[str, str]:
        """Headers sent with every request (credentials are resolved here, at start)."""
        return {}

    def start(self) -> None:
        if self._client is None:
            s = self._settings
            self._client = make_client(
                timeout=float(s.timeout),
                tls=s.tls,
                credentials=Credentials.resolve(s.auth),
                headers=self.client_headers(),
            )

    def close(self) -> None:
        super().close()
        if self._client is not None:
            self._client.close()
            self._client = None
