"""Observers of every rendered line, called in the logging thread (the pytest plugin uses this).

Kept free of heavy imports: the plugin imports it in every pytest run.
"""

from __future__ import annotations

from collections.abc import Callable

Tap = Callable[[bytes], None]

#: The active taps; the hot path only checks ``if TAPS``.
TAPS: list[Tap] = []


def add_tap(tap: Tap) -> None:
    """Call ``tap(line)`` for every line obskit renders from now on (before queueing)."""
    if tap not in TAPS:
        TAPS.append(tap)


def remove_tap(tap: Tap) -> None:
    """Stop calling ``tap``; unknown taps are ignored."""
    if tap in TAPS:
        TAPS.remove(tap)
