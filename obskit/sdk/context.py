"""Context fields bound with :mod:`contextvars`: per thread and per asyncio task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_EMPTY: dict[str, Any] = {}
#: The bound fields; the dict is never mutated in place (copy on write), so a task that
#: inherited the context never sees later changes made by another task.
CONTEXT: ContextVar[dict[str, Any]] = ContextVar("obskit_context", default=_EMPTY)


def bind(**fields: Any) -> None:
    """Add ``fields`` to every record logged from the current context (thread or task)."""
    CONTEXT.set({**CONTEXT.get(), **fields})


def unbind(*keys: str) -> None:
    """Remove bound fields; unknown keys are ignored."""
    current = CONTEXT.get()
    if any(k in current for k in keys):
        CONTEXT.set({k: v for k, v in current.items() if k not in keys})


def clear() -> None:
    """Remove every bound field of the current context."""
    CONTEXT.set(_EMPTY)


def get_bound() -> dict[str, Any]:
    """A copy of the fields bound in the current context."""
    return dict(CONTEXT.get())


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` for the duration of a ``with`` block, then restore the previous ones.

    >>> with obskit.bound(request_id="r-1"):
    ...     log.info("handled")          # carries request_id
    """
    token = CONTEXT.set({**CONTEXT.get(), **fields})
    try:
        yield
    finally:
        CONTEXT.reset(token)
