"""Masking of secret-looking keys, at any depth of a record's fields."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"


class Redactor:
    """Decides per key (cached) and masks values of matching keys in nested dicts and lists.

    A key matches when one of ``keys`` is a substring of the key lower-cased with ``-`` and
    spaces read as ``_`` (``X-Api-Key``, ``db_password``, ``access_token``), or when one of the
    regular expressions in ``patterns`` matches anywhere in the key (``re.search``).
    """

    __slots__ = ("_cache", "_keys", "_patterns")

    def __init__(self, keys: Iterable[str], patterns: Iterable[str] = ()) -> None:
        self._keys = tuple(k.lower().replace("-", "_") for k in keys if k)
        self._patterns = tuple(re.compile(p) for p in patterns)
        self._cache: dict[str, bool] = {}

    def is_secret(self, key: object) -> bool:
        """Whether values under ``key`` are masked."""
        if not isinstance(key, str):
            return False
        hit = self._cache.get(key)
        if hit is None:
            norm = key.lower().replace("-", "_").replace(" ", "_")
            hit = any(k in norm for k in self._keys) or any(p.search(key) for p in self._patterns)
            if len(self._cache) > 8192:  # keys built from data must not grow this forever
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def nested(self, value: Any, depth: int = 0) -> Any:
        """``value`` with secrets masked inside dicts, lists and tuples (copies only if needed).

        Deeper than 32 levels (or a cycle) the value is replaced by a marker, never walked.
        """
        if depth > 32:
            return "<nested too deep>"
        kind = type(value)
        if kind is dict:
            out: dict[Any, Any] | None = None
            for k, v in value.items():
                if self.is_secret(k):
                    new = MASK
                elif type(v) in _CONTAINERS:
                    new = self.nested(v, depth + 1)
                else:
                    continue
                if new is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = new
            return value if out is None else out
        if kind is list or kind is tuple:
            items = [self.nested(v, depth + 1) if type(v) in _CONTAINERS else v for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items
        return value


_CONTAINERS = (dict, list, tuple)
