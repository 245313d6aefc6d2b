"""Secrets by reference (an environment variable or a file), never from config text, never
printed; and the credentials built from them. Shared by ``obskit trace`` and the sidecar."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from obskit.schema.encoding import TextFileError, read_text_file


class SecretError(ValueError):
    """A secret reference cannot be resolved (names the variable or file, never the value)."""


@dataclass(frozen=True)
class Secret:
    """A resolved secret whose ``repr``/``str`` say where it came from, never what it is."""

    _value: str
    source: str

    def reveal(self) -> str:
        """The secret itself: only for building an auth header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def resolve_secret(*, env: str | None = None, file: str | Path | None = None) -> Secret | None:
    """Read a secret from environment variable ``env`` or from ``file`` (a trailing newline
    is stripped, as Docker and Kubernetes secret files usually end with one; a BOM too, and
    UTF-16 is decoded, as Windows editors and PowerShell write them). ``None`` when neither is
    given."""
    if env and file:
        raise SecretError("give a secret either as an environment variable or a file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        return Secret(value, f"env {env}")
    if file:
        p = Path(file)
        try:
            value = read_text_file(p).rstrip("\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {p}: {exc.strerror or exc}") from None
        except TextFileError:
            # Not the decoder's reason: it quotes a byte of the secret.
            raise SecretError(
                f"cannot read secret file {p}: not UTF-8 or UTF-16 text; save it as UTF-8"
            ) from None
        return Secret(value, f"file {p}")
    return None


@dataclass
class Credentials:
    """Resolved credentials of one HTTP backend; only :meth:`headers` and :meth:`basic`
    reveal them. A bearer token wins over an API key; basic auth needs a username."""

    username: str | None = None
    password: Secret | None = None
    bearer: Secret | None = None
    api_key: Secret | None = None

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for a bearer token or an Elasticsearch API key."""
        if self.bearer is not None:
            return {"Authorization": f"Bearer {self.bearer.reveal()}"}
        if self.api_key is not None:
            return {"Authorization": f"ApiKey {self.api_key.reveal()}"}
        return {}

    def basic(self) -> tuple[str, str] | None:
        """``(username, password)`` for HTTP basic auth, or ``None``."""
        if self.username is None:
            return None
        return (self.username, self.password.reveal() if self.password else "")


_SECRET_TEXT = re.compile(
    r"(?i)(://)[^/@\s]+@"
    r"|((?:authorization|api[-_]?key|x-api-key|cookie|set-cookie|token|password)"
    r"[\"']?\s*[:=]\s*[\"']?)(?:bearer |basic |apikey )?[^\s\"',;}]+"
    r"|\b(bearer|basic|apikey) [A-Za-z0-9._~+/=-]{8,}"
)


def mask_secrets(text: str, limit: int = 500) -> str:
    """``text`` (a server's reply, an error) with credentials masked and at most ``limit``
    characters: URL user info, ``Authorization``/API key/cookie/token values, bearer tokens."""

    def sub(m: re.Match[str]) -> str:
        g = m.group
        if g(1):
            return "://***@"
        if g(2):
            return f"{g(2)}***"
        return f"{g(3)} ***"

    out = _SECRET_TEXT.sub(sub, text)
    return out if len(out) <= limit else out[:limit] + "..."
