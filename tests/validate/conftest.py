"""Fixtures for the validate tests; the helpers live in validate_helpers (a unique module
name, so running these tests beside another folder's conftest cannot shadow them)."""

from validate_helpers import cli, logs

__all__ = ["cli", "logs"]
