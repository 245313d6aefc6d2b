"""Helpers shared by the schema tests: build log lines and compare validator paths."""

from __future__ import annotations

import json
from typing import Any

from obskit.schema import Policy, Violation, check_line

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
DEFAULT = Policy()


def good(**overrides: Any) -> dict[str, Any]:
    """A valid record as a dict; ``overrides`` replace fields (``None`` value = JSON null).

    Pass ``drop=("field", ...)`` to remove fields.
    """
    drop = overrides.pop("drop", ())
    rec: dict[str, Any] = {
        "timestamp": "2024-05-01T12:30:00.123456789Z",
        "level": "INFO",
        "service": "checkout-api",
        "trace_id": TRACE,
        "span_id": SPAN,
        "message": "order placed",
    }
    rec.update(overrides)
    for name in drop:
        rec.pop(name, None)
    return rec


def line(**overrides: Any) -> bytes:
    """A JSON line (no newline) of :func:`good` with ``overrides``."""
    return json.dumps(good(**overrides), ensure_ascii=False).encode("utf-8")


def rules_of(raw: bytes, policy: Policy = DEFAULT) -> list[str]:
    """The rule ids ``check_line`` reports for ``raw``, in order."""
    return [v.rule for v in check_line(raw, policy)[1]]


def only(raw: bytes, policy: Policy = DEFAULT) -> Violation:
    """The single violation of ``raw`` (fails the test when there are zero or several)."""
    rec, viol = check_line(raw, policy)
    assert len(viol) == 1, viol
    if viol[0].severity == "error":
        assert rec is None
    return viol[0]
