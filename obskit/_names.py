"""File names as text: printable for messages, lossless in JSON.

A file in a watched folder may be named by anyone, with control characters or with bytes that
are not UTF-8 (``b'caf\\xe9.log'``). Python keeps such a name as a ``str`` with lone surrogates
(``surrogateescape`` on POSIX; a Windows name may hold unpaired UTF-16 surrogates): exact, but
not encodable as UTF-8, so it breaks JSON writers, Prometheus labels and terminals.

- :func:`safe_path` is the name as shown: control characters as ``\\uXXXX``, an undecodable
  byte as ``\\xNN``, everything else as is.
- :func:`path_fields` / :func:`path_from_fields` store a name losslessly in JSON: the name
  itself when it is valid UTF-8, else its shown form plus its exact bytes (``os.fsencode``)
  in base64 under ``<key>_b64``.
"""

from __future__ import annotations

import base64
import binascii
import os


def is_clean(path: str) -> bool:
    """Can ``path`` be written as UTF-8 as it is (no lone surrogates)?"""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_path(path: str) -> str:
    """A file name as printed: control characters and undecodable bytes escaped."""
    if path.isprintable():
        return path
    out = []
    for c in path:
        if c.isprintable():
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(f"\\u{ord(c):04x}")
    return "".join(out)


def path_fields(path: str, key: str = "path") -> dict[str, str]:
    """``{key: path}``, or ``{key: shown form, key_b64: exact bytes}`` for a name that is not
    valid UTF-8."""
    if is_clean(path):
        return {key: path}
    return {key: safe_path(path), f"{key}_b64": base64.b64encode(os.fsencode(path)).decode()}


def path_from_fields(text: str, b64: str = "") -> str:
    """The exact name stored by :func:`path_fields` (``text`` when there are no bytes or they
    are damaged)."""
    if not b64:
        return text
    try:
        return os.fsdecode(base64.b64decode(b64, validate=True))
    except (binascii.Error, ValueError):
        return text
