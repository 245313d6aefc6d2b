"""How obskit shows a file name in messages, reports and JSON, whatever bytes it holds.

A POSIX file name is bytes; one that is not valid UTF-8 (``b'caf\\xe9.log'``, written by a
Latin-1 program) reaches Python as a string with surrogate escapes (``'caf\\udce9.log'``),
which cannot be printed on a UTF-8 terminal nor written as JSON. :func:`display_path` shows
each byte that is not UTF-8 as ``\\xNN``: ``caf\\xe9.log``. Valid names, Windows paths with
backslashes included, are shown unchanged; the original bytes are ``os.fsencode(path)``.
"""

from __future__ import annotations

import os


def display_path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """``path`` as printable, JSON-safe text: undecodable bytes become ``\\xNN``."""
    raw = os.fspath(path)
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(raw)
        else:
            return raw
    return raw.decode("utf-8", "backslashreplace")
