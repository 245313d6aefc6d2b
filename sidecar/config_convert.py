"""Turn one mapping of a config file into a settings struct, collecting every mistake.

``msgspec.convert`` stops at the first error, so a file with an unknown key and a bad value
would show one, then the other after the first is fixed. :func:`convert` checks the keys, then
each value on its own (nested settings recursively), and runs the struct's own checks
(``__post_init__``) only once every value is valid; a struct reports all its own problems at
once by raising :class:`Problems`. Every message is ``key.path: reason``.

A struct may list settings it still accepts but ignores in a class attribute
``deprecated_settings = {"name": "why"}``: they are dropped with a warning.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar

import msgspec

from obskit._durations import dec_hook
from obskit.secrets import mask_secrets

T = TypeVar("T", bound=msgspec.Struct)


class Problems(msgspec.ValidationError):
    """Every problem a settings struct found in itself, each ``key: reason`` (raised from
    ``__post_init__``; see :func:`check`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def check(problems: list[str]) -> None:
    """Raise :class:`Problems` when ``problems`` is not empty (end of a ``__post_init__``)."""
    if problems:
        raise Problems(problems)


def join(where: str, key: str) -> str:
    """``where.key`` (or ``key`` at the root; ``where[0]`` for an index)."""
    if not where:
        return key
    return f"{where}{key}" if key.startswith("[") else f"{where}.{key}"


def convert(
    raw: Any, typ: type[T], where: str, errors: list[str], warnings: list[str] | None = None
) -> T | None:
    """``raw`` as a ``typ``, or None with every problem appended to ``errors``. The struct's
    own checks run even when some values are wrong (those keep their defaults, and problems
    the struct reports about them are left out), so their problems show up in the same run."""
    before = len(errors)
    got = _convert_fields(raw, typ, where, errors, warnings)
    if got is None:
        return None
    values, failed = got
    if any(f.required and f.name not in values for f in msgspec.structs.fields(typ)):
        return None  # reported; the struct cannot be built without it
    try:
        obj = typ(**values)
    except Problems as exc:
        errors.extend(_at(typ, where, p) for p in exc.problems if _head(p) not in failed)
        return None
    except (ValueError, TypeError) as exc:  # msgspec.ValidationError is a ValueError
        if _head(str(exc)) not in failed:
            errors.append(_at(typ, where, str(exc)))
        return None
    return obj if len(errors) == before else None


def convert_fields(
    raw: Any,
    typ: type[msgspec.Struct],
    where: str,
    errors: list[str],
    warnings: list[str] | None = None,
    *,
    partial: bool = False,
) -> dict[str, Any] | None:
    """The valid fields of ``raw`` converted for ``typ`` (by attribute name, without running
    the struct's own checks), or None when some field is wrong, unknown or missing (each
    reported in ``errors``); with ``partial``, the valid fields even then."""
    before = len(errors)
    got = _convert_fields(raw, typ, where, errors, warnings)
    if got is None:
        return {} if partial else None
    return got[0] if partial or len(errors) == before else None


def _convert_fields(
    raw: Any,
    typ: type[msgspec.Struct],
    where: str,
    errors: list[str],
    warnings: list[str] | None,
) -> tuple[dict[str, Any], set[str]] | None:
    # (valid values by attribute name, names of the settings that were wrong), or None when
    # ``raw`` is not a mapping at all.
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.append(f"{where or '<root>'}: expected a mapping of settings, got {_kind(raw)}")
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(typ)}
    deprecated: dict[str, str] = getattr(typ, "deprecated_settings", {})
    out: dict[str, Any] = {}
    failed: set[str] = set()
    for key, value in raw.items():
        path = join(where, str(key))
        f = fields.get(key)
        if f is None:
            if key in deprecated:
                if warnings is not None:
                    warnings.append(f"{path}: deprecated and ignored: {deprecated[key]}")
                continue
            errors.append(f"{path}: unknown setting{_did_you_mean(str(key), fields)}")
            continue
        nested = _struct_of(f.type)
        if nested is not None and value is not None:
            conv = convert(value, nested, path, errors, warnings)
            if conv is None:
                failed.add(key)
            else:
                out[f.name] = conv
            continue
        try:
            out[f.name] = msgspec.convert(value, f.type, dec_hook=dec_hook)
        except msgspec.ValidationError as exc:
            errors.append(msgspec_error(exc, path))
            failed.add(key)
    for key, f in fields.items():
        if f.required and key not in raw:
            errors.append(f"{join(where, key)}: required")
    return out, failed


def shown(value: str) -> str:
    """A configuration value quoted in an error message, credentials masked."""
    return repr(mask_secrets(value, limit=200))


def msgspec_error(exc: msgspec.ValidationError, prefix: str = "") -> str:
    """A msgspec error as ``key.path: reason``."""
    text = str(exc)
    m = re.search(r" - at `\$(.*)`$", text)
    loc = ""
    if m:
        loc = m.group(1).lstrip(".")
        text = text[: m.start()]
    key = join(prefix, loc) if loc else prefix
    unknown = re.fullmatch(r"Object contains unknown field `([^`]*)`", text)
    if unknown:
        key = join(key, unknown.group(1))
        text = "unknown setting"
    return f"{key or '<root>'}: {text}"


def _head(problem: str) -> str:
    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", problem)
    return m.group(0) if m else ""


def _at(typ: type[msgspec.Struct], where: str, problem: str) -> str:
    # "url: must ..." from a struct named at ``where`` is "where.url: must ...".
    head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", problem)
    names = {f.encode_name for f in msgspec.structs.fields(typ)}
    if head and head.group(0) in names and problem[head.end() : head.end() + 1] in (":", ".", "["):
        return join(where, problem)
    return f"{where or '<root>'}: {problem}"


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The settings struct a field holds (``X`` or ``X | None``), if any."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _struct_of(args[0])
    return None


def _did_you_mean(key: str, known: dict[str, Any]) -> str:
    import difflib  # only when a key is wrong: not at every start

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    if not close:  # "ca" for "ca_file", "password" for "password_file"
        close = [k for k in known if k.startswith(key) or key.startswith(k)][:1]
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "true/false", int: "a number"}.get(
        type(value), type(value).__name__
    )
