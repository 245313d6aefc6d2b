"""Secrets for the sidecar: the kit's one implementation lives in :mod:`obskit.secrets`."""

from obskit.secrets import Secret, SecretError, resolve_secret

__all__ = ["Secret", "SecretError", "resolve_secret"]
