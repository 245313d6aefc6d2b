"""Secrets from the environment or files, never from the config text, never printed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class SecretError(ValueError):
    """A secret reference cannot be resolved (names the variable or file, never the value)."""


@dataclass(frozen=True)
class Secret:
    """A resolved secret value whose ``repr``/``str`` never show it."""

    _value: str
    source: str

    def reveal(self) -> str:
        """The secret itself: only for building an auth header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def resolve_secret(*, env: str | None = None, file: str | Path | None = None) -> Secret | None:
    """Read a secret from environment variable ``env`` or from ``file`` (trailing newline
    stripped, as Docker and Kubernetes secret files usually end with one). ``None`` when
    neither is given."""
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
            value = p.read_text(encoding="utf-8-sig").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {p}: {exc.strerror or exc}") from None
        return Secret(value, f"file {p}")
    return None
