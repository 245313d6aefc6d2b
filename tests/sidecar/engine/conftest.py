"""Fixtures of the sidecar engine tests."""

from __future__ import annotations

from enginehelp import sidecars_fixture

__all__ = ["sidecars_fixture"]
