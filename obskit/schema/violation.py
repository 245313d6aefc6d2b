"""The result type of every schema check: one violation of one rule on one line."""

from __future__ import annotations

import msgspec

#: How much of an offending value an error message may show.
MAX_SHOWN = 60


class Violation(msgspec.Struct, frozen=True):
    """One rule broken by one line.

    ``rule`` is a stable id (``OBS003``), ``field`` the record field concerned (``None`` for
    line-level rules), ``column`` the 1-based byte column where the problem starts when known.
    ``severity`` is ``"error"`` or ``"warning"``; only errors make a line invalid.
    """

    rule: str
    field: str | None
    message: str
    column: int | None = None
    severity: str = "error"

    def format(self) -> str:
        """``OBS003 level: 'WARNING' is not one of ...`` (without the path prefix)."""
        where = f" {self.field}:" if self.field else ":"
        return f"{self.rule}{where} {self.message}"


def shown(value: object) -> str:
    """Render an offending value safely: repr-quoted, control characters escaped, truncated.

    Never the whole line, never raw escape sequences (terminal or log injection).
    """
    if isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, str):
        text = value
    else:
        text = msgspec.json.encode(value).decode("utf-8", "replace") if _encodable(value) else "?"
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "…"
    out = repr(text) if isinstance(value, (str, bytes)) else text
    # repr() escapes control characters but keeps printable non-ASCII; also escape the
    # Unicode bidi/format characters that can reorder what a terminal shows.
    if out.isprintable():
        return out
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out)


def _encodable(value: object) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True
